//! `Group`: the dynamic API, for work whose shape is known only at run time.

use std::future::{Future, poll_fn};
use std::sync::OnceLock;
use std::task::Poll;
use std::time::Duration;

use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::branch::{Kept, Run, task_unit};
use crate::ctx::{self, Ctx, IntoParent, ParentKind, Shutdown, Watch};
use crate::error::{Cause, Error, Running, TaskName};
use crate::lifecycle::Lifecycle;
use crate::limit::Start;
use crate::pool::Pool;
use crate::state::{Core, Settings, State, Verdict};
use crate::sync::{Arc, Mutex, lock};
use crate::trace;

/// A cancel-on-first-error group built at run time: Go's `errgroup.Group`.
///
/// Every task is a tokio task (`Send + 'static`) that gets its own [`Ctx`].
/// The first task to return `Err` cancels the others' ctx; [`wait`](Group::wait)
/// waits for all of them and returns that first error. `errgroup!` runs on
/// the same machinery; use the macro when the branches are known when you
/// write the code.
///
/// Created inside a branch of another group, a `Group` is its child: it is
/// cancelled when that group is.
///
/// Dropping a `Group` before `wait` completes aborts its tasks.
///
/// What the macro's headers do has a builder call here, made before the
/// first `spawn`: [`limit`](Group::limit), [`timeout`](Group::timeout),
/// [`deadline`](Group::deadline), [`grace`](Group::grace),
/// [`on_error_continue`](Group::on_error_continue),
/// [`shutdown_on`](Group::shutdown_on); [`with_parent`](Group::with_parent)
/// takes a [`Ctx`] or a `CancellationToken`. Tasks return `()` unless
/// [`returning`](Group::returning) says otherwise; then their values come
/// back as they complete ([`join_next`](Group::join_next)) or all at the
/// end ([`wait_all`](Group::wait_all), [`wait_results`](Group::wait_results)).
///
/// ```
/// use errgroup::Group;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut group = Group::new().limit(4);
/// for id in 0..10u32 {
///     group.spawn(format!("job{id}"), move |ctx| async move {
///         if id == 3 {
///             return Err(format!("job {id} failed"));
///         }
///         ctx.cancelled().await; // every other job waits for the failure
///         Ok(())
///     });
/// }
/// let err = group.wait().await.unwrap_err();
/// assert_eq!(err.task().unwrap(), "job3");
/// # }
/// ```
#[must_use = "a group does nothing useful unless you `wait` for it"]
pub struct Group<E, T = ()> {
    settings: Settings,
    /// Built on first use (`ctx`, `spawn`, `wait`), so that the
    /// builder-style calls configure a group that does not exist yet.
    built: OnceLock<Built<E>>,
    /// The `shutdown_on` signals, as one (the first to complete), watched
    /// from when the group is built.
    signal: Mutex<Option<Signal>>,
    grace: Option<Duration>,
    /// `on_error = continue`: a task's error is its result, not the group's.
    supervise: bool,
    /// The results of the tasks `spawn` started, until taken: each task
    /// hands its own over as it ends. The tasks themselves run in the
    /// core's task set, with those of `ctx.spawn`: one container, one
    /// shutdown rule.
    own: Arc<Mutex<Own<T, E>>>,
    /// How many tasks `spawn` was asked for: the next one's index.
    spawned: usize,
    /// `join_next` took a failure, or skipped a task that never ran: the
    /// group's result cannot be `Ok`.
    taken_not_ok: bool,
}

/// What is kept of the group's own tasks that ended.
struct Own<T, E> {
    /// Results handed over by the tasks as they ended: only those someone
    /// will collect (see `keep`).
    reaped: std::collections::VecDeque<Done<T, E>>,
    /// What is kept of a task's result: everything once `returning` was
    /// called; else its failures only, so that a group spawned from for
    /// ever holds only what still runs.
    keep: Keep,
    /// Tasks of its own started and not yet ended (`join_next`'s end).
    running: usize,
    /// A task ended without an outcome (aborted by grace, or its group
    /// dropped): it did not return `Ok`, and the group must not say that
    /// everything did.
    lost: bool,
}

