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
//!   driver is woken by every task's end, and at the next spawn for a
//!   [`Group`](crate::Group), which has no driver until `wait`.
//! - The pool's `limit` counts the pool's tasks only, never the group's
//!   branches; and the group's `limit` does not count a pool's tasks.

use std::any::Any;
use std::fmt;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::ctx::{BranchCtx, Ctx, with_ambient};
use crate::error::{Cancelled, TaskName};
use crate::state::{Core, RunningTask};
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

type Handler<E> = dyn Fn(&TaskName, Failure<E>) + Send + Sync;

/// What a pool does with a task's error or panic.
struct Policy<E> {
    /// `None`: Go's rule, an error cancels the group and a panic resumes in it.
    supervise: Option<Box<Handler<E>>>,
    catch_panics: bool,
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
    core: Arc<Core>,
    limit: Option<Arc<Semaphore>>,
    policy: Arc<Policy<E>>,
}

impl<E> Clone for Pool<E> {
    fn clone(&self) -> Self {
        Pool {
            core: Arc::clone(&self.core),
            limit: self.limit.clone(),
            policy: Arc::clone(&self.policy),
        }
    }
}

impl<E> fmt::Debug for Pool<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field(
                "available",
                &self.limit.as_ref().map(|s| s.available_permits()),
            )
            .field("supervised", &self.policy.supervise.is_some())
            .field("catch_panics", &self.policy.catch_panics)
            .finish_non_exhaustive()
    }
}

impl<E: Send + 'static> Pool<E> {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Pool {
            core,
            limit: None,
            policy: Arc::new(Policy {
                supervise: None,
                catch_panics: false,
            }),
        }
    }

    /// Changes the policy of a pool whose clones, if any, keep the old one.
    fn with_policy(mut self, change: impl FnOnce(&mut Policy<E>)) -> Self {
        let old = &*self.policy;
        let mut policy = Policy {
            supervise: None,
            catch_panics: old.catch_panics,
        };
        // A pool is configured before it is shared: take the handler back.
        if let Some(own) = Arc::get_mut(&mut self.policy) {
            policy.supervise = own.supervise.take();
        }
        change(&mut policy);
        self.policy = Arc::new(policy);
        self
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
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(Arc::new(Semaphore::new(crate::limit::check(n))));
        self
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
        let report = move |task: &TaskName, failure: Failure<E>| {
            trace::supervised(task, &failure);
            handler(task, failure);
        };
        self.with_policy(|policy| policy.supervise = Some(Box::new(report)))
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
        self.with_policy(|policy| policy.catch_panics = true)
    }

    /// Free slots under the [`limit`](Pool::limit); `None` without one.
    ///
    /// ```
    /// let group = errgroup::Group::<()>::new();
    /// assert_eq!(group.pool().limit(8).available(), Some(8));
    /// assert_eq!(group.pool().available(), None);
    /// ```
    #[must_use]
    pub fn available(&self) -> Option<usize> {
        self.limit.as_ref().map(|s| s.available_permits())
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
        let permit = match &self.limit {
            None => None,
            Some(limit) => Some(self.admit(limit).await?),
        };
        self.start(name, make, permit)
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
        let permit = match &self.limit {
            None => Waiting::No(None),
            Some(limit) => match Arc::clone(limit).try_acquire_owned() {
                Ok(permit) => Waiting::No(Some(permit)),
                Err(_) => {
                    let (core, limit) = (Arc::clone(&self.core), Arc::clone(limit));
                    Waiting::Queued(Box::pin(async move { admit(&core, &limit).await }))
                }
            },
        };
        self.start_as(name, |_| task, permit)
    }

    /// A slot once one is free; `Err` if the group is cancelled first.
    async fn admit(&self, limit: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit, Cancelled> {
        admit(&self.core, limit).await.ok_or_else(|| self.refused())
    }

    /// A spawn refused because the group was cancelled: under Go's rule a
    /// task that never ran did not return `Ok`; a supervised pool's tasks
    /// do not decide the group's result either way.
    fn refused(&self) -> Cancelled {
        if self.policy.supervise.is_some() {
            self.core.cancelled_error()
        } else {
            self.core.refuse_task()
        }
    }

    fn start<M, F>(
        &self,
        name: TaskName,
        make: M,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<(), Cancelled>
    where
        M: FnOnce(Ctx) -> F,
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        self.start_as(name, make, Waiting::No(permit))
    }

    fn start_as<M, F>(&self, name: TaskName, make: M, permit: Waiting) -> Result<(), Cancelled>
    where
        M: FnOnce(Ctx) -> F,
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        if self.core.is_cancelled() {
            return Err(self.refused());
        }
        // A `Group`'s finished tasks are reaped here, as nobody else does
        // until `wait`: its memory stays what still runs.
        self.core.reap_tasks();
        let ctx = Ctx::new(Arc::clone(&self.core), name.clone());
        let span = trace::branch(self.core.span(), &name);
        let body = trace::instrument(span, with_ambient(ctx.clone(), make(ctx)));
        let running = self.core.running_guard(&name);
        let task = PoolTask {
            body,
            policy: Arc::clone(&self.policy),
            running,
            permit,
        };
        self.core.spawn_task(&trace::name(&name), task)
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

/// A pool task's slot: held (or none needed), or still to wait for.
enum Waiting {
    No(
        #[allow(dead_code, reason = "held for its drop, which gives the slot back")]
        Option<OwnedSemaphorePermit>,
    ),
    Queued(Pin<Box<dyn Future<Output = Option<OwnedSemaphorePermit>> + Send>>),
}

pin_project! {
    /// One task of a pool: its body, then its policy applied to how it ended.
    /// Its output says whether the group may still return `Ok`.
    struct PoolTask<F, E> {
        #[pin]
        body: F,
        policy: Arc<Policy<E>>,
        // Counted and named by the group while the task lives.
        running: RunningTask,
        // The pool's slot, given back as the task ends.
        permit: Waiting,
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
        if let Waiting::Queued(admit) = this.permit {
            match admit.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(permit)) => *this.permit = Waiting::No(Some(permit)),
                // The group stopped first: the body never runs, and under
                // Go's rule a task that never ran did not return `Ok`.
                Poll::Ready(None) => return Poll::Ready(this.policy.supervise.is_some()),
            }
        }
        let body = this.body;
        let failure = match catch_unwind(AssertUnwindSafe(|| body.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(Ok(()))) => {
                *this.permit = Waiting::No(None);
                return Poll::Ready(true);
            }
            Ok(Poll::Ready(Err(error))) => Err(error),
            Err(payload) => Ok(payload),
        };
        let core = this.running.core();
        let task = this.running.name();
        let ok = match (&this.policy.supervise, failure) {
            (Some(handler), Err(error)) => {
                handler(&task, Failure::Error(error));
                true
            }
            (Some(handler), Ok(payload)) if this.policy.catch_panics => {
                handler(&task, Failure::Panic(panic_message(&*payload)));
                true
            }
            (None, Err(error)) => {
                // Recorded before the slot is given back, as a branch's.
                core.fail_boxed(task, error);
                false
            }
            (_, Ok(payload)) => {
                core.panicked(task, payload);
                false
            }
        };
        *this.permit = Waiting::No(None);
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

impl<E: Send + 'static> BranchCtx<E> {
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
