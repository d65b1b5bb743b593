//! The state one group shares between its driver, its branches, its tasks
//! and every `Ctx` handed out: the one implementation under both `errgroup!`
//! and [`Group`](crate::Group).
//!
//! # Invariants
//!
//! - A group is cancelled at most once: whoever sets [`Core::cause`] first
//!   cancels it; the cause slot is the truth, and the waiter list only wakes
//!   waiters.
//! - A waiter ([`Cancellation`]) registers under the hook lock, which the
//!   cancellation takes after setting the cause: a waiter that finds the
//!   hooks not fired is in the list the cancellation drains and wakes.
//! - Cancellation runs the group's hooks exactly once, outside any lock:
//!   child groups (which cancel with `Parent(cause)`) and group channels. A
//!   hook registered after the cancellation runs at once.
//! - The first error is the one whose `cancel(Failed)` won; an error that
//!   loses (the group was already cancelled) is dropped. The slots are read
//!   only after every branch and task has returned.
//! - Whether a branch may start is decided when it is created
//!   ([`Core::start`]), not when it is first polled: every branch created
//!   before the cancellation starts (semantic 1), none created after it does
//!   (semantic 9). A branch queued behind `limit` starts only if the group is
//!   still running when its permit arrives.
//! - A failing branch records its error (cancelling the group) before it
//!   gives its `limit` permit back, so the branch that takes the permit
//!   sees the cancellation, as in Go.
//! - A panic is caught where the body is polled, recorded (the first one
//!   wins), cancels the group, and is resumed by [`State::finish`] once
//!   every branch and task has returned.
//! - A task is either awaited or refused: the driver's last poll closes the
//!   task set in the critical section that finds it empty
//!   ([`Core::poll_tasks`]).
//! - Nothing a group may never use is allocated up front: the task set is
//!   created by the first task, the waiter list grows with the first waiter,
//!   and the typed error slot lives with the group's driver, not behind an
//!   `Arc`. A trivial group allocates its `Core` and nothing else
//!   (tests/allocations.rs).
//!
//! # Deadlock safety
//!
//! No lock is held while calling out: hooks and wakers are taken out of
//! their lists before they run, and a task is spawned with the task-set lock held only
//! around `JoinSet::spawn`, which does not run the task.

use std::any::{Any, TypeId, type_name};
use std::future::Future;
use std::panic::resume_unwind;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
#[cfg(not(loom))]
use tokio::task::JoinSet;
use tokio::task::futures::TaskLocalFuture;
use tokio::time::Instant;

use crate::branch::Guarded;
use crate::ctx::Ctx;
use crate::error::{Cancelled, Cause, Error, TaskName};
#[cfg(loom)]
use crate::sync::JoinSet;
pub(crate) use crate::sync::lock;
use crate::sync::{Arc, AtomicBool, AtomicUsize, Mutex, Ordering, SetOnce, Weak};

tokio::task_local! {
    /// The ctx of the branch being polled, so that a group created inside it
    /// becomes its child without `parent = ctx;` (semantic 6).
    static CURRENT: Ctx;
}

/// The ctx of the branch whose code is running now, if any.
pub(crate) fn ambient() -> Option<Ctx> {
    CURRENT.try_with(Ctx::clone).ok()
}

/// `body`, polled with `ctx` as the ambient ctx.
pub(crate) fn with_ambient<F: Future>(ctx: Ctx, body: F) -> TaskLocalFuture<Ctx, F> {
    CURRENT.scope(ctx, body)
}

/// Something to tell when a group is cancelled: a child group, a channel.
pub(crate) trait OnCancel: Send + Sync {
    fn on_cancel(&self, cause: &Cause);
}

#[derive(Default)]
struct Hooks {
    fired: bool,
    list: Vec<Weak<dyn OnCancel>>,
    waiters: Waiters,
}

/// The wakers of the [`Cancellation`] futures waiting on a group: a slab,
/// so that a waiter polled again replaces its waker instead of adding one.
#[derive(Default)]
struct Waiters {
    slots: Vec<Slot>,
    /// The first vacant slot, if any; each vacant slot names the next one.
    vacant: Option<usize>,
}

enum Slot {
    Waiting(std::task::Waker),
    Vacant(Option<usize>),
}