impl<T, E> Own<T, E> {
    fn new(keep: Keep) -> Arc<Mutex<Self>> {
        Arc::new(Mutex::new(Own {
            reaped: std::collections::VecDeque::new(),
            keep,
            running: 0,
            lost: false,
        }))
    }
}

/// A task of the group's own, until it hands its result over: one that
/// ends without doing so (aborted, dropped) is counted out as lost.
struct Ending<T, E>(Option<Arc<Mutex<Own<T, E>>>>);

impl<T, E> Ending<T, E> {
    fn start(own: &Arc<Mutex<Own<T, E>>>) -> Self {
        lock(own).running += 1;
        Ending(Some(Arc::clone(own)))
    }

    /// The task's result, kept if someone will collect it.
    fn hand_over(mut self, done: Done<T, E>) {
        let Some(own) = self.0.take() else { return };
        let mut own = lock(&own);
        own.running -= 1;
        if own.keep == Keep::Everything || !matches!(done.outcome, Outcome::Value(_)) {
            own.reaped.push_back(done);
        }
    }
}

impl<T, E> Drop for Ending<T, E> {
    fn drop(&mut self) {
        if let Some(own) = self.0.take() {
            let mut own = lock(&own);
            own.running -= 1;
            own.lost = true;
        }
    }
}

/// What a group keeps of its tasks' results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    Everything,
    Failures,
}

/// How one task of the group's own ended.
struct Done<T, E> {
    index: usize,
    task: TaskName,
    outcome: Outcome<T, E>,
}

enum Outcome<T, E> {
    Value(T),
    /// `verdict`: where its error goes once the group finishes
    /// ([`State::keep`]); `None` under `on_error_continue`, where it is
    /// the task's own result.
    Failed {
        error: E,
        verdict: Option<Verdict>,
    },
    /// It never ran (the group was cancelled while it waited for a `limit`
    /// slot), or panicked (the panic resumes in `wait`).
    NoValue,
}

type Signal = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

impl<E, T> std::fmt::Debug for Group<E, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("settings", &self.settings)
            .field("core", &self.built.get().map(|b| &b.state.place))
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Built<E> {
    state: State<E>,
    /// The task that runs the group's deadline, token parent and
    /// `shutdown_on` signal ([`Lifecycle::watch`]): they must act even while
    /// nobody awaits `wait`. Started as soon as a runtime is at hand,
    /// aborted when the group ends.
    watcher: Mutex<Watcher>,
}

/// Where a `Group`'s watcher task is.
#[derive(Debug)]
enum Watcher {
    /// Not started: no runtime was at hand yet.
    Unarmed,
    Running(AbortHandle),
    /// Started and aborted, or nothing to watch.
    Idle,
}

impl<E: Send + 'static> Default for Group<E> {
    fn default() -> Self {
        Group::new()
    }
}

