//! Fan-out branches (`name => for x in items { .. }`): one task per item.
//!
//! # Invariants
//!
//! - Items are pulled from the iterator one at a time, and only once a
//!   `limit` permit is in hand: with `limit = n`, at most `n` item bodies
//!   (and `n` pulled items) exist at once, however long the iterator.
//! - No item is pulled once the group is cancelled.
//! - Results land at their item's index, so the `Vec` is in iteration order
//!   whatever order the items finish in.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio_util::sync::PollSemaphore;

use std::sync::Arc;

use crate::ctx::Ctx;
use crate::error::TaskName;
use crate::shared::{Core, Permit};

/// Runs one task per item of `items`, each started by `launch(item, ctx,
/// permit)`; `Some(values)` when every item gave a value.
pub(crate) async fn fan_out<I, T, L, Fut>(
    core: &Arc<Core>,
    name: &'static str,
    items: I,
    mut launch: L,
) -> Option<Vec<T>>
where
    I: Iterator,
    L: FnMut(I::Item, Ctx, Option<Permit>) -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let mut items = Some(items);
    let mut results: Vec<Option<T>> = Vec::new();
    let mut complete = true;
    let mut running = FuturesUnordered::new();
    let mut permits = core.limit_semaphore().map(PollSemaphore::new);
    let mut cancelled = pin!(core.token().cancelled());
    poll_fn(|cx| {
        loop {
            // Start every item that may start now.
            while let Some(iter) = items.as_mut() {
                if core.is_cancelled() {
                    items = None;
                    complete = false;
                    break;
                }
                let permit = match permits.as_mut().map(|p| p.poll_acquire(cx)) {
                    None => None,
                    // A failing item cancels the group before it gives its
                    // permit back: the permit may be the failure's.
                    Some(Poll::Ready(Some(_))) if core.is_cancelled() => {
                        items = None;
                        complete = false;
                        break;
                    }
                    Some(Poll::Ready(Some(permit))) => Some(permit),
                    // The group's semaphore is never closed; stop if it were.
                    Some(Poll::Ready(None)) => {
                        items = None;
                        complete = false;
                        break;
                    }
                    Some(Poll::Pending) => {
                        // Woken by a freed permit, or here by the cancellation.
                        if cancelled.as_mut().poll(cx).is_ready() {
                            continue;
                        }
                        break;
                    }
                };
                let Some(item) = iter.next() else {
                    items = None;
                    break;
                };
                let index = results.len();
                results.push(None);
                let task = launch(
                    item,
                    Ctx::new(Arc::clone(core), TaskName::indexed(name, index)),
                    permit,
                );
                running.push(async move { (index, task.await) });
            }
            match running.poll_next_unpin(cx) {
                Poll::Ready(Some((index, Some(value)))) => results[index] = Some(value),
                Poll::Ready(Some((_, None))) => complete = false,
                Poll::Ready(None) if items.is_none() => return Poll::Ready(()),
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await;
    if complete {
        results.into_iter().collect()
    } else {
        None
    }
}
