//! `Pool`: one set of tasks of a group, with its own `limit`, a spawn that
//! waits for a slot, and a failure policy: the per-connection tasks of an
//! accept loop.
//!
//! # Invariants
//!
//! - A pool's task is a task of its group (the group's task set): awaited
//!   before the group returns, aborted with the group's other tasks when
//!   `grace` expires or the group is dropped, listed by a `Watch`. A pool
//!   adds a policy and a semaphore, not another container.
//! - Nothing is kept for a finished task: its result goes to the group
//!   (default policy) or to the handler (supervised), and the task is freed
//!   as soon as its group reaps it: at once for an `errgroup!` group, whose
//!   driver is woken by every task's end, and, for a [`Group`](crate::Group),
//!   which has no driver until `wait`, by the next pool task to end or the
//!   next spawn.
//! - The pool's `limit` counts the pool's tasks only, never the group's
//!   branches; and the group's `limit` does not count a pool's tasks.

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::branch::{Ambient, Policy, poll_guarded, pool_unit};
use crate::ctx::{BranchCtx, Ctx};
use crate::error::{Cancelled, TaskName};
use crate::state::Core;
use crate::sync::Arc;
use crate::trace;

/// How a task of a [`Pool`] failed, as its handler sees it
/// ([`Pool::supervise`]).
///
/// ```
/// use errgroup::Failure;
///
/// let failure: Failure<String> = Failure::Error("bad frame".into());
/// assert_eq!(failure.to_string(), "failed: bad frame");
/// assert_eq!(Failure::<String>::Panic("oops".into()).to_string(), "panicked: oops");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure<E> {
    /// The task returned `Err`.
    Error(E),
    /// The task panicked (caught with [`Pool::catch_panics`]): the panic's
    /// message, or `"Box<dyn Any>"` when its payload was not a string.
    Panic(String),
}

impl<E: fmt::Display> fmt::Display for Failure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Error(error) => write!(f, "failed: {error}"),
            Failure::Panic(message) => write!(f, "panicked: {message}"),
        }
    }
}

/// The message of a panic's payload, as the default panic hook prints it.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&'static str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}

/// The user's handler, after the `tracing` event (in the group's span).
type Handler<E> = dyn Fn(&trace::Span, &TaskName, Failure<E>) + Send + Sync;

/// What a pool's clones and tasks share: one reference per task.
struct Shared<E> {
    core: Arc<Core>,
    limit: Option<Arc<Semaphore>>,
    /// `None`: Go's rule, an error cancels the group and a panic resumes in it.
    supervise: Option<Arc<Handler<E>>>,
    catch_panics: bool,
}

impl<E> Shared<E> {
    /// A slot of a task that ends: given back, after its failure was recorded.
    fn release(&self) {
        if let Some(limit) = &self.limit {
            limit.add_permits(1);
        }
    }
}

/// One set of tasks of a group: what `TaskTracker` + a `Semaphore` +
/// `CancellationToken` give a server's accept loop, in one handle. Made by
/// [`BranchCtx::pool`](crate::BranchCtx::pool), [`Ctx::pool`] or
/// [`Group::pool`](crate::Group::pool); `Clone` (the clones share the
/// limit and the policy).
///
/// - **Part of the group.** Every task is cancelled with the group (its
///   [`spawn_with`](Pool::spawn_with) ctx), awaited before the group
///   returns, aborted when `grace` expires, and listed by a
///   [`Watch`](crate::Watch).
/// - **Backpressure.** With [`limit`](Pool::limit), [`spawn`](Pool::spawn)
///   waits for a slot, resolves once the task has started, and returns
///   `Err(Cancelled)` if the group stops while it waits: Go's `g.Go` under
///   `SetLimit`. The limit counts this pool's tasks only, not the group's
///   branches (nor is a pool's task counted by the group's `limit = n`).
///   [`spawn_queued`](Pool::spawn_queued) queues instead, as
///   [`Ctx::spawn`] does.
/// - **A failure policy.** By default a task's error cancels the group and
///   is its error, as for `ctx.spawn`. [`supervise`](Pool::supervise)
///   hands it to your handler, with the task's name, instead (and, with the
///   `tracing` feature, emits a `warn` event naming the task); the group
///   goes on. [`catch_panics`](Pool::catch_panics) does the same for a
///   panic, keeping its message.
/// - **Flat memory.** Nothing is kept of a finished task: a group that
///   starts a million short tasks holds only those still running.
///
/// ```
/// use errgroup::{errgroup, AllowShutdown};
/// use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let failed = Arc::new(AtomicUsize::new(0));
/// let count = Arc::clone(&failed);
/// let served = errgroup! {
///     type Error = String;
///     accept => {
///         let conns = ctx
///             .pool()
///             .limit(2)
///             .catch_panics()
///             .supervise(move |task, failure| {
///                 eprintln!("`{task}` {failure}");
///                 count.fetch_add(1, SeqCst);
///             });
///         for id in 0..10u32 {
///             // Waits while two are running: the loop accepts no faster.
///             conns.spawn(format!("conn{id}"), async move {
///                 match id {
///                     3 => Err(format!("bad frame from {id}")),
///                     5 => panic!("bug in handler {id}"),
///                     _ => Ok(()),
///                 }
///             })
///             .await
///             .map_err(|e| e.to_string())?;
///         }
///         Ok(10)
///     },
/// };
/// assert_eq!(served.unwrap(), (10,)); // the failures stopped nothing
/// assert_eq!(failed.load(SeqCst), 2);
/// # }
/// ```
pub struct Pool<E> {
    shared: Arc<Shared<E>>,
}