impl<E: Send + 'static> Group<E> {
    /// An empty group. Inside a branch of another group it is that group's
    /// child; elsewhere it is a root.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let group = errgroup::Group::<std::io::Error>::new();
    /// assert!(group.wait().await.is_ok());
    /// # }
    /// ```
    #[track_caller]
    pub fn new() -> Self {
        Group::build(ctx::ambient_core())
    }

    /// An empty group that is cancelled when `parent`'s group is: Go's
    /// `errgroup.WithContext(ctx)`.
    ///
    /// ```
    /// use errgroup::{errgroup, Group};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let result = errgroup! {
    ///     failing => Err("boom"),
    ///     dynamic => {
    ///         let mut group = Group::<&str>::with_parent(ctx);
    ///         group.spawn("child", |ctx| async move { ctx.cancelled().await; Ok(()) });
    ///         group.wait().await.map_err(|e| e.to_string().leak() as &str)
    ///     },
    /// };
    /// assert_eq!(result.unwrap_err().task().unwrap(), "failing");
    /// # }
    /// ```
    ///
    /// A tokio-util `CancellationToken` can be the parent too: its
    /// cancellation shuts the group down ([`Cause::Shutdown`] by `"token"`,
    /// under [`Cause::Parent`]).
    ///
    /// ```
    /// use tokio_util::sync::CancellationToken;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let token = CancellationToken::new();
    /// let mut group = errgroup::Group::<()>::with_parent(&token);
    /// group.spawn("server", |ctx| async move { ctx.cancelled().await; Ok(()) });
    /// token.cancel();
    /// group.wait().await.unwrap();
    /// # }
    /// ```
    #[track_caller]
    pub fn with_parent(parent: impl IntoParent) -> Self {
        let mut group = Group::build(None);
        match parent.into_parent().0 {
            ParentKind::Group(core) => group.settings.parent = Some(core),
            ParentKind::Token(token) => group.settings.token = Some(token),
        }
        group
    }

    /// The same group, its tasks returning `T` instead of `()`: their
    /// values come back through [`join_next`](Group::join_next),
    /// [`wait_all`](Group::wait_all) or [`wait_results`](Group::wait_results).
    /// Call it before the first `spawn`.
    ///
    /// Without it, nothing is kept of a task that returned `Ok(())`: it is
    /// freed as the next task ends (or at the next `spawn`), so that a
    /// group spawned from for ever (an accept loop), idle between bursts
    /// or not, holds only what still runs, and `join_next`,
    /// `wait_all` and `wait_results` give only the failures.
    /// `returning::<()>()` keeps every result.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut group = errgroup::Group::<()>::new().returning::<String>();
    /// group.spawn("a", |_| async { Ok("alpha".to_string()) });
    /// group.spawn("b", |_| async { Ok("beta".to_string()) });
    /// assert_eq!(group.wait_all().await.unwrap(), ["alpha", "beta"]);
    /// # }
    /// ```
    pub fn returning<T: Send + 'static>(mut self) -> Group<E, T> {
        assert!(
            self.built.get().is_none(),
            "errgroup: Group::returning must be called before spawn or ctx"
        );
        // `self` is dropped empty: nothing was built, so its drop does nothing.
        Group {
            settings: std::mem::take(&mut self.settings),
            built: OnceLock::new(),
            signal: Mutex::new(lock(&self.signal).take()),
            grace: self.grace,
            supervise: self.supervise,
            own: Own::new(Keep::Everything),
            spawned: 0,
            taken_not_ok: false,
        }
    }
}

impl<E: Send + 'static, T: Send + 'static> Group<E, T> {
    #[track_caller]
    fn build(parent: Option<Arc<Core>>) -> Self {
        Group {
            settings: Settings {
                parent,
                site: Some(std::panic::Location::caller()),
                ..Settings::default()
            },
            built: OnceLock::new(),
            signal: Mutex::new(None),
            grace: None,
            supervise: false,
            own: Own::new(Keep::Failures),
            spawned: 0,
            taken_not_ok: false,
        }
    }

    /// Changes a setting of a group that nobody refers to yet.
    fn configure(mut self, what: &str, change: impl FnOnce(&mut Settings)) -> Self {
        assert!(
            self.built.get().is_none(),
            "errgroup: Group::{what} must be called before spawn or ctx"
        );
        change(&mut self.settings);
        self
    }

    /// The group's state, built on first use; its deadline timer started
    /// as soon as a runtime is at hand.
    fn built(&self) -> &Built<E> {
        let built = self.built.get_or_init(|| {
            let state = State::new(self.settings.clone());
            // Every task is in the registry: a `Watch` is answered at once.
            state.core().without_driver();
            Built {
                state,
                watcher: Mutex::new(Watcher::Unarmed),
            }
        });
        built.arm(&self.settings, &self.signal);
        built
    }

    /// At most `n` tasks run at once; the others wait, in spawn order, for a
    /// slot: Go's `SetLimit`. Call it before the first `spawn`.
    ///
    /// # Panics
    ///
    /// If `n` is 0, or if called after [`spawn`](Group::spawn) or [`ctx`](Group::ctx).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut group = errgroup::Group::<()>::new().limit(2);
    /// for i in 0..8 {
    ///     group.spawn(format!("t{i}"), |_| async { Ok(()) });
    /// }
    /// group.wait().await.unwrap();
    /// # }
    /// ```
    pub fn limit(self, n: usize) -> Self {
        let n = crate::limit::check(n);
        self.configure("limit", |s| s.limit = Some(n))
    }

