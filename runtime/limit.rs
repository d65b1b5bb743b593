//! `limit = n`: at most `n` branches, items and tasks of a group run at once.
//!
//! # Invariants
//!
//! - Whether a branch may start is decided when it is created
//!   ([`start`]), not when it is first polled: every branch created
//!   before the cancellation starts (semantic 1), none created after it does
//!   (semantic 9). A branch queued behind `limit` starts only if the group is
//!   still running when its permit arrives ([`admit`]).
//! - Permits are first come, first served: a fan-out keeps a finished item's
//!   permit for its next item only while nobody else waits for one
//!   ([`Waiting::others`]).

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::cancel::Node;
use crate::sync::{Arc, AtomicUsize, Ordering};

/// Held while a branch body runs under `limit`.
pub(crate) type Permit = OwnedSemaphorePermit;

/// How a branch may start, decided when it is created ([`start`]).
#[derive(Debug)]
pub(crate) enum Start {
    /// The group was already cancelled: the body never runs.
    Refused,
    /// The body runs at once, holding this `limit` permit (`None`: no limit).
    Now(Option<Permit>),
    /// Waits for a `limit` permit; runs only if the group is still running then.
    Queued,
}

/// A group's `limit`.
#[derive(Debug)]
pub(crate) struct Limit {
    semaphore: Arc<Semaphore>,
    /// How many branches, tasks and fan-outs wait for a permit.
    waiting: AtomicUsize,
}

impl Limit {
    /// # Panics
    ///
    /// If `n` is 0.
    pub(crate) fn new(n: usize) -> Limit {
        Limit {
            semaphore: Arc::new(Semaphore::new(check(n))),
            waiting: AtomicUsize::new(0),
        }
    }

    pub(crate) fn semaphore(&self) -> &Arc<Semaphore> {
        &self.semaphore
    }

    /// A permit without waiting, `None` when `limit` branches are running.
    pub(crate) fn try_acquire(&self) -> Option<Permit> {
        Arc::clone(&self.semaphore).try_acquire_owned().ok()
    }
}

/// `n` as a number of permits.
///
/// # Panics
///
/// If `n` is 0: no branch would ever run.
pub(crate) fn check(n: usize) -> usize {
    assert!(n > 0, "errgroup: `limit` must be at least 1, got 0");
    n.min(Semaphore::MAX_PERMITS)
}

/// How a branch created now in the group of `node` may start: refused once
/// the group is cancelled, else at once (with a permit if one is free), else
/// queued for a permit.
#[inline]
pub(crate) fn start(node: &Node, limit: Option<&Limit>) -> Start {
    if node.is_cancelled() {
        return Start::Refused;
    }
    start_written(limit)
}

/// How a written branch (or a `Group::spawn` task) created now may start:
/// at once even in a cancelled group, where it sees its ctx cancelled and
/// can clean up (semantic 1), as Go's `g.Go` would; only a `limit` slot it
/// has to wait for is refused by the cancellation ([`admit`]).
#[inline]
pub(crate) fn start_written(limit: Option<&Limit>) -> Start {
    match limit {
        None => Start::Now(None),
        Some(limit) => match limit.try_acquire() {
            Some(permit) => Start::Now(Some(permit)),
            None => Start::Queued,
        },
    }
}

/// A permit once one is free, `None` if the group is cancelled first.
pub(crate) async fn admit(node: &Node, limit: &Limit) -> Option<Permit> {
    let mut cancelled = pin!(node.cancellation());
    let mut waiting = Waiting::new(limit);
    waiting.set(true);
    let mut acquire = pin!(Arc::clone(&limit.semaphore).acquire_owned());
    let permit = poll_fn(|cx| {
        if let Poll::Ready(permit) = acquire.as_mut().poll(cx) {
            return Poll::Ready(permit.ok());
        }
        cancelled.as_mut().poll(cx).map(|()| None)
    })
    .await;
    drop(waiting);
    // Cancelled just as the permit arrived: do not start.
    permit.filter(|_| !node.is_cancelled())
}

/// One waiter for a permit, counted while it waits (and until dropped).
#[derive(Debug)]
pub(crate) struct Waiting<'a> {
    limit: &'a Limit,
    on: bool,
}

impl<'a> Waiting<'a> {
    pub(crate) fn new(limit: &'a Limit) -> Self {
        Waiting { limit, on: false }
    }

    /// Whether anyone but this waiter waits for a permit now.
    #[inline]
    pub(crate) fn others(&self) -> bool {
        // Relaxed: a stale answer only lets a fan-out keep one permit for
        // one more item; a waiter is counted before it queues, and the
        // fan-out asks again before every item.
        self.limit.waiting.load(Ordering::Relaxed) > usize::from(self.on)
    }

    pub(crate) fn set(&mut self, waiting: bool) {
        if waiting != self.on {
            self.on = waiting;
            if waiting {
                self.limit.waiting.fetch_add(1, Ordering::Relaxed);
            } else {
                self.limit.waiting.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.set(false);
    }
}