impl Waiters {
    fn insert(&mut self, waker: std::task::Waker) -> usize {
        if let Some(key) = self.vacant {
            let Slot::Vacant(next) = self.slots[key] else {
                unreachable!("errgroup: the vacant list names a waiting slot")
            };
            self.vacant = next;
            self.slots[key] = Slot::Waiting(waker);
            key
        } else {
            self.slots.push(Slot::Waiting(waker));
            self.slots.len() - 1
        }
    }

    fn update(&mut self, key: usize, waker: &std::task::Waker) {
        if let Slot::Waiting(old) = &mut self.slots[key] {
            old.clone_from(waker);
        }
    }

    fn remove(&mut self, key: usize) {
        self.slots[key] = Slot::Vacant(self.vacant);
        self.vacant = Some(key);
    }

    fn wake_all(self) {
        for slot in self.slots {
            if let Slot::Waiting(waker) = slot {
                waker.wake();
            }
        }
    }
}

/// Completes once the group of `core` is cancelled (by its cause; a passed
/// deadline is the caller's to check, as the group's timer turns it into a
/// cancellation).
///
/// # Cancellation safety
///
/// Cancellation safe: dropping it only takes its waker out of the list.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub(crate) struct Cancellation<'a> {
    core: &'a Core,
    /// Its slot in the waiter list, once it has waited.
    key: Option<usize>,
}

impl<'a> Cancellation<'a> {
    pub(crate) fn new(core: &'a Core) -> Self {
        Cancellation { core, key: None }
    }
}

impl Future for Cancellation<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.core.cause.is_set() {
            return Poll::Ready(());
        }
        let mut hooks = lock(&this.core.hooks);
        if hooks.fired {
            // The list was drained with our slot in it.
            this.key = None;
            return Poll::Ready(());
        }
        match this.key {
            Some(key) => hooks.waiters.update(key, cx.waker()),
            None => this.key = Some(hooks.waiters.insert(cx.waker().clone())),
        }
        Poll::Pending
    }
}

impl Drop for Cancellation<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            let mut hooks = lock(&self.core.hooks);
            if !hooks.fired {
                hooks.waiters.remove(key);
            }
        }
    }
}

/// Held while a branch body runs under `limit`.
pub(crate) type Permit = OwnedSemaphorePermit;

/// How a branch may start, decided when it is created ([`Core::start`]).
#[derive(Debug)]
pub(crate) enum Start {
    /// The group was already cancelled: the body never runs.
    Refused,
    /// The body runs at once, holding this `limit` permit (`None`: no limit).
    Now(Option<Permit>),
    /// Waits for a `limit` permit; runs only if the group is still running then.
    Queued,
}

/// What a group needs to build its core.
#[derive(Debug, Default, Clone)]
pub(crate) struct Settings {
    pub(crate) parent: Option<Ctx>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) limit: Option<usize>,
}

/// Tasks started with `ctx.spawn` or [`Group::spawn`](crate::Group::spawn).
struct Tasks {
    /// Created by the first task: most groups never start one.
    set: Option<JoinSet<bool>>,
    /// The group has returned: nothing more may start.
    closed: bool,
    /// Every finished task returned `Ok`.
    all_ok: bool,
}

/// One group, type-erased: what every `Ctx` of the group points to.
pub(crate) struct Core {
    cause: SetOnce<Cause>,
    /// This group's own deadline, from `timeout`/`deadline`.
    deadline: Option<Instant>,
    /// The earliest deadline of this group and its ancestors.
    effective_deadline: Option<Instant>,
    parent: Option<Arc<Core>>,
    hooks: Mutex<Hooks>,
    limit: Option<Arc<Semaphore>>,
    /// How many branches, tasks and fan-outs wait for a `limit` permit: a
    /// fan-out keeps a finished item's permit for its next item only while
    /// this is zero, so `limit` stays first come, first served.
    limit_waiters: AtomicUsize,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// The first error of a task or `#[spawn]` branch, when one failed first.
    task_error: Mutex<Option<Box<dyn Any + Send>>>,
    /// The group's error type, which tasks must share.
    error_type: (TypeId, &'static str),
    tasks: Mutex<Tasks>,
    /// Set before the first task is added: lets the driver skip the lock.
    spawned: AtomicBool,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("cause", &self.cause.get())
            .field("deadline", &self.effective_deadline)
            .finish_non_exhaustive()
    }
}

impl OnCancel for Core {
    fn on_cancel(&self, cause: &Cause) {
        self.cancel(Cause::Parent(Box::new(cause.clone())));
    }
}