impl<E> Clone for Pool<E> {
    fn clone(&self) -> Self {
        Pool {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<E> fmt::Debug for Pool<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("available", &self.available())
            .field("supervised", &self.shared.supervise.is_some())
            .field("catch_panics", &self.shared.catch_panics)
            .finish_non_exhaustive()
    }
}

impl<E> Pool<E> {
    /// Free slots under the [`limit`](Pool::limit); `None` without one.
    ///
    /// ```
    /// let group = errgroup::Group::<()>::new();
    /// assert_eq!(group.pool().limit(8).available(), Some(8));
    /// assert_eq!(group.pool().available(), None);
    /// ```
    #[must_use]
    pub fn available(&self) -> Option<usize> {
        self.shared.limit.as_ref().map(|s| s.available_permits())
    }
}

impl<E: Send + 'static> Pool<E> {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Pool {
            shared: Arc::new(Shared {
                core,
                limit: None,
                supervise: None,
                catch_panics: false,
            }),
        }
    }

    /// A pool configured as this one, changed by `change`; clones made
    /// before keep the old configuration.
    fn configure(self, change: impl FnOnce(&mut Shared<E>)) -> Self {
        let old = &*self.shared;
        let mut shared = Shared {
            core: Arc::clone(&old.core),
            limit: old.limit.clone(),
            supervise: old.supervise.clone(),
            catch_panics: old.catch_panics,
        };
        change(&mut shared);
        Pool {
            shared: Arc::new(shared),
        }
    }

    /// At most `n` of this pool's tasks run at once: [`spawn`](Pool::spawn)
    /// waits for a slot. The group's branches and other tasks do not count.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let group = errgroup::Group::<()>::new();
    /// let pool = group.pool().limit(1);
    /// let (release, gate) = tokio::sync::oneshot::channel::<()>();
    /// pool.spawn("first", async move { gate.await.ok(); Ok(()) }).await.unwrap();
    /// assert_eq!(pool.available(), Some(0));
    /// release.send(()).unwrap();
    /// pool.spawn("second", async { Ok(()) }).await.unwrap(); // waited for `first`
    /// group.wait().await.unwrap();
    /// # }
    /// ```
    #[must_use]
    pub fn limit(self, n: usize) -> Self {
        let n = crate::limit::check(n);
        self.configure(|shared| shared.limit = Some(Arc::new(Semaphore::new(n))))
    }

    /// Supervises the pool's tasks: a task's error goes to `handler`, with
    /// the task's name, and cancels nothing (Kotlin's `supervisorScope`,
    /// Erlang's supervisor without the restart). With the `tracing`
    /// feature, each failure is also a `warn` event naming the task. The
    /// task is still cancelled with the group and awaited before it
    /// returns. The handler runs in the failing task, as it ends.
    ///
    /// ```
    /// use std::sync::Mutex;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let log = std::sync::Arc::new(Mutex::new(Vec::new()));
    /// let seen = std::sync::Arc::clone(&log);
    /// let group = errgroup::Group::<String>::new();
    /// let pool = group.pool().supervise(move |task, failure| {
    ///     seen.lock().unwrap().push(format!("{task} {failure}"));
    /// });
    /// pool.spawn("conn7", async { Err("malformed frame".to_string()) }).await.unwrap();
    /// group.wait().await.unwrap(); // the group did not fail
    /// assert_eq!(*log.lock().unwrap(), ["conn7 failed: malformed frame"]);
    /// # }
    /// ```
    #[must_use]
    pub fn supervise(self, handler: impl Fn(&TaskName, Failure<E>) + Send + Sync + 'static) -> Self
    where
        E: fmt::Display,
    {
        let report = move |group: &trace::Span, task: &TaskName, failure: Failure<E>| {
            trace::supervised(group, task, &failure);
            handler(task, failure);
        };
        self.configure(|shared| shared.supervise = Some(Arc::new(report)))
    }

    /// A panicking task of a [`supervise`](Pool::supervise)d pool is
    /// reported to its handler as [`Failure::Panic`], with the panic's
    /// message, instead of cancelling the group and resuming in it: the
    /// isolation `tokio::spawn` gives. Without `supervise` it changes nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let group = errgroup::Group::<String>::new();
    /// let pool = group.pool().catch_panics().supervise(move |task, failure| {
    ///     tx.send(format!("{task} {failure}")).unwrap();
    /// });
    /// pool.spawn("conn1", async { panic!("index out of bounds") }).await.unwrap();
    /// group.wait().await.unwrap();
    /// assert_eq!(rx.recv().unwrap(), "conn1 panicked: index out of bounds");
    /// # }
    /// ```
    #[must_use]
    pub fn catch_panics(self) -> Self {
        self.configure(|shared| shared.catch_panics = true)
    }

    /// Starts `task` as a task of the pool's group once a slot is free
    /// under the pool's [`limit`](Pool::limit) (at once without one), and
    /// returns once it has started: Go's `g.Go` under `SetLimit`, the
    /// backpressure an accept loop needs. `Err(Cancelled)`, and nothing
    /// starts, if the group is cancelled before or while it waits.
    ///
    /// # Cancellation safety
    ///
    /// Cancellation safe: dropped while it waits, nothing starts and the
    /// task is dropped.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let group = errgroup::Group::<()>::new();
    /// let pool = group.pool().limit(1);
    /// pool.spawn("busy", async { std::future::pending::<()>().await; Ok(()) }).await.unwrap();
    /// group.shutdown();
    /// // No slot will come: the group stopped while this waited.
    /// assert!(pool.spawn("late", async { Ok(()) }).await.is_err());
    /// # drop(group);
    /// # }
    /// ```
    pub async fn spawn<F>(&self, name: impl Into<TaskName>, task: F) -> Result<(), Cancelled>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        self.spawn_with(name, |_| task).await
    }

    /// [`spawn`](Pool::spawn)s `make(ctx)`, `ctx` the task's own (named
    /// `name`): for a task that watches the cancellation (a connection idle
    /// on a read), spawns in turn or shuts the group down. `make` runs once
    /// a slot is free, in the caller.
    ///
    /// ```
    /// use errgroup::{errgroup, Ctx};
    ///
    /// async fn serve(ctx: Ctx, id: u32) -> Result<(), String> {
    ///     ctx.cancelled().await; // a connection waiting for its next request
    ///     Ok(println!("conn{id} closed"))
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let result = errgroup! {
    ///     type Error = String;
    ///     accept => {
    ///         let conns = ctx.pool().limit(4);
    ///         for id in 0..3 {
    ///             conns.spawn_with(format!("conn{id}"), |ctx| serve(ctx, id)).await.map_err(|e| e.to_string())?;
    ///         }
    ///         ctx.shutdown(); // the three connections end with the group
    ///         Ok(())
    ///     },
    /// };
    /// assert!(result.is_ok());
    /// # }
    /// ```
    pub async fn spawn_with<M, F>(
        &self,
        name: impl Into<TaskName>,
        make: M,
    ) -> Result<(), Cancelled>
    where
        M: FnOnce(Ctx) -> F,
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let name = name.into();
        let slot = match &self.shared.limit {
            None => false,
            Some(limit) => {
                let permit = admit(&self.shared.core, limit).await;
                // Given back by the task as it ends (`Shared::release`).
                permit.ok_or_else(|| self.refused())?.forget();
                true
            }
        };
        self.start(name, make, slot)
    }

    /// [`spawn`](Pool::spawn) without waiting: starts `task` now, and it
    /// waits for its slot itself, as [`Ctx::spawn`] does under the group's
    /// `limit`. `Err(Cancelled)` once the group is cancelled.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let group = errgroup::Group::<()>::new();
    /// let pool = group.pool().limit(2);
    /// for i in 0..100 {
    ///     pool.spawn_queued(format!("job{i}"), async { Ok(()) }).unwrap(); // never waits
    /// }
    /// group.wait().await.unwrap();
    /// # }
    /// ```
    pub fn spawn_queued<F>(&self, name: impl Into<TaskName>, task: F) -> Result<(), Cancelled>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let name = name.into();
        let Some(limit) = &self.shared.limit else {
            return self.start(name, |_| task, false);
        };
        if let Ok(permit) = Arc::clone(limit).try_acquire_owned() {
            permit.forget();
            return self.start(name, |_| task, true);
        }
        let (core, limit) = (Arc::clone(&self.shared.core), Arc::clone(limit));
        let queued = async move {
            let Some(permit) = admit(&core, &limit).await else {
                // The group stopped first: the task never runs, as a
                // `ctx.spawn` after the cancellation, and leaves the
                // group's result as it is.
                core.refuse_task();
                return Ok(());
            };
            let output = task.await;
            drop(permit);
            output
        };
        self.start(name, |_| queued, false)
    }

    /// A spawn refused because the group was cancelled: the caller gets
    /// `Err(Cancelled)` and decides; the group's result is untouched, as
    /// for a refused `ctx.spawn`.
    fn refused(&self) -> Cancelled {
        self.shared.core.refuse_task()
    }

    /// Starts `make(ctx)` as a task of the group; `slot`: it holds one of
    /// the pool's slots, to give back as it ends.
    fn start<M, F>(&self, name: TaskName, make: M, slot: bool) -> Result<(), Cancelled>
    where
        M: FnOnce(Ctx) -> F,
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let core = &self.shared.core;
        // The slot is given back if nothing takes it: refused here, or
        // `make` panicked in the caller.
        let mut held = Held {
            shared: &self.shared,
            slot,
        };
        if core.is_cancelled() {
            return Err(self.refused());
        }
        // A `Group`'s finished tasks are reaped here, as nobody else does
        // until `wait`: its memory stays what still runs.
        core.reap_tasks();
        let ctx = Ctx::new(Arc::clone(core), name.clone());
        let body = pool_unit(core, &name, make(ctx));
        core.count_task();
        let task = PoolTask {
            body,
            shared: Arc::clone(&self.shared),
            name,
            slot: std::mem::take(&mut held.slot),
            echoed: false,
        };
        let name = trace::name(&task.name);
        core.spawn_task(&name, task)
    }
}

