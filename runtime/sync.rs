//! The primitives a group's shared state synchronizes with: std's, or
//! loom's under `--cfg loom` so that the model checker sees every access
//! (`runtime/loom_tests.rs`). The same trick as tokio-util's `src/loom.rs`.
//!
//! `Arc` and `Weak` stay std's under loom too: loom's `Arc` has no `Weak`
//! and cannot hold a `dyn OnCancel`, and the reference counts take no part
//! in the protocols checked.
//!
//! loom has no `OnceLock`, and a `OnceLock` hands out references, which a
//! mutex cannot do without `unsafe`: [`SetOnce`] stands in for it, in every
//! build, so that the code checked is the code that runs.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
pub(crate) use std::sync::{Arc, PoisonError, Weak};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere; the data is still whole.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A value set at most once, whose "is it set?" is a single atomic load.
pub(crate) struct SetOnce<T> {
    set: AtomicBool,
    value: Mutex<Option<T>>,
}

impl<T> SetOnce<T> {
    pub(crate) fn new() -> Self {
        SetOnce {
            set: AtomicBool::new(false),
            value: Mutex::new(None),
        }
    }

    /// Whether a value is set; pairs with the `Release` in [`SetOnce::set`],
    /// so a reader that sees `true` also sees what the setter wrote before.
    pub(crate) fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// Sets `value` unless a value is set; `false` (dropping `value`) if one was.
    pub(crate) fn set(&self, value: T) -> bool {
        let mut slot = lock(&self.value);
        if slot.is_some() {
            return false;
        }
        *slot = Some(value);
        // Published before the lock is released: a `set` that loses has
        // taken the lock after it, so its caller then sees `is_set()` too.
        self.set.store(true, Ordering::Release);
        true
    }

    pub(crate) fn get(&self) -> Option<T>
    where
        T: Clone,
    {
        if !self.is_set() {
            return None;
        }
        lock(&self.value).clone()
    }
}

impl<T: Clone + std::fmt::Debug> std::fmt::Debug for SetOnce<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SetOnce").field(&self.get()).finish()
    }
}

/// `tokio::task::JoinSet` needs a tokio runtime, which cannot run inside a
/// loom model: under loom, the group's task set is this stand-in, with the
/// same contract for what is checked (a task is in the set once `spawn`
/// returns; `poll_join_next` is `Ready(None)` only when the set is empty;
/// `abort_all` stops every task that has not finished). Its tasks run when
/// the driver polls the set, under the task-set lock, so in a model a task
/// must not spawn another.
#[cfg(loom)]
pub(crate) struct JoinSet<T> {
    tasks: Vec<std::pin::Pin<Box<dyn Future<Output = T> + Send>>>,
}

/// How a task of the loom [`JoinSet`] ends when it gives no value.
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct Aborted;

#[cfg(loom)]
impl<T> JoinSet<T> {
    pub(crate) fn new() -> Self {
        JoinSet { tasks: Vec::new() }
    }

    pub(crate) fn spawn<F: Future<Output = T> + Send + 'static>(&mut self, task: F) {
        self.tasks.push(Box::pin(task));
    }

    pub(crate) fn poll_join_next(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<T, Aborted>>> {
        use std::task::Poll;
        if self.tasks.is_empty() {
            return Poll::Ready(None);
        }
        for i in 0..self.tasks.len() {
            if let Poll::Ready(value) = self.tasks[i].as_mut().poll(cx) {
                drop(self.tasks.swap_remove(i));
                return Poll::Ready(Some(Ok(value)));
            }
        }
        Poll::Pending
    }

    pub(crate) fn abort_all(&mut self) {
        self.tasks.clear();
    }
}