    /// After the group is cancelled, tasks still running `grace` later are
    /// aborted, and [`wait`](Group::wait) returns once they have stopped:
    /// the `grace = d;` header of `errgroup!`. The period is counted from
    /// when `wait` sees the cancellation.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let mut group = errgroup::Group::<&str>::new().grace(Duration::from_secs(5));
    /// group.spawn("stubborn", |_| async { tokio::time::sleep(Duration::from_secs(3600)).await; Ok(()) });
    /// group.spawn("failing", |_| async { Err("boom") });
    /// let start = tokio::time::Instant::now();
    /// assert!(group.wait().await.is_err());
    /// assert_eq!(start.elapsed(), Duration::from_secs(5)); // not an hour
    /// # }
    /// ```
    pub fn grace(mut self, grace: Duration) -> Self {
        assert!(
            self.built.get().is_none(),
            "errgroup: Group::grace must be called before spawn or ctx"
        );
        self.grace = Some(grace);
        self
    }

    /// Cancels the group with [`Cause::DeadlineExceeded`] `duration` from now:
    /// Go's `context.WithTimeout`. Call it before the first `spawn`.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let mut group = errgroup::Group::<errgroup::Cancelled>::new().timeout(Duration::from_secs(1));
    /// group.spawn("forever", |ctx| async move { ctx.sleep(Duration::from_secs(3600)).await });
    /// let err = group.wait().await.unwrap_err();
    /// assert_eq!(err.cause(), errgroup::Cause::DeadlineExceeded);
    /// # }
    /// ```
    pub fn timeout(self, duration: Duration) -> Self {
        self.deadline(Instant::now() + duration)
    }

    /// Cancels the group with [`Cause::DeadlineExceeded`] at `at`: Go's
    /// `context.WithDeadline`. Call it before the first `spawn`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let at = Instant::now() + Duration::from_secs(2);
    /// let group = errgroup::Group::<()>::new().deadline(at);
    /// assert_eq!(group.ctx().deadline(), Some(at));
    /// # }
    /// ```
    pub fn deadline(self, at: Instant) -> Self {
        self.configure("deadline", |s| {
            s.deadline = Some(s.deadline.map_or(at, |d| d.min(at)));
        })
    }

    /// The group's own context (task name `"group"`), for work that is not a
    /// task of the group but should stop with it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let group = errgroup::Group::<()>::new();
    /// let ctx = group.ctx();
    /// group.wait().await.unwrap();
    /// assert!(ctx.is_cancelled()); // as in Go, a group's ctx ends with the group
    /// # }
    /// ```
    #[must_use]
    pub fn ctx(&self) -> Ctx {
        Ctx::new(
            Arc::clone(self.built().state.core()),
            TaskName::new("group"),
        )
    }