impl Core {
    fn new<E: 'static>(settings: Settings) -> Arc<Core> {
        let parent = settings.parent.map(|p| Arc::clone(p.core()));
        let inherited = parent.as_ref().and_then(|p| p.effective_deadline);
        let effective_deadline = match (settings.deadline, inherited) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let core = Arc::new(Core {
            cause: SetOnce::new(),
            deadline: settings.deadline,
            effective_deadline,
            parent,
            hooks: Mutex::default(),
            limit: settings
                .limit
                .map(|n| Arc::new(Semaphore::new(check_limit(n)))),
            panic: Mutex::new(None),
            task_error: Mutex::new(None),
            error_type: (TypeId::of::<E>(), type_name::<E>()),
            tasks: Mutex::new(Tasks {
                set: None,
                closed: false,
                all_ok: true,
            }),
            spawned: AtomicBool::new(false),
            limit_waiters: AtomicUsize::new(0),
        });
        if let Some(parent) = &core.parent {
            let weak: Weak<Core> = Arc::downgrade(&core);
            parent.on_cancel(weak);
        }
        core
    }

    /// Cancels the group with `cause`; `false` if it was already cancelled.
    pub(crate) fn cancel(&self, cause: Cause) -> bool {
        if !self.cause.set(cause) {
            return false;
        }
        let (hooks, waiters) = {
            let mut hooks = lock(&self.hooks);
            hooks.fired = true;
            (
                std::mem::take(&mut hooks.list),
                std::mem::take(&mut hooks.waiters),
            )
        };
        waiters.wake_all();
        if let (false, Some(cause)) = (hooks.is_empty(), self.cause.get()) {
            for hook in hooks.iter().filter_map(Weak::upgrade) {
                hook.on_cancel(&cause);
            }
        }
        true
    }

    /// Runs `hook` when the group is cancelled, or now if it already is.
    pub(crate) fn on_cancel(&self, hook: Weak<dyn OnCancel>) {
        let mut hooks = lock(&self.hooks);
        if hooks.fired {
            drop(hooks);
            if let (Some(hook), Some(cause)) = (hook.upgrade(), self.cause.get()) {
                hook.on_cancel(&cause);
            }
            return;
        }
        if hooks.list.len() == hooks.list.capacity() {
            // Child groups come and go; keep the list as long as the live ones.
            hooks.list.retain(|w| w.strong_count() > 0);
        }
        hooks.list.push(hook);
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cause.is_set() || self.deadline_passed()
    }

    /// Deadlines are enforced by the group's driver, but a branch that spins
    /// on `is_cancelled()` without yielding starves the driver's timer; so a
    /// passed deadline is also noticed here, and cancels the group it belongs to.
    fn deadline_passed(&self) -> bool {
        let Some(at) = self.effective_deadline else {
            return false;
        };
        if Instant::now() < at {
            return false;
        }
        let mut core = self;
        while core.deadline.is_none_or(|d| d > at) {
            match &core.parent {
                Some(parent) => core = parent,
                None => break,
            }
        }
        core.cancel(Cause::DeadlineExceeded);
        true
    }

    pub(crate) fn cause(&self) -> Option<Cause> {
        self.is_cancelled();
        self.cause.get()
    }

    pub(crate) fn cancelled_error(&self) -> Cancelled {
        Cancelled::new(self.cause().unwrap_or(Cause::Dropped))
    }

    /// Completes once the group is cancelled.
    pub(crate) fn cancellation(&self) -> Cancellation<'_> {
        Cancellation::new(self)
    }

    pub(crate) fn effective_deadline(&self) -> Option<Instant> {
        self.effective_deadline
    }

    pub(crate) fn own_deadline(&self) -> Option<Instant> {
        self.deadline
    }

    pub(crate) fn limit_semaphore(&self) -> Option<Arc<Semaphore>> {
        self.limit.clone()
    }

    /// How a branch created now may start: refused once the group is
    /// cancelled, else at once (with a `limit` permit if one is free), else
    /// queued for a permit.
    pub(crate) fn start(&self) -> Start {
        if self.is_cancelled() {
            return Start::Refused;
        }
        match self.try_acquire() {
            Ok(permit) => Start::Now(permit),
            Err(()) => Start::Queued,
        }
    }

    /// Counts the caller as waiting for a `limit` permit while `waiting` is
    /// `true` (and until it is dropped).
    pub(crate) fn limit_waiter(&self) -> LimitWaiter<'_> {
        LimitWaiter {
            core: self,
            waiting: false,
        }
    }

    /// A permit without waiting: `Err(())` when `limit` branches are running.
    pub(crate) fn try_acquire(&self) -> Result<Option<Permit>, ()> {
        match &self.limit {
            None => Ok(None),
            Some(limit) => Arc::clone(limit)
                .try_acquire_owned()
                .map(Some)
                .map_err(drop),
        }
    }

    pub(crate) fn panicked(&self, task: TaskName, payload: Box<dyn Any + Send>) {
        self.cancel(Cause::Panicked { task });
        lock(&self.panic).get_or_insert(payload);
    }

    /// Starts `task` as a tokio task the group waits for; refused once the
    /// group is cancelled or has returned.
    ///
    /// # Panics
    ///
    /// If `E` is not the group's error type.
    pub(crate) fn spawn<E, M, F>(
        self: &Arc<Self>,
        name: TaskName,
        make: M,
        start: Start,
    ) -> Result<(), Cancelled>
    where
        M: FnOnce(Ctx) -> F,
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Send + 'static,
    {
        let (group_error, group_error_name) = self.error_type;
        assert!(
            TypeId::of::<E>() == group_error,
            "errgroup: a task spawned into this group returns `Result<(), {}>`, but the group's error type is `{group_error_name}`",
            type_name::<E>(),
        );
        if matches!(start, Start::Refused) {
            // A task that never runs did not return `Ok`: without this, a
            // group born cancelled (a passed deadline, a cancelled parent)
            // whose every spawn was refused would wait for nothing and
            // report `Ok(())`. Once the group has returned (closed), a
            // refusal is no longer its business: it must not turn the result
            // `finish` is computing into an error (loom_tests.rs).
            let mut tasks = lock(&self.tasks);
            tasks.all_ok &= tasks.closed;
            drop(tasks);
            self.spawned.store(true, Ordering::Release);
            return Err(self.cancelled_error());
        }
        let ctx = Ctx::new(Arc::clone(self), name.clone());
        let task = make(ctx.clone());
        let guarded = Guarded::new(Arc::clone(self), ctx, task, start);
        let core = Arc::clone(self);
        let job = async move {
            match guarded.await {
                Some((Ok(()), _permit)) => true,
                Some((Err(error), permit)) => {
                    core.fail_boxed(name, error);
                    drop(permit);
                    false
                }
                None => false,
            }
        };
        self.spawned.store(true, Ordering::Release);
        let mut tasks = lock(&self.tasks);
        if tasks.closed {
            return Err(self.cancelled_error());
        }
        tasks.set.get_or_insert_with(JoinSet::new).spawn(job);
        Ok(())
    }

    /// Records the error of a task or `#[spawn]` branch if it is the first
    /// failure, and cancels the group: boxed, as the core is untyped; the
    /// group's error type was checked when the task started.
    pub(crate) fn fail_boxed<E: Send + 'static>(&self, task: TaskName, error: E) {
        if self.cancel(Cause::Failed { task }) {
            *lock(&self.task_error) = Some(Box::new(error));
        }
    }

    /// Collects finished tasks; `Ready(all_ok)` once none is running.
    ///
    /// `last`: nothing else of the group runs (every branch has returned),
    /// so `Ready` ends the group. Then the set is closed in the critical
    /// section that finds it empty: a task spawned meanwhile through a ctx
    /// that outlives the group's code (`Group::ctx`, a clone moved to a
    /// thread) is either in the set, and awaited, or refused; never
    /// accepted and then aborted unseen by `close_tasks`.
    pub(crate) fn poll_tasks(&self, cx: &mut Context<'_>, last: bool) -> Poll<bool> {
        // Before the last poll a task is only added by running code of this
        // group (a branch or another task), which the driver will poll again.
        if !last && !self.spawned.load(Ordering::Acquire) {
            return Poll::Ready(true);
        }
        let mut tasks = lock(&self.tasks);
        loop {
            let Some(set) = tasks.set.as_mut() else {
                tasks.closed |= last;
                return Poll::Ready(tasks.all_ok);
            };
            match set.poll_join_next(cx) {
                Poll::Ready(Some(Ok(ok))) => tasks.all_ok &= ok,
                // Panics are caught inside; only a runtime shutdown lands here.
                Poll::Ready(Some(Err(_))) => tasks.all_ok = false,
                Poll::Ready(None) => {
                    tasks.closed |= last;
                    return Poll::Ready(tasks.all_ok);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// No task starts from now on; those still running are aborted.
    pub(crate) fn close_tasks(&self) {
        let mut tasks = lock(&self.tasks);
        tasks.closed = true;
        if let Some(set) = tasks.set.as_mut() {
            set.abort_all();
        }
    }
}

/// One waiter for a `limit` permit, counted for as long as it waits.
pub(crate) struct LimitWaiter<'a> {
    core: &'a Core,
    waiting: bool,
}

impl LimitWaiter<'_> {
    /// Whether anyone but this waiter waits for a `limit` permit now.
    pub(crate) fn others_waiting(&self) -> bool {
        // Relaxed: a stale answer only lets a fan-out keep one permit for
        // one more item; a waiter is counted before it queues, and the
        // fan-out asks again before every item.
        self.core.limit_waiters.load(Ordering::Relaxed) > usize::from(self.waiting)
    }

    pub(crate) fn set(&mut self, waiting: bool) {
        if waiting != self.waiting {
            self.waiting = waiting;
            if waiting {
                self.core.limit_waiters.fetch_add(1, Ordering::Relaxed);
            } else {
                self.core.limit_waiters.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for LimitWaiter<'_> {
    fn drop(&mut self) {
        self.set(false);
    }
}

/// A group: its core and the first error of its branches, typed.
#[derive(Debug)]
pub(crate) struct State<E> {
    pub(crate) core: Arc<Core>,
    error: Mutex<Option<E>>,
}

impl<E: 'static> State<E> {
    pub(crate) fn new(settings: Settings) -> Self {
        State {
            core: Core::new::<E>(settings),
            error: Mutex::new(None),
        }
    }
}

impl<E> State<E> {
    pub(crate) fn ctx(&self, task: TaskName) -> Ctx {
        Ctx::new(Arc::clone(&self.core), task)
    }

    /// Records `error` if it is the first failure and cancels the group.
    pub(crate) fn fail(&self, task: TaskName, error: E) {
        if self.core.cancel(Cause::Failed { task }) {
            *lock(&self.error) = Some(error);
        }
    }
}

impl<E: 'static> State<E> {
    /// The group's result once every branch and task has returned: resumes
    /// a panic, else `Ok(value)` if every branch gave one and no task failed,
    /// else the first error, else the cancellation. Cancels the ctx with
    /// `Finished` either way, and closes the group to new tasks.
    pub(crate) fn finish<T>(&self, value: Option<T>) -> Result<T, Error<E>> {
        self.core.close_tasks();
        self.core.cancel(Cause::Finished);
        if let Some(payload) = lock(&self.core.panic).take() {
            resume_unwind(payload);
        }
        let task_error = lock(&self.core.task_error).take();
        // A task that failed after the cancellation (its error dropped) or
        // was refused did not return `Ok` either, as a branch would not have.
        let tasks_ok = lock(&self.core.tasks).all_ok;
        if let (Some(value), None, true) = (value, &task_error, tasks_ok) {
            return Ok(value);
        }
        if let Some(Cause::Failed { task }) = self.core.cause.get() {
            let error = lock(&self.error)
                .take()
                .or_else(|| task_error.and_then(|e| e.downcast::<E>().ok().map(|e| *e)));
            if let Some(error) = error {
                return Err(Error::Failed { task, error });
            }
        }
        Err(Error::Cancelled(self.core.cancelled_error()))
    }
}

pub(crate) fn check_limit(n: usize) -> usize {
    assert!(n > 0, "errgroup: `limit` must be at least 1, got 0");
    n.min(Semaphore::MAX_PERMITS)
}

/// Drives nothing itself; lets `Pin<&mut Option<F>>` be polled in place.
pub(crate) fn poll_option<F: Future>(
    mut fut: Pin<&mut Option<F>>,
    cx: &mut Context<'_>,
) -> Poll<Option<F::Output>> {
    match fut.as_mut().as_pin_mut() {
        None => Poll::Ready(None),
        Some(f) => match f.poll(cx) {
            Poll::Ready(value) => {
                fut.set(None);
                Poll::Ready(Some(value))
            }
            Poll::Pending => Poll::Pending,
        },
    }
}
