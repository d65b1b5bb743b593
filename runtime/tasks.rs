//! The two handles a group keeps its tokio tasks in, and their one shutdown
//! rule: [`Task`], one task (a `#[spawn]` or `#[blocking]` branch, in
//! branch.rs), and [`TaskSet`], many (the `ctx.spawn` tasks in state.rs,
//! the branches of a `Group` in group.rs, the workers of `#[spawn] for`
//! items in workers.rs). The watcher of a `Group`'s deadline, token parent
//! and `shutdown_on` signal is a plain tokio task, aborted by the group
//! (lifecycle.rs, group.rs).
//!
//! # The shutdown rule
//!
//! A group that must stop its tasks aborts them, then keeps polling them
//! until every one has ended (as `JoinSet::shutdown` does):
//! [`TaskSet::abort_all`] then [`TaskSet::poll_drain`], [`Task::abort`] then
//! [`Task::poll_join`]. Every set is drained by `poll_drain`, aborted or
//! not, so the waiting half is written once. An abort only
//! takes effect at the task's next yield, and a task mid-poll on another
//! worker still runs until then. Semantic 3 ("nothing the group started runs
//! after it returns") holds because the group returns only once the
//! container is empty. Only a dropped group cannot wait: it aborts.
//!
//! # Join errors
//!
//! A task's panic is caught inside it, so a join error is either a panic
//! that escaped (a destructor that panicked) or an abort. Both come out as
//! [`Joined`] values for the group to record; none is dropped here.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

#[cfg(not(loom))]
use tokio::task::JoinSet;
use tokio::task::{JoinError, JoinHandle};

#[cfg(loom)]
use crate::sync::JoinSet;
use crate::trace::Name;

/// Spawns `task` named `name` in tokio-console through tokio's task builder
/// `builder` (its `method`) under `--cfg tokio_unstable` with the `tracing`
/// feature; through `plain` otherwise, where `name` is zero-sized
/// (`trace::name`), so no task pays for a name it does not use. A macro:
/// the builders exist only under the cfg, and share no trait.
macro_rules! spawn_named {
    ($name:expr, $builder:expr, $method:ident, $plain:expr, $task:expr) => {{
        #[cfg(all(tokio_unstable, feature = "tracing", not(loom)))]
        let handle = $builder
            .name(&$name.to_string())
            .$method($task)
            .unwrap_or_else(|e| panic!("errgroup: spawning `{}`: {e}", $name));
        #[cfg(not(all(tokio_unstable, feature = "tracing", not(loom))))]
        let handle = {
            let _: &Name = $name;
            $plain($task)
        };
        handle
    }};
}

/// How a task ended.
#[derive(Debug)]
pub(crate) enum Joined<T> {
    Done(T),
    /// A panic that escaped the task's own catch: resumed by the group.
    Panicked(Box<dyn Any + Send>),
    /// Aborted by its group, or by the runtime shutting down.
    Aborted,
}

impl<T> From<Result<T, JoinError>> for Joined<T> {
    fn from(joined: Result<T, JoinError>) -> Self {
        match joined {
            Ok(value) => Joined::Done(value),
            Err(e) if e.is_panic() => Joined::Panicked(e.into_panic()),
            Err(_) => Joined::Aborted,
        }
    }
}

/// Many tasks, joined in the order they end.
pub(crate) struct TaskSet<T> {
    set: JoinSet<T>,
}

impl<T> std::fmt::Debug for TaskSet<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskSet").finish_non_exhaustive()
    }
}

