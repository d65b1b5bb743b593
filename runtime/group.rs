//! `Group`: the dynamic API, for work whose shape is known only at run time.

use std::future::{Future, poll_fn};
use std::sync::OnceLock;
use std::task::Poll;
use std::time::Duration;

use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::ctx::{self, Ctx, IntoParent, ParentKind, Shutdown};
use crate::engine::Grace;
use crate::error::{Cause, Error, TaskName};
use crate::limit::Start;
use crate::state::{Settings, State, token_cause};
use crate::sync::{Arc, Mutex, lock};

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
pub struct Group<E> {
    settings: Settings,
    /// Built on first use (`ctx`, `spawn`, `wait`), so that the
    /// builder-style calls configure a group that does not exist yet.
    built: OnceLock<Built<E>>,
    /// `shutdown_on` signals, started as watchers when the group is built.
    signals: Mutex<Vec<Signal>>,
    grace: Option<Duration>,
    finished: bool,
}

type Signal = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

impl<E> std::fmt::Debug for Group<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("settings", &self.settings)
            .field("core", &self.built.get().map(|b| &b.state.core))
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Built<E> {
    state: State<E>,
    /// Tasks of their own that cancel the group (the deadline's timer, a
    /// token parent, `shutdown_on` signals): they must act even while
    /// nobody awaits `wait`. Started as soon as a runtime is at hand
    /// (`None` until then), aborted when the group ends.
    watchers: Mutex<Option<Vec<AbortHandle>>>,
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
    ///     failing => Err::<(), _>("boom"),
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

    #[track_caller]
    fn build(parent: Option<Arc<crate::state::Core>>) -> Self {
        Group {
            settings: Settings {
                parent,
                site: Some(std::panic::Location::caller()),
                ..Settings::default()
            },
            built: OnceLock::new(),
            signals: Mutex::new(Vec::new()),
            grace: None,
            finished: false,
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
        let built = self.built.get_or_init(|| Built {
            state: State::new(self.settings.clone()),
            watchers: Mutex::new(None),
        });
        built.arm(&self.settings, &self.signals);
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
        Ctx::new(Arc::clone(&self.built().state.core), TaskName::new("group"))
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
        self.built().state.core.cancel(Cause::Shutdown {
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
        Shutdown::new(&self.built().state.core, TaskName::new("group"))
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
        lock(&self.signals).push(Box::pin(async move {
            signal.await;
        }));
        self
    }

    /// Starts `task(ctx)` as a tokio task of the group: Go's `g.Go`.
    ///
    /// With a [`limit`](Group::limit), the task waits for a slot before its
    /// body runs, and does not run if the group is cancelled meanwhile. A
    /// task spawned once the group is cancelled never runs; one spawned
    /// before always starts, as in Go.
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
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        let core = &self.built().state.core;
        // Refused only once the group is cancelled: then nothing starts, as documented.
        let _ = ctx::spawn(core, name.into(), task, core.start());
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
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        let core = &self.built().state.core;
        match core.start() {
            Start::Queued => false,
            start => {
                let _ = ctx::spawn(core, name.into(), task, start);
                true
            }
        }
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
    pub async fn wait(mut self) -> Result<(), Error<E>> {
        let core = Arc::clone(&self.built().state.core);
        let period = self.grace.unwrap_or_default();
        let mut grace = std::pin::pin!(
            self.grace
                .map(|period| Grace::new(core.cancellation(), period))
        );
        let all_ok = poll_fn(|cx| {
            if let Some(expired) = grace.as_mut().as_pin_mut() {
                if expired.poll_expired(cx) {
                    crate::trace::grace_expired(core.span(), period);
                    grace.set(None);
                    // The shutdown rule: abort, then await until empty.
                    core.close_tasks();
                }
            }
            core.poll_tasks(cx, true)
        })
        .await;
        self.finished = true;
        self.built().state.finish(all_ok.then_some(()))
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
            .map_or(0, |built| built.state.core.running())
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
    /// Starts the watchers, once, as soon as there is a runtime.
    fn arm(&self, settings: &Settings, signals: &Mutex<Vec<Signal>>) {
        let mut watchers = lock(&self.watchers);
        if watchers.is_some() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let core = &self.state.core;
        let mut started = Vec::new();
        let mut watch = |cause: Cause, signal: Signal| {
            let core = Arc::clone(core);
            let task = runtime.spawn(async move {
                let mut signal = signal;
                let mut cancelled = std::pin::pin!(core.cancellation());
                let fired = poll_fn(|cx| {
                    if signal.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(true);
                    }
                    cancelled.as_mut().poll(cx).map(|()| false)
                })
                .await;
                if fired {
                    core.cancel(cause);
                }
            });
            started.push(task.abort_handle());
        };
        if let Some(at) = core.own_deadline() {
            watch(
                Cause::DeadlineExceeded,
                Box::pin(tokio::time::sleep_until(at)),
            );
        }
        if let Some(token) = &settings.token {
            watch(token_cause(), Box::pin(token.clone().cancelled_owned()));
        }
        for signal in lock(signals).drain(..) {
            let by = TaskName::new("shutdown_on");
            watch(Cause::Shutdown { by }, signal);
        }
        *watchers = Some(started);
    }
}

impl<E> Drop for Group<E> {
    fn drop(&mut self) {
        let Some(built) = self.built.get_mut() else {
            return;
        };
        for watcher in lock(&built.watchers).take().into_iter().flatten() {
            watcher.abort();
        }
        if !self.finished {
            built.state.core.cancel(Cause::Dropped);
            built.state.core.close_tasks();
        }
    }
}