/// A slot of the pool's `limit` not yet handed to its task.
struct Held<'a, E> {
    shared: &'a Shared<E>,
    slot: bool,
}

impl<E> Drop for Held<'_, E> {
    fn drop(&mut self) {
        if self.slot {
            self.shared.release();
        }
    }
}

/// A slot of `limit` once one is free, `None` if `core`'s group is
/// cancelled first (or just as it came).
async fn admit(core: &Core, limit: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
    let mut cancelled = pin!(core.cancellation());
    let mut acquire = pin!(Arc::clone(limit).acquire_owned());
    let permit = poll_fn(|cx| {
        if let Poll::Ready(permit) = acquire.as_mut().poll(cx) {
            return Poll::Ready(permit.ok());
        }
        cancelled.as_mut().poll(cx).map(|()| None)
    })
    .await;
    permit.filter(|_| !core.is_cancelled())
}

pin_project! {
    /// One task of a pool: its body, then its policy applied to how it
    /// ended. Its output says whether the group may still return `Ok`.
    /// Kept small: tokio allocates a task in steps of 128 bytes, and this
    /// is what a connection costs beyond its own future.
    struct PoolTask<F, E> {
        #[pin]
        body: F,
        shared: Arc<Shared<E>>,
        name: TaskName,
        // Holds a slot of the pool's `limit` (its permit forgotten).
        slot: bool,
        // The group handed the body a `Cancelled` (echo.rs): its `Err` is
        // then an echo, not a later failure of its own.
        echoed: bool,
    }
    impl<F, E> PinnedDrop for PoolTask<F, E> {
        fn drop(this: Pin<&mut Self>) {
            // Ended, aborted, or dropped unstarted by a closing group.
            let this = this.project();
            if std::mem::take(this.slot) {
                this.shared.release();
            }
            this.shared.core.uncount_task();
        }
    }
}

