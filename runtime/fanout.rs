//! Fan-out branches (`name => for x in items { .. }`): one task per item.
//!
//! # Invariants
//!
//! - Items are pulled from the iterator one at a time, and only once a
//!   `limit` permit is in hand: with `limit = n`, at most `n` item bodies
//!   (and `n` pulled items) exist at once, however long the iterator.
//! - No item is pulled once the group is cancelled.
//! - An item that ends hands its `limit` permit back to the fan-out, which
//!   starts the next item with it (after checking the group is still
//!   running) rather than giving it back to the semaphore and taking it
//!   again: the bound is the same, and a fan-out's steady state costs no
//!   semaphore operation per item.
//! - Results land at their item's index, so the `Vec` is in iteration order
//!   whatever order the items finish in.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;

use std::panic::resume_unwind;
use std::task::Context;

use futures_util::stream::{FuturesUnordered, StreamExt};
use pin_project_lite::pin_project;
use tokio::task::JoinSet;
use tokio_util::sync::PollSemaphore;

use std::sync::Arc;

use crate::ctx::Ctx;
use crate::error::TaskName;
use crate::shared::{Core, Permit};

pin_project! {
    /// An item's future, with its index carried beside it (an `async` wrapper
    /// would store the item's future twice).
    pub(crate) struct Indexed<F> {
        index: usize,
        #[pin]
        task: F,
    }
}

impl<F: Future> Future for Indexed<F> {
    type Output = (usize, F::Output);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let index = *this.index;
        this.task.poll(cx).map(|output| (index, output))
    }
}

/// Where the running items of a fan-out live.
pub(crate) trait Pool<Fut> {
    type Value;
    fn push(&mut self, index: usize, task: Fut);
    /// The next finished item: its index, its value if it gave one, and
    /// the `limit` permit it held.
    #[allow(clippy::type_complexity, reason = "a triple, named in the doc")]
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<(usize, Option<Self::Value>, Option<Permit>)>>;
}

/// What a fan-out item's future gives: its value, if any, and its permit.
pub(crate) type Done<T> = (Option<T>, Option<Permit>);

/// Items polled in the calling task.
pub(crate) type InTask<Fut> = FuturesUnordered<Indexed<Fut>>;

impl<T, Fut: Future<Output = Done<T>>> Pool<Fut> for InTask<Fut> {
    type Value = T;

    fn push(&mut self, index: usize, task: Fut) {
        FuturesUnordered::push(self, Indexed { index, task });
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<(usize, Option<T>, Option<Permit>)>> {
        self.poll_next_unpin(cx)
            .map(|done| done.map(|(index, (value, permit))| (index, value, permit)))
    }
}

/// Items run as tokio tasks. A `JoinSet`, not join handles in a
/// `FuturesUnordered`: under tokio's coop budget the latter re-polls handles
/// that cannot make progress, and 100,000 items cost a hundred times 1,000.
pub(crate) struct Tasks<T>(JoinSet<(usize, Done<T>)>);

impl<T> Tasks<T> {
    pub(crate) fn new() -> Self {
        Tasks(JoinSet::new())
    }
}

impl<T, Fut> Pool<Fut> for Tasks<T>
where
    T: Send + 'static,
    Fut: Future<Output = Done<T>> + Send + 'static,
{
    type Value = T;

    fn push(&mut self, index: usize, task: Fut) {
        self.0.spawn(Indexed { index, task });
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<(usize, Option<T>, Option<Permit>)>> {
        self.0.poll_join_next(cx).map(|joined| {
            joined.map(|outcome| match outcome {
                Ok((index, (value, permit))) => (index, value, permit),
                // Panics are caught inside the task; this one escaped it.
                Err(e) if e.is_panic() => resume_unwind(e.into_panic()),
                // Aborted by a runtime shutdown: no value.
                Err(_) => (usize::MAX, None, None),
            })
        })
    }
}

/// Runs one task per item of `items`, each made by `launch(item, ctx,
/// permit)` and run in `running`; `Some(values)` when every item gave a value.
pub(crate) async fn fan_out<I, T, L, Fut, P>(
    core: &Arc<Core>,
    name: &'static str,
    items: I,
    mut running: P,
    mut launch: L,
) -> Option<Vec<T>>
where
    I: Iterator,
    L: FnMut(I::Item, Ctx, Option<Permit>) -> Fut,
    P: Pool<Fut, Value = T>,
{
    let mut items = Some(items);
    let mut results: Vec<Option<T>> = Vec::new();
    let mut complete = true;
    let mut permits = core.limit_semaphore().map(PollSemaphore::new);
    // The permit of the item that just ended, for the next one.
    let mut spare: Option<Permit> = None;
    // Counted while the fan-out waits for a permit, so that another fan-out
    // of the group gives its permits back instead of keeping them.
    let mut waiter = core.limit_waiter();
    let mut cancelled = core.cancellation();
    poll_fn(|cx| {
        loop {
            // Start every item that may start now.
            let mut reused = false;
            while let Some(iter) = items.as_mut() {
                if core.is_cancelled() {
                    items = None;
                    complete = false;
                    break;
                }
                // Someone else waits for a permit: this one goes back to the
                // semaphore, which hands it out first come, first served.
                let permit = match spare.take().filter(|_| !waiter.others_waiting()) {
                    Some(permit) => {
                        reused = true;
                        Some(permit)
                    }
                    // The item just started will wake this loop when it
                    // ends, with the current waker: asking the semaphore
                    // again now, on every item, is what the reuse saves.
                    None if reused => break,
                    None => match permits.as_mut().map(|p| p.poll_acquire(cx)) {
                        None => None,
                        // A failing item cancels the group before it gives its
                        // permit back: the permit may be the failure's.
                        Some(Poll::Ready(Some(_))) if core.is_cancelled() => {
                            items = None;
                            complete = false;
                            break;
                        }
                        Some(Poll::Ready(Some(permit))) => {
                            waiter.set(false);
                            Some(permit)
                        }
                        // The group's semaphore is never closed; stop if it were.
                        Some(Poll::Ready(None)) => {
                            items = None;
                            complete = false;
                            break;
                        }
                        Some(Poll::Pending) => {
                            waiter.set(true);
                            // Woken by a freed permit, or here by the cancellation.
                            if Pin::new(&mut cancelled).poll(cx).is_ready() {
                                continue;
                            }
                            break;
                        }
                    },
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
                running.push(index, task);
            }
            if items.is_none() {
                // Nothing more starts: back to the semaphore for the others.
                spare = None;
                waiter.set(false);
            }
            match running.poll_next(cx) {
                Poll::Ready(Some((index, value, permit))) => {
                    match value {
                        Some(value) => results[index] = Some(value),
                        None => complete = false,
                    }
                    spare = permit;
                }
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