    /// Stops the group on purpose ([`Cause::Shutdown`] by `"group"`), as
    /// [`Ctx::shutdown`] does from inside: `wait` then returns `Ok` if every
    /// task still returns `Ok`, else an error that
    /// [`is_shutdown`](Error::is_shutdown). `false` if it was already cancelled.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut group = errgroup::Group::<()>::new();
    /// group.spawn("server", |ctx| async move { ctx.cancelled().await; Ok(()) });
    /// assert!(group.shutdown());
    /// group.wait().await.unwrap();
    /// # }
    /// ```
    #[allow(
        clippy::must_use_candidate,
        reason = "called for its effect; whether it stopped the group is a bonus"
    )]
    pub fn shutdown(&self) -> bool {
        self.built().state.core().cancel(Cause::Shutdown {
            by: TaskName::new("group"),
        })
    }

    /// A handle that stops the group from anywhere, named `"group"` until
    /// [`Shutdown::by`] renames it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut group = errgroup::Group::<()>::new();
    /// let stop = group.shutdown_handle().by("admin");
    /// group.spawn("server", |ctx| async move { ctx.cancelled().await; Ok(()) });
    /// tokio::spawn(async move { stop.shutdown() });
    /// group.wait().await.unwrap();
    /// # }
    /// ```
    #[must_use]
    pub fn shutdown_handle(&self) -> Shutdown {
        Shutdown::new(self.built().state.core(), TaskName::new("group"))
    }

    /// Shuts the group down ([`Cause::Shutdown`] by `"shutdown_on"`) when
    /// `signal` completes, whatever it outputs: `tokio::signal::ctrl_c()`, a
    /// token's `cancelled_owned()`, a oneshot receiver. Go's
    /// `signal.NotifyContext`. Call it before the first `spawn`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// let mut group = errgroup::Group::<()>::new().shutdown_on(stopped);
    /// group.spawn("server", |ctx| async move { ctx.cancelled().await; Ok(()) });
    /// stop.send(()).unwrap();
    /// group.wait().await.unwrap();
    /// # }
    /// ```
    pub fn shutdown_on<F>(self, signal: F) -> Self
    where
        F: std::future::IntoFuture,
        F::IntoFuture: Send + 'static,
    {
        assert!(
            self.built.get().is_none(),
            "errgroup: Group::shutdown_on must be called before spawn or ctx"
        );
        let signal = signal.into_future();
        let mut slot = lock(&self.signal);
        let before = slot.take();
        *slot = Some(Box::pin(async move {
            match before {
                None => drop(signal.await),
                Some(before) => {
                    let signal = std::pin::pin!(signal);
                    futures_util::future::select(before, signal).await;
                }
            }
        }));
        drop(slot);
        self
    }

    /// Starts `task(ctx)` as a tokio task of the group: Go's `g.Go`.
    ///
    /// The task always starts, as in Go, also in a group already cancelled
    /// (one made during a shutdown, or with a zero `timeout`): it sees its
    /// ctx cancelled and can clean up. With a [`limit`](Group::limit), the
    /// task waits for a slot before its body runs, and does not run if the
    /// group is cancelled meanwhile.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut group = errgroup::Group::new();
    /// group.spawn("ok", |_ctx| async { Ok(()) });
    /// group.spawn("bad", |_ctx| async { Err("bad") });
    /// assert_eq!(group.wait().await.unwrap_err().to_string(), "task `bad` failed: bad");
    /// # }
    /// ```
    pub fn spawn<F, Fut>(&mut self, name: impl Into<TaskName>, task: F)
    where
        F: FnOnce(Ctx) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let start = self.built().state.core().start_written();
        self.start(name.into(), task, start);
    }

    /// A new [`Pool`] of this group's tasks: its own limit with a spawn that
    /// waits for a slot, and a failure policy
    /// ([`supervise`](Pool::supervise)). Nothing is kept of a pool's
    /// finished task.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let group = errgroup::Group::<String>::new();
    /// let conns = group.pool().limit(64).supervise(|task, failure| eprintln!("{task} {failure}"));
    /// for id in 0..1000 {
    ///     conns.spawn(format!("conn{id}"), async { Ok(()) }).await.unwrap();
    /// }
    /// group.wait().await.unwrap();
    /// # }
    /// ```
    #[must_use]
    pub fn pool(&self) -> Pool<E> {
        Pool::new(Arc::clone(self.built().state.core()))
    }

    /// Starts `task(ctx)` only if a slot is free under the [`limit`](Group::limit):
    /// Go's `g.TryGo`. Returns `false`, without calling `task`, when `limit`
    /// tasks are running.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut group = errgroup::Group::<()>::new().limit(1);
    /// let (release, wait) = tokio::sync::oneshot::channel::<()>();
    /// assert!(group.try_spawn("first", |_| async move { wait.await.ok(); Ok(()) }));
    /// assert!(!group.try_spawn("second", |_| async { Ok(()) }));
    /// release.send(()).unwrap();
    /// group.wait().await.unwrap();
    /// # }
    /// ```
    #[must_use = "the task was not started if this returns false"]
    pub fn try_spawn<F, Fut>(&mut self, name: impl Into<TaskName>, task: F) -> bool
    where
        F: FnOnce(Ctx) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        match self.built().state.core().start_written() {
            Start::Queued => false,
            start => {
                self.start(name.into(), task, start);
                true
            }
        }
    }

    /// Starts one task of the group's own, as `start` allows.
    fn start<F, Fut>(&mut self, task: TaskName, make: F, start: Start)
    where
        F: FnOnce(Ctx) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let core = Arc::clone(self.built().state.core());
        core.reap_tasks();
        let index = self.spawned;
        self.spawned += 1;
        if matches!(start, Start::Refused) {
            core.refuse_task();
            return;
        }
        let body = make(Ctx::new(Arc::clone(&core), task.clone()));
        let running = core.running_guard(&task);
        let supervise = self.supervise;
        // Its failure is recorded in the group as any task's (the group
        // cancelled before the permit is given back), its error kept for
        // its outcome: under `on_error_continue` it is the task's own.
        let record = Kept::new(move |core: &Core, task: TaskName, echoed: bool| {
            (!supervise).then(|| core.fail_kept(task, echoed))
        });
        let run = Run::new(
            record,
            task_unit(Arc::clone(&core), task.clone(), body, start),
        );
        let ending = Ending::start(&self.own);
        let (name, spawner) = (trace::name(&task), Arc::clone(&core));
        let job = async move {
            let mut run = std::pin::pin!(run);
            let outcome = match run.as_mut().await {
                Some(value) => Outcome::Value(value),
                None => run
                    .record()
                    .take()
                    .map_or(Outcome::NoValue, |(error, verdict)| Outcome::Failed {
                        error,
                        verdict,
                    }),
            };
            drop(running);
            ending.hand_over(Done {
                index,
                task,
                outcome,
            });
            // Those that ended before this one are freed now, not at the
            // next spawn, which may not come for a long time. (Not under
            // loom: there the set polls its tasks under its lock.)
            #[cfg(not(loom))]
            core.reap_tasks();
            // Its outcome is in `own`: the core's tally is of the others.
            true
        };
        // Refused only once the group is closed, which `wait` (taking the
        // group) or grace does: the job, dropped, counts itself out.
        let _ = spawner.spawn_task(&name, job);
    }

    /// Waits for every task, then returns the first error (by time), or
    /// `Ok(())`: Go's `g.Wait`. The group's ctx is cancelled afterwards in
    /// every case. A task's panic resumes here once the others have returned.
    ///
    /// # Cancellation safety
    ///
    /// Dropping the future drops the group, which aborts every task.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut group = errgroup::Group::<String>::new();
    /// group.spawn("a", |_| async { Ok(()) });
    /// assert!(group.wait().await.is_ok());
    /// # }
    /// ```
    pub async fn wait(self) -> Result<(), Error<E>>
    where
        E: Sync,
    {
        self.finish(|_| ()).await.map(drop)
    }

    /// Waits for every task like [`wait`](Group::wait), then gives the
    /// values of those not taken by [`join_next`](Group::join_next), in
    /// the order they were spawned; the first error if a task failed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut group = errgroup::Group::<()>::new().returning::<u32>();
    /// for n in 1..=3 {
    ///     group.spawn(format!("square{n}"), move |_| async move { Ok(n * n) });
    /// }
    /// assert_eq!(group.wait_all().await.unwrap(), [1, 4, 9]);
    /// # }
    /// ```
    pub async fn wait_all(self) -> Result<Vec<T>, Error<E>>
    where
        E: Sync,
    {
        let results = self.finish(|results| results).await?;
        // Under `on_error_continue` a failed task did not fail the group,
        // but there is no value to give for it.
        results
            .into_iter()
            .map(|(task, result)| result.map_err(|error| Error::Failed { task, error }))
            .collect()
    }

    /// Waits for every task, then gives each one's own result, in the order
    /// they were spawned: the shape for a supervisor
    /// ([`on_error_continue`](Group::on_error_continue)). The outer `Err` is
    /// for a group cancelled before some task could run.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut group = errgroup::Group::<String>::new().returning::<u32>().on_error_continue();
    /// group.spawn("good", |_| async { Ok(1) });
    /// group.spawn("bad", |_| async { Err("no".to_string()) });
    /// let results = group.wait_results().await.unwrap();
    /// assert_eq!(results[0].1, Ok(1));
    /// assert_eq!(results[1].1, Err("no".to_string()));
    /// # }
    /// ```
    pub async fn wait_results(self) -> Result<Vec<(TaskName, Result<T, E>)>, Error<E>>
    where
        E: Sync,
    {
        self.finish(|results| results).await
    }

    /// The next task to end, with its result: `JoinSet::join_next`. A
    /// task's error still cancels the group (unless
    /// [`on_error_continue`](Group::on_error_continue)), but the error is
    /// yours once taken here: `wait` then reports the cancellation. Tasks
    /// that never ran are skipped, and a panic resumes in `wait`. `None`
    /// once every task spawned so far has been taken.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut group = errgroup::Group::<()>::new().returning::<&str>();
    /// let (release, gate) = tokio::sync::oneshot::channel::<()>();
    /// group.spawn("slow", |_| async move { gate.await.ok(); Ok("slow") });
    /// group.spawn("fast", |_| async { Ok("fast") });
    /// let (task, value) = group.join_next().await.unwrap();
    /// assert_eq!((task.to_string(), value), ("fast".to_string(), Ok("fast")));
    /// release.send(()).unwrap();
    /// assert_eq!(group.join_next().await.unwrap().1, Ok("slow"));
    /// assert!(group.join_next().await.is_none());
    /// group.wait().await.unwrap();
    /// # }
    /// ```
    pub async fn join_next(&mut self) -> Option<(TaskName, Result<T, E>)> {
        let core = Arc::clone(self.built().state.core());
        let keep = lock(&self.own).keep;
        loop {
            // Each poll looks at what a task's end took from the set first:
            // results come in the order the tasks ended.
            let done = poll_fn(|cx| {
                loop {
                    {
                        let mut own = lock(&self.own);
                        if let Some(done) = own.reaped.pop_front() {
                            return Poll::Ready(Some(done));
                        }
                        if own.running == 0 {
                            return Poll::Ready(None);
                        }
                    }
                    // Not under `own`'s lock: a task's end takes it. A task
                    // hands its result over before the set sees it end, so
                    // an empty set has handed every result over.
                    if core.poll_tasks(core.look(), cx, false).is_pending() {
                        return Poll::Pending;
                    }
                    if lock(&self.own).reaped.is_empty() {
                        return Poll::Ready(None);
                    }
                }
            })
            .await?;
            match done.outcome {
                Outcome::Value(_) if keep == Keep::Failures => {}
                Outcome::Value(value) => return Some((done.task, Ok(value))),
                Outcome::Failed { error, .. } => {
                    self.taken_not_ok |= !self.supervise;
                    return Some((done.task, Err(error)));
                }
                Outcome::NoValue => self.taken_not_ok = true,
            }
        }
    }

    /// A task's error is its own result, taken with
    /// [`join_next`](Group::join_next) or [`wait_results`](Group::wait_results):
    /// it cancels nothing, as the macro's `on_error = continue;`. Call it
    /// before the first `spawn`. It covers the tasks of
    /// [`spawn`](Group::spawn); a task started with `ctx.spawn` still
    /// cancels the group when it fails, and a [`Pool`] has its own policy
    /// ([`Pool::supervise`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut group = errgroup::Group::<&str>::new().on_error_continue();
    /// group.spawn("bad", |_| async { Err("no") });
    /// group.spawn("good", |ctx| async move { ctx.check().map_err(|_| "cancelled") });
    /// assert!(group.wait().await.is_ok(), "a supervisor's tasks fail alone");
    /// # }
    /// ```
    pub fn on_error_continue(mut self) -> Self {
        assert!(
            self.built.get().is_none(),
            "errgroup: Group::on_error_continue must be called before spawn or ctx"
        );
        self.supervise = true;
        self
    }

    /// Waits for every task (the group's own and `ctx.spawn`'s), with the
    /// grace period; then the group's result, and `keep` of every own
    /// task's result still here, in spawn order.
    async fn finish<R>(
        self,
        keep: impl FnOnce(Vec<(TaskName, Result<T, E>)>) -> R,
    ) -> Result<R, Error<E>>
    where
        E: Sync,
    {
        let core = Arc::clone(self.built().state.core());
        let mut life = std::pin::pin!(Lifecycle::<std::future::Pending<()>>::grace(
            &core, self.grace
        ));
        let all_ok = poll_fn(|cx| {
            // Grace expired: the core's tasks, the group's own among them,
            // were aborted by the shutdown rule, and are awaited below.
            life.as_mut().poll(cx, &core, |_| core.task_census());
            // Ready once the set is empty: every own task has handed its
            // result over. It is sealed then, not before: a running task
            // may still add one.
            core.poll_tasks(core.look(), cx, true)
        })
        .await;
        let (mut done, keep_all, lost) = {
            let mut own = lock(&self.own);
            (
                Vec::from(std::mem::take(&mut own.reaped)),
                own.keep,
                own.lost,
            )
        };
        let state = &self.built().state;
        let mut all_ok = all_ok && !self.taken_not_ok && !lost;
        let mut results = Vec::with_capacity(done.len());
        done.sort_by_key(|d| d.index);
        for d in done {
            match d.outcome {
                Outcome::Value(_) if keep_all == Keep::Failures => {}
                Outcome::Value(value) => results.push((d.task, Ok(value))),
                Outcome::Failed { error, verdict } => {
                    all_ok &= self.supervise;
                    match verdict {
                        Some(verdict) => state.keep(verdict, d.task, error),
                        // `on_error_continue`: the task's own result.
                        None => results.push((d.task, Err(error))),
                    }
                }
                Outcome::NoValue => all_ok = false,
            }
        }
        let value = keep(results);
        state.finish(all_ok.then_some(value))
    }
    /// How many tasks are running: started (or waiting for a `limit`
    /// slot) and not yet ended, `ctx.spawn` tasks included.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut group = errgroup::Group::<()>::new();
    /// assert_eq!(group.len(), 0);
    /// let (release, wait) = tokio::sync::oneshot::channel::<()>();
    /// group.spawn("held", |_| async move { wait.await.ok(); Ok(()) });
    /// assert_eq!(group.len(), 1);
    /// release.send(()).unwrap();
    /// group.wait().await.unwrap();
    /// # }
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.built
            .get()
            .map_or(0, |built| built.state.core().running())
    }

    /// The tasks still running (started, or waiting for a `limit` slot),
    /// `ctx.spawn` tasks included, in the order they were spawned, each with how long since it was spawned. The same as
    /// [`Watch::running`], at once: a `Group`'s tasks are all in its state.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let mut group = errgroup::Group::<()>::new();
    /// group.spawn("quick", |_| async { Ok(()) });
    /// group.spawn("slow", |_| async { tokio::time::sleep(Duration::from_secs(10)).await; Ok(()) });
    /// tokio::time::sleep(Duration::from_secs(3)).await;
    /// let running = group.running();
    /// assert_eq!(running.len(), 1);
    /// assert_eq!(running[0].to_string(), "`slow` for 3s");
    /// group.wait().await.unwrap();
    /// # }
    /// ```
    #[must_use]
    pub fn running(&self) -> Vec<Running> {
        self.built.get().map_or_else(Vec::new, |built| {
            built.state.core().task_census().into_list()
        })
    }

    /// A handle that asks the group which tasks are still running, from
    /// anywhere (a watchdog task, a debug endpoint): see [`Watch`]. It does
    /// not keep the group alive; once the group has returned, it answers
    /// with nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut group = errgroup::Group::<()>::new();
    /// let watch = group.watch();
    /// group.spawn("server", |ctx| async move { ctx.cancelled().await; Ok(()) });
    /// let debug = tokio::spawn(async move {
    ///     let running = watch.running().await;
    ///     running.iter().map(|r| r.task().to_string()).collect::<Vec<_>>()
    /// });
    /// assert_eq!(debug.await.unwrap(), ["server"]);
    /// group.shutdown();
    /// group.wait().await.unwrap();
    /// # }
    /// ```
    #[must_use]
    pub fn watch(&self) -> Watch {
        Watch::new(self.built().state.core())
    }

    /// Whether no task is running ([`len`](Group::len) is 0).
    ///
    /// ```
    /// let group = errgroup::Group::<()>::new();
    /// assert!(group.is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<E> Built<E> {
    /// Starts the watcher, once, as soon as there is a runtime.
    fn arm(&self, settings: &Settings, signal: &Mutex<Option<Signal>>) {
        let mut watcher = lock(&self.watcher);
        if !matches!(*watcher, Watcher::Unarmed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let core = Arc::clone(self.state.core());
        let watch = Lifecycle::watch(core, settings.token.clone(), lock(signal).take());
        *watcher = match watch {
            Some(watch) => Watcher::Running(runtime.spawn(watch).abort_handle()),
            None => Watcher::Idle,
        };
    }
}

impl<E, T> Drop for Group<E, T> {
    fn drop(&mut self) {
        let Some(built) = self.built.get_mut() else {
            return;
        };
        if let Watcher::Running(watcher) =
            std::mem::replace(&mut *lock(&built.watcher), Watcher::Idle)
        {
            watcher.abort();
        }
        // Nothing if `wait` finished the group.
        built.state.core().shut_down();
    }
}