impl<F, E> Future for PoolTask<F, E>
where
    F: Future<Output = Result<(), E>>,
    E: Send + 'static,
{
    type Output = bool;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        let this = self.project();
        let (mut body, shared) = (this.body, &**this.shared);
        // A panic that its handler did not take: the group's.
        let escaped = Cell::new(false);
        let policy = Policy {
            fail: |core: &Core, task: TaskName, error: E, echoed: bool| match &shared.supervise {
                Some(handler) => handler(core.span(), &task, Failure::Error(error)),
                None => core.fail_boxed(task, error, echoed),
            },
            panicked: |core: &Core, task: TaskName, payload: Box<dyn Any + Send>| match &shared
                .supervise
            {
                Some(handler) if shared.catch_panics => {
                    handler(core.span(), &task, Failure::Panic(panic_message(&*payload)));
                }
                _ => {
                    escaped.set(true);
                    core.panicked(task, payload);
                }
            },
        };
        // The group is the ambient one around each poll (semantic 6), from
        // the pool's reference rather than one stored in the task.
        let owner = Ambient(&shared.core);
        let polled = poll_guarded(
            &owner,
            &policy,
            &*this.name,
            this.echoed,
            &mut None::<()>,
            || body.as_mut().poll(cx),
        );
        let Poll::Ready((value, _)) = polled else {
            return Poll::Pending;
        };
        // A supervised task's failure, taken by its handler, leaves the
        // group's result alone.
        let ok = value.is_some() || (shared.supervise.is_some() && !escaped.get());
        // Given back once the failure is recorded, as a branch's permit.
        if std::mem::take(this.slot) {
            shared.release();
        }
        // The tasks that ended before this one are freed now, not at the
        // next spawn: a `Group` that stops spawning (a server between
        // bursts) keeps at most the last to end, not the whole burst.
        // (Not under loom: there the set polls its tasks under its lock.)
        #[cfg(not(loom))]
        shared.core.reap_tasks();
        Poll::Ready(ok)
    }
}