impl<T: Send + 'static> TaskSet<T> {
    pub(crate) fn new() -> Self {
        TaskSet {
            set: JoinSet::new(),
        }
    }

    /// Starts `task`, named `name` (`spawn_named`); it is in the set once
    /// this returns.
    pub(crate) fn spawn<F: Future<Output = T> + Send + 'static>(&mut self, name: &Name, task: F) {
        let set = &mut self.set;
        let _ = spawn_named!(name, set.build_task(), spawn, |t| set.spawn(t), task);
    }

    /// The next task to end; `Ready(None)` once the set is empty.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Joined<T>>> {
        #[cfg(not(loom))]
        return self.set.poll_join_next(cx).map(|j| j.map(Joined::from));
        #[cfg(loom)]
        return self.set.poll_join_next(cx).map(|j| {
            j.map(|j| match j {
                Ok(value) => Joined::Done(value),
                Err(crate::sync::Aborted) => Joined::Aborted,
            })
        });
    }

    /// A task that has ended, if any, without waiting or keeping a waker.
    pub(crate) fn try_next(&mut self) -> Option<Joined<T>> {
        #[cfg(not(loom))]
        return self.set.try_join_next().map(Joined::from);
        // Under loom the set's tasks run only when the driver polls it.
        #[cfg(loom)]
        return None;
    }

    /// The first half of the shutdown rule; [`TaskSet::poll_drain`] is the second.
    pub(crate) fn abort_all(&mut self) {
        self.set.abort_all();
    }

    /// Polls until the set is empty, handing each task that ends to `each`:
    /// `Ready` once it is empty (the second half of the shutdown rule, and
    /// how a group awaits its tasks whether or not it aborted them).
    pub(crate) fn poll_drain(
        &mut self,
        cx: &mut Context<'_>,
        mut each: impl FnMut(Joined<T>),
    ) -> Poll<()> {
        while let Some(joined) = std::task::ready!(self.poll_next(cx)) {
            each(joined);
        }
        Poll::Ready(())
    }

    /// Hands each task that has ended to `each`, without waiting.
    pub(crate) fn reap(&mut self, mut each: impl FnMut(Joined<T>)) {
        while let Some(joined) = self.try_next() {
            each(joined);
        }
    }
}

/// One task, as a `#[spawn]` branch is: a join handle, which needs no set
/// (and no allocation) of its own. Dropping it aborts the task.
#[derive(Debug)]
pub(crate) struct Task<T> {
    handle: JoinHandle<T>,
    /// Its first poll is behind it (see [`Task::poll_join`]).
    polled: bool,
    /// It has ended and been joined: nothing to abort when it is dropped
    /// (an abort of an ended task still costs its atomics, per task).
    joined: bool,
}

impl<T: Send + 'static> Task<T> {
    /// A task named `name` (`spawn_named`).
    pub(crate) fn spawn<F: Future<Output = T> + Send + 'static>(name: &Name, task: F) -> Self {
        let handle = spawn_named!(name, tokio::task::Builder::new(), spawn, tokio::spawn, task);
        Task {
            handle,
            polled: false,
            joined: false,
        }
    }

    /// A synchronous job on tokio's blocking pool: it cannot be aborted.
    pub(crate) fn spawn_blocking<F: FnOnce() -> T + Send + 'static>(name: &Name, job: F) -> Self {
        let handle = spawn_named!(
            name,
            tokio::task::Builder::new(),
            spawn_blocking,
            tokio::task::spawn_blocking,
            job
        );
        Task {
            handle,
            polled: false,
            joined: false,
        }
    }
}

/// A synchronous job on tokio's blocking pool that nobody joins: it says
/// itself that it ended (a `#[blocking] for` item, fanout.rs's `Jobs`).
/// Not a [`Task`], which would abort it, unstarted, when dropped.
pub(crate) fn spawn_blocking_detached<F: FnOnce() + Send + 'static>(name: &Name, job: F) {
    drop(spawn_named!(
        name,
        tokio::task::Builder::new(),
        spawn_blocking,
        tokio::task::spawn_blocking,
        job
    ));
}

impl<T> Task<T> {
    /// The first half of the shutdown rule; poll until it ends for the second.
    pub(crate) fn abort(&self) {
        self.handle.abort();
    }

    /// The first poll, which stores the waker in the task, is outside the
    /// coop budget: refused, it would leave the task with no waker and
    /// the caller re-polled at once, for nothing. A fan-out that starts
    /// 10,000 `#[blocking]` items in one poll had its budget (128) spent
    /// by the first items and re-polled the rest round after round, 128
    /// more registered each time: 5.5x the instructions per item of
    /// `spawn_blocking` + `Vec<JoinHandle>` (`blocking_*` in
    /// benches/instructions.rs). Later polls take from the budget as any
    /// join handle's.
    // `#[inline]`: polled once or twice per task, where the call cost more
    // than what it adds to the handle's poll.
    #[inline]
    pub(crate) fn poll_join(&mut self, cx: &mut Context<'_>) -> Poll<Joined<T>> {
        let handle = Pin::new(&mut self.handle);
        let joined = if self.polled {
            handle.poll(cx)
        } else {
            self.polled = true;
            Pin::new(&mut tokio::task::coop::unconstrained(handle)).poll(cx)
        };
        let joined = std::task::ready!(joined);
        self.joined = true;
        Poll::Ready(Joined::from(joined))
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        if !self.joined {
            self.handle.abort();
        }
    }
}
