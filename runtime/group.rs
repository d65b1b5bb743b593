//! `Group`: the dynamic API, for work whose shape is known only at run time.

use std::future::{Future, poll_fn};
use std::time::Duration;

use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::ctx::Ctx;
use crate::error::{Cause, Error, TaskName};
use crate::shared::{self, Settings, Start, State};
use crate::sync::Arc;

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
#[derive(Debug)]
#[must_use = "a group does nothing useful unless you `wait` for it"]
pub struct Group<E> {
    settings: Settings,
    state: State<E>,
    watchdog: Option<AbortHandle>,
    finished: bool,
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
    pub fn new() -> Self {
        Group::build(shared::ambient().as_ref())
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
    pub fn with_parent(parent: &Ctx) -> Self {
        Group::build(Some(parent))
    }

    fn build(parent: Option<&Ctx>) -> Self {
        let settings = Settings {
            parent: parent.cloned(),
            ..Settings::default()
        };
        Group {
            state: State::new(settings.clone()),
            settings,
            watchdog: None,
            finished: false,
        }
    }

    /// Changes a setting; the group is rebuilt, which is only possible while
    /// nothing refers to it yet.
    fn reconfigure(mut self, what: &str, change: impl FnOnce(&mut Settings)) -> Self {
        assert!(
            Arc::strong_count(&self.state.core) == 1,
            "errgroup: Group::{what} must be called before spawn or ctx"
        );
        change(&mut self.settings);
        self.state = State::new(self.settings.clone());
        self
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
        self.reconfigure("limit", |s| s.limit = Some(n))
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
        self.reconfigure("deadline", |s| {
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
        self.state.ctx(TaskName::new("group"))
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
        let start = self.state.core.start();
        self.start(name.into(), task, start);
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
        match self.state.core.start() {
            Start::Queued => false,
            start => {
                self.start(name.into(), task, start);
                true
            }
        }
    }

    fn start<F, Fut>(&mut self, name: TaskName, task: F, start: Start)
    where
        F: FnOnce(Ctx) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        self.start_watchdog();
        // Refused only once the group is cancelled: then nothing starts, as documented.
        let _ = self.state.core.spawn(name, task, start);
    }

    /// The deadline must fire even while nobody awaits `wait`.
    fn start_watchdog(&mut self) {
        if self.watchdog.is_some() {
            return;
        }
        if let Some(at) = self.state.core.own_deadline() {
            let core = Arc::clone(&self.state.core);
            let timer = tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                core.cancel(Cause::DeadlineExceeded);
            });
            self.watchdog = Some(timer.abort_handle());
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
        self.start_watchdog();
        let core = Arc::clone(&self.state.core);
        let all_ok = poll_fn(|cx| core.poll_tasks(cx, true)).await;
        self.finished = true;
        self.state.finish(all_ok.then_some(()))
    }
}

impl<E> Drop for Group<E> {
    fn drop(&mut self) {
        if let Some(timer) = self.watchdog.take() {
            timer.abort();
        }
        if !self.finished {
            self.state.core.cancel(Cause::Dropped);
            self.state.core.close_tasks();
        }
    }
}