impl Ctx {
    /// A new [`Pool`] of tasks of this ctx's group, whose error type is
    /// `E`: without a limit, failing as `ctx.spawn` tasks do until
    /// [`supervise`](Pool::supervise)d. In a branch, `ctx.pool()` is
    /// [`BranchCtx::pool`], typed by the group's error.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let group = errgroup::Group::<std::io::Error>::new();
    /// let ctx = group.ctx();
    /// let pool = ctx.pool::<std::io::Error>().limit(16);
    /// pool.spawn("conn", async { Ok(()) }).await.unwrap();
    /// group.wait().await.unwrap();
    /// # }
    /// ```
    #[must_use]
    pub fn pool<E: Send + 'static>(&self) -> Pool<E> {
        Pool::new(Arc::clone(self.core()))
    }
}

impl<E: Send + 'static> BranchCtx<'_, E> {
    /// A new [`Pool`] of tasks of this branch's group, of the group's error
    /// type: the per-connection tasks of an accept loop. See [`Pool`].
    ///
    /// ```
    /// use errgroup::errgroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let result = errgroup! {
    ///     accept => {
    ///         let conns = ctx.pool().limit(8);
    ///         conns.spawn("conn0", async { Err("bad frame") }).await.ok();
    ///         Ok(()) // the unsupervised task's error is the group's
    ///     },
    /// };
    /// assert_eq!(result.unwrap_err().to_string(), "task `conn0` failed: bad frame");
    /// # }
    /// ```
    #[must_use]
    pub fn pool(&self) -> Pool<E> {
        Pool::new(Arc::clone(self.core()))
    }
}
