//! What a group reports: the name of a task, why a group was cancelled, and
//! the error a group evaluates to.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// The name of a branch or task in a group: `"fetch"`, or `"fetch[3]"` for
/// the fourth item of a fan-out branch.
///
/// Names written in an `errgroup!` block are `&'static str` and cost nothing
/// to copy; the dynamic [`Group`](crate::Group) API also takes `String`s.
///
/// ```
/// use errgroup::TaskName;
///
/// let item = TaskName::indexed("fetch", 3);
/// assert_eq!(item.to_string(), "fetch[3]");
/// assert_eq!(item, "fetch[3]");
/// assert_eq!(item.name(), "fetch");
/// assert_eq!(item.index(), Some(3));
/// assert_eq!(TaskName::from("user"), "user");
/// ```
#[derive(Clone)]
pub struct TaskName {
    name: Cow<'static, str>,
    tail: Tail,
}

/// A name's index, and, on the name of an [`Error::Failed`]'s task only,
/// the failures kept after it ([`Error::suppressed`]), which are not part
/// of the name: equality and hashing ignore them. One field, as a name
/// rarely has both: a `TaskName` is 40 bytes where two fields made it 48,
/// and every ctx holds one (benches/memory.rs).
#[derive(Clone)]
enum Tail {
    None,
    Index(usize),
    Later(Later),
    Both(Box<(usize, Later)>),
}

impl Tail {
    fn index(&self) -> Option<usize> {
        match self {
            Tail::Index(index) => Some(*index),
            Tail::Both(both) => Some(both.0),
            Tail::None | Tail::Later(_) => None,
        }
    }

    fn later(&self) -> Option<&Later> {
        match self {
            Tail::Later(later) => Some(later),
            Tail::Both(both) => Some(&both.1),
            Tail::None | Tail::Index(_) => None,
        }
    }
}

impl PartialEq for TaskName {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.index() == other.index()
    }
}

impl Eq for TaskName {}

impl Hash for TaskName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.index().hash(state);
    }
}

/// The failures a group kept after its first one, type-erased so that
/// [`Error`]'s variants keep their shape: a `Vec<Suppressed<E>>`, read back
/// by [`Error::suppressed`]. Made only when a second failure happened.
/// One thin pointer: it sits in every `TaskName` and `Cancelled`.
#[derive(Clone)]
pub(crate) struct Later(Arc<LaterList>);

struct LaterList {
    list: Box<dyn Any + Send + Sync>,
    /// Their tasks, for `Debug`, which cannot read the typed list without
    /// asking `E: 'static` of every `Error<E>` it prints.
    tasks: Vec<TaskName>,
}

impl Later {
    /// `report`: what the group's `Cancelled` reports, repeated here so that
    /// an error chain that goes through the list still reaches it.
    pub(crate) fn new<E: Send + Sync + 'static>(
        list: Vec<Suppressed<E>>,
        report: Option<Box<StillRunning>>,
    ) -> Option<Self> {
        if list.is_empty() {
            return None;
        }
        let tasks = list.iter().map(|s| s.task.clone()).collect();
        Some(Later(Arc::new(LaterList {
            list: Box::new(List { list, report }),
            tasks,
        })))
    }

    fn get<E: 'static>(later: Option<&Later>) -> Option<&List<E>> {
        later.and_then(|l| l.0.list.downcast_ref::<List<E>>())
    }

    fn list<E: 'static>(later: Option<&Later>) -> &[Suppressed<E>] {
        Self::get(later).map_or(&[], |l| l.list.as_slice())
    }
}

/// The later failures as a link of an error chain
/// ([`source`](std::error::Error::source)): `then task `b` failed: ..`, so
/// that `anyhow`'s `{:#}` and `{:?}` show them.
struct List<E> {
    list: Vec<Suppressed<E>>,
    report: Option<Box<StillRunning>>,
}

impl<E: fmt::Display> fmt::Display for List<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, later) in self.list.iter().enumerate() {
            f.write_str(if i == 0 { "then " } else { "; then " })?;
            fmt::Display::fmt(later, f)?;
        }
        Ok(())
    }
}

impl<E: fmt::Debug> fmt::Debug for List<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.list, f)
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for List<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.report.as_deref().map(|r| r as _)
    }
}

impl TaskName {
    /// A task name without an index.
    ///
    /// ```
    /// assert_eq!(errgroup::TaskName::new("user").to_string(), "user");
    /// ```
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        TaskName {
            name: name.into(),
            tail: Tail::None,
        }
    }

    /// The name of item `index` of a fan-out branch, shown as `name[index]`.
    ///
    /// ```
    /// assert_eq!(errgroup::TaskName::indexed("fetch", 0).to_string(), "fetch[0]");
    /// ```
    pub fn indexed(name: impl Into<Cow<'static, str>>, index: usize) -> Self {
        TaskName {
            name: name.into(),
            tail: Tail::Index(index),
        }
    }

    /// The branch name, without the index.
    ///
    /// ```
    /// assert_eq!(errgroup::TaskName::indexed("fetch", 3).name(), "fetch");
    /// ```
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The item index of a fan-out task, `None` for a plain branch.
    ///
    /// ```
    /// assert_eq!(errgroup::TaskName::new("user").index(), None);
    /// ```
    #[must_use]
    pub fn index(&self) -> Option<usize> {
        self.tail.index()
    }

    /// A copy that allocates nothing: `None` for a `String` name.
    pub(crate) fn cheap_clone(&self) -> Option<TaskName> {
        matches!(self.name, Cow::Borrowed(_)).then(|| self.clone())
    }

    /// The `&'static str` this name was made of, if it was one alone.
    pub(crate) fn as_static(&self) -> Option<&'static str> {
        match (&self.name, &self.tail) {
            (Cow::Borrowed(name), Tail::None) => Some(name),
            _ => None,
        }
    }

    /// The name carrying `later` (see [`TaskName::later`]).
    pub(crate) fn with_later(mut self, later: Option<Later>) -> Self {
        self.tail = match (self.index(), later) {
            (None, None) => Tail::None,
            (Some(index), None) => Tail::Index(index),
            (None, Some(later)) => Tail::Later(later),
            (Some(index), Some(later)) => Tail::Both(Box::new((index, later))),
        };
        self
    }

    /// The failures kept after this one, on an [`Error::Failed`]'s task.
    fn later(&self) -> Option<&Later> {
        self.tail.later()
    }
}

impl From<&'static str> for TaskName {
    fn from(name: &'static str) -> Self {
        TaskName::new(name)
    }
}

impl From<String> for TaskName {
    fn from(name: String) -> Self {
        TaskName::new(name)
    }
}

impl fmt::Display for TaskName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index() {
            None => f.write_str(&self.name),
            Some(i) => write!(f, "{}[{i}]", self.name),
        }
    }
}

impl fmt::Debug for TaskName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Compares with the displayed form, so `"fetch[3]"` equals `indexed("fetch", 3)`.
impl PartialEq<str> for TaskName {
    fn eq(&self, other: &str) -> bool {
        let Some(rest) = other.strip_prefix(&*self.name) else {
            return false;
        };
        match self.index() {
            None => rest.is_empty(),
            Some(i) => rest
                .strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .is_some_and(|digits| {
                    digits.bytes().all(|b| b.is_ascii_digit())
                        && (digits == "0" || !digits.starts_with('0'))
                        && digits.parse::<usize>() == Ok(i)
                }),
        }
    }
}

impl PartialEq<&str> for TaskName {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

/// Why a group's context was cancelled: Go's `context.Cause`.
///
/// ```
/// use errgroup::{Cause, TaskName};
///
/// let cause = Cause::Parent(Box::new(Cause::Failed { task: TaskName::new("db") }));
/// assert_eq!(cause.to_string(), "parent group cancelled: task `db` failed");
/// assert_eq!(cause.root(), &Cause::Failed { task: TaskName::new("db") });
/// ```
///
/// Variants may be added in a minor release (`#[non_exhaustive]`): a
/// `match` needs a `_` arm.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause {
    /// The first branch, in time, to return `Err` was `task`.
    Failed {
        /// The failed branch.
        task: TaskName,
    },
    /// `task` panicked; the panic resumes in the caller once every branch has returned.
    Panicked {
        /// The panicking branch.
        task: TaskName,
    },
    /// The group's `timeout` or `deadline` passed.
    DeadlineExceeded,
    /// The parent group was cancelled, for the reason inside.
    Parent(Box<Cause>),
    /// The group has returned; its context is cancelled afterwards, as in Go.
    Finished,
    /// The group's future was dropped before the group returned.
    Dropped,
    /// The group was stopped on purpose, by `by`: a branch calling
    /// [`Ctx::shutdown`](crate::Ctx::shutdown) (its name), a
    /// [`Shutdown`](crate::Shutdown) handle (the name it was given), the
    /// group's `shutdown_on` signal (`"shutdown_on"`), or a cancelled
    /// `CancellationToken` parent (`"token"`). Not a failure: a group whose
    /// branches all still return `Ok` returns `Ok`, and
    /// [`allow_shutdown`](AllowShutdown::allow_shutdown) turns the error
    /// into `Ok` otherwise.
    Shutdown {
        /// Who asked.
        by: TaskName,
    },
}

impl Cause {
    /// The cause at the end of a chain of [`Cause::Parent`]s: what really happened.
    ///
    /// ```
    /// use errgroup::Cause;
    /// let nested = Cause::Parent(Box::new(Cause::Parent(Box::new(Cause::DeadlineExceeded))));
    /// assert_eq!(nested.root(), &Cause::DeadlineExceeded);
    /// ```
    #[must_use]
    pub fn root(&self) -> &Cause {
        let mut cause = self;
        while let Cause::Parent(inner) = cause {
            cause = inner;
        }
        cause
    }

    /// Whether the group was stopped on purpose ([`Cause::Shutdown`]),
    /// itself or through its parents: not a failure. This says why the
    /// group was cancelled, not how it ended: a shutdown whose `grace`
    /// expired abandoned work, and its error's
    /// [`Error::is_shutdown`] is `false`.
    ///
    /// ```
    /// use errgroup::{Cause, TaskName};
    /// let by_parent = Cause::Parent(Box::new(Cause::Shutdown { by: TaskName::new("ctrl-c") }));
    /// assert!(by_parent.is_shutdown());
    /// assert!(!Cause::DeadlineExceeded.is_shutdown());
    /// ```
    #[must_use]
    pub fn is_shutdown(&self) -> bool {
        matches!(self.root(), Cause::Shutdown { .. })
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Failed { task } => write!(f, "task `{task}` failed"),
            Cause::Panicked { task } => write!(f, "task `{task}` panicked"),
            Cause::DeadlineExceeded => f.write_str("deadline exceeded"),
            Cause::Parent(inner) => write!(f, "parent group cancelled: {inner}"),
            Cause::Finished => f.write_str("group finished"),
            Cause::Dropped => f.write_str("group dropped"),
            Cause::Shutdown { by } => write!(f, "shut down by `{by}`"),
        }
    }
}

/// The error of an operation stopped because its group was cancelled:
/// Go's `ctx.Err()`, carrying the [`Cause`].
///
/// It implements [`std::error::Error`] + `Send + Sync + 'static`, so `?`
/// turns it into `anyhow::Error`, `Box<dyn Error>` or any `E: From<Cancelled>`.
///
/// ```
/// use errgroup::{Cancelled, Cause};
///
/// let err = Cancelled::new(Cause::DeadlineExceeded);
/// assert_eq!(err.cause(), &Cause::DeadlineExceeded);
/// assert_eq!(err.to_string(), "cancelled: deadline exceeded");
/// let boxed: Box<dyn std::error::Error + Send + Sync> = err.into();
/// ```
#[derive(Clone)]
pub struct Cancelled {
    cause: Cause,
    /// What still ran when the deadline passed or `grace` expired: boxed,
    /// as it is rare and every `ctx.check()?` moves a `Cancelled`.
    report: Option<Box<StillRunning>>,
    /// On a group's `Error::Cancelled` only: the failures of its branches'
    /// own after the cancellation ([`Error::suppressed`]).
    later: Option<Later>,
}

impl fmt::Debug for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cancelled")
            .field("cause", &self.cause)
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl Cancelled {
    /// A cancellation for `cause`.
    ///
    /// ```
    /// let err = errgroup::Cancelled::new(errgroup::Cause::Dropped);
    /// assert!(matches!(err.cause(), errgroup::Cause::Dropped));
    /// ```
    #[must_use]
    pub fn new(cause: Cause) -> Self {
        Cancelled {
            cause,
            report: None,
            later: None,
        }
    }

    pub(crate) fn with_report(mut self, report: Option<Box<StillRunning>>) -> Self {
        self.report = report;
        self
    }

    pub(crate) fn with_later(mut self, later: Option<Later>) -> Self {
        self.later = later;
        self
    }

    /// Why the group was cancelled.
    ///
    /// ```
    /// let err = errgroup::Cancelled::new(errgroup::Cause::DeadlineExceeded);
    /// assert_eq!(err.cause().to_string(), "deadline exceeded");
    /// ```
    #[must_use]
    pub fn cause(&self) -> &Cause {
        &self.cause
    }

    /// What was still running when the group's deadline passed or its
    /// `grace` expired, on the error a group returns; `None` otherwise
    /// (and on the `Cancelled` a branch's `ctx.check()` gives). Also its
    /// [`source`](std::error::Error::source), so error reporters print it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use errgroup::errgroup;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let err = errgroup! {
    ///     timeout = Duration::from_secs(5);
    ///     type Error = errgroup::Cancelled;
    ///     fetch => { ctx.cancelled().await; ctx.check() },
    ///     quick => Ok(()),
    /// }
    /// .unwrap_err();
    /// let report = err.still_running().unwrap();
    /// assert_eq!(report.to_string(), "still running at the deadline: `fetch` for 5s");
    /// # }
    /// ```
    #[must_use]
    pub fn still_running(&self) -> Option<&StillRunning> {
        self.report.as_deref()
    }
}

impl Cancelled {
    /// Whether the group's `grace` expired: what still ran then was
    /// dropped or aborted (`#[blocking]` bodies were waited for), and
    /// [`still_running`](Cancelled::still_running) lists it. Such a stop
    /// abandoned work, whatever its [`cause`](Cancelled::cause): a group
    /// shut down on purpose whose grace expired is not a clean stop
    /// ([`Error::is_shutdown`] is `false` for it).
    ///
    /// ```
    /// use std::time::Duration;
    /// use errgroup::errgroup;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let err = errgroup! {
    ///     grace = Duration::from_secs(1);
    ///     type Error = errgroup::Cancelled;
    ///     stubborn => { tokio::time::sleep(Duration::from_secs(60)).await; Ok(()) },
    ///     admin => { ctx.shutdown(); Ok(()) },
    /// }
    /// .unwrap_err();
    /// assert!(err.cause().is_shutdown(), "why it stopped: a shutdown");
    /// assert!(err.is_grace_expired(), "how it ended: work abandoned");
    /// assert!(!err.is_shutdown(), "so not a clean stop");
    /// assert_eq!(err.to_string(), "group cancelled: shut down by `admin`, then grace expired");
    /// # }
    /// ```
    #[must_use]
    pub fn is_grace_expired(&self) -> bool {
        self.report
            .as_ref()
            .is_some_and(|r| r.moment == Moment::GraceExpired)
    }
}

/// Compares the causes only: the report says how it ended, not why.
impl PartialEq for Cancelled {
    fn eq(&self, other: &Self) -> bool {
        self.cause == other.cause
    }
}

impl Eq for Cancelled {}

/// `cancelled: CAUSE`, and `, then grace expired` when work was abandoned
/// ([`Cancelled::is_grace_expired`]), so that the one-line message of a
/// stop that dropped work never reads as a clean one.
impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cancelled: {}", self.cause)?;
        if self.is_grace_expired() {
            f.write_str(", then grace expired")?;
        }
        Ok(())
    }
}

impl std::error::Error for Cancelled {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.report.as_deref().map(|r| r as _)
    }
}

/// A branch, fan-out item or task that is still running, and for how long:
/// what [`Watch::running`](crate::Watch::running) lists, and a
/// [`StillRunning`] report.
///
/// ```
/// use std::time::Duration;
/// use errgroup::errgroup;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let (running, ()) = errgroup! {
///     watchdog => {
///         let watch = ctx.watch();
///         tokio::time::sleep(Duration::from_secs(2)).await;
///         Ok::<_, ()>(watch.running().await)
///     },
///     slow => { tokio::time::sleep(Duration::from_secs(3)).await; Ok(()) },
/// }
/// .unwrap();
/// let slow = running.iter().find(|r| r.task() == "slow").unwrap();
/// assert_eq!(slow.elapsed(), Duration::from_secs(2));
/// assert_eq!(slow.to_string(), "`slow` for 2s");
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Running {
    task: TaskName,
    elapsed: Duration,
}

impl Running {
    /// Its name: `"fetch"`, `"items[3]"`, a task's.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut group = errgroup::Group::<()>::new();
    /// let (release, gate) = tokio::sync::oneshot::channel::<()>();
    /// group.spawn("held", |_| async move { gate.await.ok(); Ok(()) });
    /// assert_eq!(group.running()[0].task(), "held");
    /// release.send(()).unwrap();
    /// group.wait().await.unwrap();
    /// # }
    /// ```
    #[must_use]
    pub fn task(&self) -> &TaskName {
        &self.task
    }

    /// How long it has been running: since the group started for a branch
    /// (since the group was first watched, for a group with neither
    /// deadline nor `grace`), since it was launched for a fan-out item,
    /// since it was spawned for a task.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let mut group = errgroup::Group::<()>::new();
    /// group.spawn("nap", |_| async { tokio::time::sleep(Duration::from_secs(9)).await; Ok(()) });
    /// tokio::time::sleep(Duration::from_secs(4)).await;
    /// assert_eq!(group.running()[0].elapsed(), Duration::from_secs(4));
    /// group.wait().await.unwrap();
    /// # }
    /// ```
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
}

impl fmt::Display for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` for {:?}", self.task, self.elapsed)
    }
}

/// When a [`StillRunning`] report was taken.
///
/// Variants may be added in a minor release (`#[non_exhaustive]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Moment {
    /// The group's own `timeout` or `deadline` passed.
    Deadline,
    /// The group's `grace` expired: what is listed was dropped (in-task
    /// branches and items) or aborted (tasks, `#[spawn]` branches and
    /// items; `#[blocking]` bodies cannot be and were waited for).
    GraceExpired,
}

/// What a group was still running when its deadline passed or its `grace`
/// expired: the branches, fan-out items and tasks holding it, each with how
/// long it had been running. Carried by the [`Cancelled`] a group returns
/// ([`Cancelled::still_running`], [`Error::still_running`]) and its
/// [`source`](std::error::Error::source), so `anyhow`'s `{:#}` and `{:?}`
/// show it. Under the `tracing` feature the grace-expired event lists it too.
///
/// When the deadline passes and `grace` then expires, the report is the
/// one taken when grace expired: what never stopped.
///
/// ```
/// use std::time::Duration;
/// use errgroup::{errgroup, Moment};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let err = errgroup! {
///     timeout = Duration::from_secs(1);
///     grace = Duration::from_secs(2);
///     type Error = errgroup::Cancelled;
///     stubborn => { tokio::time::sleep(Duration::from_secs(3600)).await; Ok(()) },
///     polite => { ctx.cancelled().await; ctx.check() },
/// }
/// .unwrap_err();
/// let report = err.still_running().unwrap();
/// assert_eq!(report.moment(), Moment::GraceExpired);
/// assert_eq!(report.tasks().len(), 1);
/// assert_eq!(report.tasks()[0].task(), "stubborn");
/// assert_eq!(
///     format!("{:#}", anyhow::Error::from(err)),
///     "group cancelled: deadline exceeded, then grace expired: \
///      cancelled: deadline exceeded, then grace expired: \
///      still running when grace expired (dropped or aborted): `stubborn` for 3s",
/// );
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StillRunning {
    moment: Moment,
    tasks: Vec<Running>,
}

impl StillRunning {
    /// When it was taken.
    ///
    /// ```
    /// use std::time::Duration;
    /// use errgroup::{errgroup, Moment};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let err = errgroup! {
    ///     timeout = Duration::from_secs(1);
    ///     type Error = errgroup::Cancelled;
    ///     slow => ctx.sleep(Duration::from_secs(60)).await,
    /// }
    /// .unwrap_err();
    /// assert_eq!(err.still_running().unwrap().moment(), Moment::Deadline);
    /// # }
    /// ```
    #[must_use]
    pub fn moment(&self) -> Moment {
        self.moment
    }

    /// What was still running, branches in the order written, then fan-out
    /// items by index, then tasks.
    ///
    /// ```
    /// use std::time::Duration;
    /// use errgroup::errgroup;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let err = errgroup! {
    ///     timeout = Duration::from_secs(1);
    ///     type Error = errgroup::Cancelled;
    ///     slow => ctx.sleep(Duration::from_secs(60)).await,
    /// }
    /// .unwrap_err();
    /// let tasks = err.still_running().unwrap().tasks();
    /// assert_eq!(tasks[0].task(), "slow");
    /// assert_eq!(tasks[0].elapsed(), Duration::from_secs(1));
    /// # }
    /// ```
    #[must_use]
    pub fn tasks(&self) -> &[Running] {
        &self.tasks
    }
}

impl fmt::Display for StillRunning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.moment {
            Moment::Deadline => "still running at the deadline",
            Moment::GraceExpired => "still running when grace expired (dropped or aborted)",
        })?;
        if self.tasks.is_empty() {
            return f.write_str(": nothing");
        }
        for (i, running) in self.tasks.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { ", " })?;
            fmt::Display::fmt(running, f)?;
        }
        Ok(())
    }
}

impl std::error::Error for StillRunning {}

/// A census of what runs now, as the driver and the task registry fill it.
#[doc(hidden)]
#[derive(Debug)]
pub struct Census {
    now: Instant,
    /// When the group's branches started, if known.
    since: Option<Instant>,
    list: Vec<Running>,
}

impl Census {
    pub(crate) fn new(since: Option<Instant>) -> Self {
        Census {
            now: Instant::now(),
            since,
            list: Vec::new(),
        }
    }

    /// `task` runs, since `started`, else since the group started.
    pub(crate) fn add(&mut self, task: &TaskName, started: Option<Instant>) {
        let elapsed = started
            .or(self.since)
            .map_or(Duration::ZERO, |at| self.now.saturating_duration_since(at));
        self.list.push(Running {
            task: task.clone(),
            elapsed,
        });
    }

    pub(crate) fn into_list(self) -> Vec<Running> {
        self.list
    }

    pub(crate) fn report(self, moment: Moment) -> StillRunning {
        StillRunning {
            moment,
            tasks: self.list,
        }
    }
}

/// What a failed group evaluates to.
///
/// `Display` includes the branch's own error (`task `fetch` failed: ...`), so
/// `Error<E>` is a [`std::error::Error`] for every `E: Debug + Display`,
/// including `anyhow::Error`, and `?` converts it like any error. Because the
/// inner error is part of the message, [`source`](std::error::Error::source)
/// does not repeat it; take it out with [`Error::into_inner`]. The alternate
/// form `{:#}` formats the branch's error with `{:#}` too, so an
/// `anyhow::Error`'s whole context chain shows.
///
/// ```
/// use anyhow::Context as _;
/// use errgroup::errgroup;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let err = errgroup! {
///     read => Err::<(), _>(anyhow::anyhow!("disk gone")).context("reading the manifest"),
/// }
/// .unwrap_err();
/// assert_eq!(err.to_string(), "task `read` failed: reading the manifest");
/// assert_eq!(format!("{err:#}"), "task `read` failed: reading the manifest: disk gone");
/// # }
/// ```
///
/// ```
/// use errgroup::{errgroup, Error};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let result = errgroup! {
///     fast => Err("boom"),
///     slow => { ctx.cancelled().await; Ok(2) },
/// };
/// let err = result.unwrap_err();
/// assert_eq!(err.to_string(), "task `fast` failed: boom");
/// assert_eq!(err.task().unwrap(), "fast");
/// assert!(!err.is_cancelled());
/// assert_eq!(err.into_inner(), Some("boom"));
/// # }
/// ```
///
/// Variants may be added in a minor release (`#[non_exhaustive]`): a
/// `match` needs a `_` arm, or use [`task`](Error::task),
/// [`into_inner`](Error::into_inner) and [`cause`](Error::cause).
///
/// Failures after the first are not dropped: [`suppressed`](Error::suppressed)
/// lists them, `{:#}` and `{:?}` show them; `Display` stays the first's.
#[non_exhaustive]
pub enum Error<E> {
    /// The first branch, in time, to fail, and its error.
    Failed {
        /// The failed branch.
        task: TaskName,
        /// The error it returned.
        error: E,
    },
    /// The group was cancelled from outside (its deadline or its parent)
    /// before any branch failed, and not every branch returned `Ok`.
    Cancelled(Cancelled),
}

impl<E> Error<E> {
    /// The failed branch, `None` for a cancellation from outside.
    ///
    /// ```
    /// use errgroup::{Cancelled, Cause, Error, TaskName};
    /// let err: Error<()> = Error::Failed { task: TaskName::new("db"), error: () };
    /// assert_eq!(err.task().unwrap(), "db");
    /// let err: Error<()> = Cancelled::new(Cause::DeadlineExceeded).into();
    /// assert!(err.task().is_none());
    /// ```
    #[must_use]
    pub fn task(&self) -> Option<&TaskName> {
        match self {
            Error::Failed { task, .. } => Some(task),
            Error::Cancelled(_) => None,
        }
    }

    /// The branch's own error, `None` for a cancellation from outside.
    ///
    /// ```
    /// use errgroup::{Error, TaskName};
    /// let err = Error::Failed { task: TaskName::new("db"), error: 7 };
    /// assert_eq!(err.into_inner(), Some(7));
    /// ```
    pub fn into_inner(self) -> Option<E> {
        match self {
            Error::Failed { error, .. } => Some(error),
            Error::Cancelled(_) => None,
        }
    }

    /// Whether the group was cancelled from outside rather than failed by a branch.
    ///
    /// ```
    /// use errgroup::{Cancelled, Cause, Error};
    /// let err: Error<()> = Cancelled::new(Cause::DeadlineExceeded).into();
    /// assert!(err.is_cancelled());
    /// ```
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled(_))
    }

    /// Whether the group was stopped on purpose (a [`Cause::Shutdown`], its
    /// own or its parents') and stopped cleanly: no branch failed before
    /// that, and its `grace` did not expire (nothing was dropped or
    /// aborted). The error a service's caller treats as success, and the
    /// one [`allow_shutdown`](AllowShutdown::allow_shutdown) turns into `Ok`.
    ///
    /// A shutdown whose grace expired is not one: see
    /// [`is_grace_expired`](Error::is_grace_expired).
    ///
    /// ```
    /// use errgroup::{Cancelled, Cause, Error, TaskName};
    /// let err: Error<()> = Cancelled::new(Cause::Shutdown { by: TaskName::new("ctrl-c") }).into();
    /// assert!(err.is_shutdown());
    /// let failed: Error<()> = Error::Failed { task: TaskName::new("db"), error: () };
    /// assert!(!failed.is_shutdown());
    /// ```
    ///
    /// Nor is a shutdown during which a branch failed of its own (a flush
    /// that failed as the service stopped): see [`suppressed`](Error::suppressed).
    #[must_use]
    pub fn is_shutdown(&self) -> bool {
        matches!(self, Error::Cancelled(c)
            if c.cause().is_shutdown() && !c.is_grace_expired() && c.later.is_none())
    }

    /// Whether the group's `grace` expired, dropping or aborting what
    /// still ran (listed by [`still_running`](Error::still_running)): a
    /// stop that abandoned work, whether it began as a shutdown, a
    /// deadline or a parent's cancellation. Never a clean stop:
    /// [`is_shutdown`](Error::is_shutdown) is `false` then, and
    /// [`allow_shutdown`](AllowShutdown::allow_shutdown) keeps the error.
    /// `false` for [`Error::Failed`], an error in any case.
    ///
    /// ```
    /// use std::time::Duration;
    /// use errgroup::{AllowShutdown, errgroup};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let result = errgroup! {
    ///     grace = Duration::from_secs(2);
    ///     type Error = errgroup::Cancelled;
    ///     flush => { tokio::time::sleep(Duration::from_secs(60)).await; Ok(()) },
    ///     stop => { ctx.shutdown(); Ok(()) },
    /// };
    /// assert!(result.as_ref().unwrap_err().is_grace_expired());
    /// let err = result.allow_shutdown().unwrap_err(); // work was lost: still an error
    /// assert_eq!(
    ///     err.still_running().unwrap().to_string(),
    ///     "still running when grace expired (dropped or aborted): `flush` for 2s",
    /// );
    /// # }
    /// ```
    #[must_use]
    pub fn is_grace_expired(&self) -> bool {
        matches!(self, Error::Cancelled(c) if c.is_grace_expired())
    }

    /// What was still running when the group's deadline passed or its
    /// `grace` expired, for a group that returns [`Error::Cancelled`]; see
    /// [`StillRunning`]. A failure is its own explanation: `Error::Failed`
    /// carries no report, and the `tracing` feature's grace-expired event
    /// lists what was stopped after it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use errgroup::errgroup;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let err = errgroup! {
    ///     timeout = Duration::from_millis(1500);
    ///     type Error = errgroup::Cancelled;
    ///     fetch => ctx.sleep(Duration::from_secs(60)).await,
    /// }
    /// .unwrap_err();
    /// assert_eq!(err.to_string(), "group cancelled: deadline exceeded");
    /// assert_eq!(
    ///     err.still_running().unwrap().to_string(),
    ///     "still running at the deadline: `fetch` for 1.5s",
    /// );
    /// # }
    /// ```
    #[must_use]
    pub fn still_running(&self) -> Option<&StillRunning> {
        match self {
            Error::Cancelled(c) => c.still_running(),
            Error::Failed { .. } => None,
        }
    }

    /// The cause the group's context was cancelled with.
    ///
    /// ```
    /// use errgroup::{Cause, Error, TaskName};
    /// let err = Error::Failed { task: TaskName::new("db"), error: () };
    /// assert_eq!(err.cause(), Cause::Failed { task: TaskName::new("db") });
    /// ```
    #[must_use]
    pub fn cause(&self) -> Cause {
        match self {
            Error::Failed { task, .. } => Cause::Failed { task: task.clone() },
            Error::Cancelled(c) => c.cause().clone(),
        }
    }
}

impl<E: 'static> Error<E> {
    /// The failures that came after the group's first, in the order they
    /// happened, each with its task's name and its error; empty when there
    /// was none. The first is [`Error::Failed`]'s own (or, for
    /// [`Error::Cancelled`], the cancellation from outside): these are the
    /// branches, items and tasks that failed of their own afterwards, such
    /// as a flush that failed while the group was stopping. (Kotlin keeps
    /// them as suppressed exceptions, Python and Trio in an exception
    /// group.) A group with one of them is never a clean stop:
    /// [`is_shutdown`](Error::is_shutdown) is `false`.
    ///
    /// # Echoes are not failures
    ///
    /// An `Err` a branch returned only because the group was cancelled is
    /// an echo of the cancellation, not a failure, and is not listed. The
    /// rule: a branch's `Err` after the cancellation is an echo when, during
    /// that branch's run, the group handed it a [`Cancelled`]: from its
    /// `ctx` (`check`, `sleep`, `run`, a refused `spawn`, also through
    /// clones of it), from a group channel (`send`, `recv`), or as the
    /// `Err` of a group nested in it that this group's cancellation
    /// stopped. Which type the branch made of it does not matter (`?` into
    /// `anyhow::Error`, a variant of your own). An `Err` of a branch that
    /// was handed no `Cancelled` is its own failure and is listed, even if
    /// it came after the cancellation (it waited with `ctx.cancelled()`,
    /// then its flush failed).
    ///
    /// The boundary: a branch that was handed a `Cancelled` (its
    /// `ctx.sleep(..)` returned `Err`) and then failed otherwise (its flush
    /// failed) returns one `Err`, and the group cannot see inside it: it
    /// counts as an echo. To report such a failure, do the cleanup where
    /// no `Cancelled` is handed: after `ctx.cancelled().await` (or
    /// `ctx.is_cancelled()`) rather than after a `?` on the ctx, or in a
    /// branch or task of its own.
    ///
    /// A task of another error type than the group's (an untyped
    /// [`Ctx::spawn`](crate::Ctx::spawn)) that fails later cannot be listed
    /// here; its first failure still names it in the cause.
    ///
    /// Nothing is allocated for this unless a second failure happens.
    ///
    /// ```
    /// use errgroup::errgroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let err = errgroup! {
    ///     fetch => Err("timeout"),
    ///     store => {
    ///         ctx.cancelled().await;    // told to stop: flush what it has
    ///         Err::<(), _>("flush failed: disk full")
    ///     },
    ///     poll => { ctx.sleep(std::time::Duration::from_secs(60)).await.map_err(|_| "cancelled")?; Ok(()) },
    /// }
    /// .unwrap_err();
    /// assert_eq!(err.to_string(), "task `fetch` failed: timeout");
    /// let later = err.suppressed();
    /// assert_eq!(later.len(), 1, "`poll`'s error is an echo of the cancellation");
    /// assert_eq!(later[0].task(), "store");
    /// assert_eq!(*later[0].error(), "flush failed: disk full");
    /// assert_eq!(
    ///     format!("{err:#}"),
    ///     "task `fetch` failed: timeout; then task `store` failed: flush failed: disk full",
    /// );
    /// # }
    /// ```
    #[must_use]
    pub fn suppressed(&self) -> &[Suppressed<E>] {
        match self {
            Error::Failed { task, .. } => Later::list(task.later()),
            Error::Cancelled(c) => Later::list(c.later.as_ref()),
        }
    }
}

/// A failure a group kept after its first: one entry of
/// [`Error::suppressed`].
///
/// ```
/// use errgroup::errgroup;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let err = errgroup! {
///     first => Err(1),
///     second => { ctx.cancelled().await; Err::<(), _>(2) },
/// }
/// .unwrap_err();
/// let later = &err.suppressed()[0];
/// assert_eq!((later.task().to_string(), *later.error()), ("second".to_string(), 2));
/// assert_eq!(later.to_string(), "task `second` failed: 2");
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Suppressed<E> {
    task: TaskName,
    error: E,
}

impl<E> Suppressed<E> {
    pub(crate) fn new(task: TaskName, error: E) -> Self {
        Suppressed { task, error }
    }

    /// The branch, item or task that failed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let err = errgroup::errgroup! {
    ///     a => Err("a"),
    ///     b => { ctx.cancelled().await; Err::<(), _>("b") },
    /// }
    /// .unwrap_err();
    /// assert_eq!(err.suppressed()[0].task(), "b");
    /// # }
    /// ```
    #[must_use]
    pub fn task(&self) -> &TaskName {
        &self.task
    }

    /// The error it returned.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let err = errgroup::errgroup! {
    ///     a => Err("a"),
    ///     b => { ctx.cancelled().await; Err::<(), _>("b") },
    /// }
    /// .unwrap_err();
    /// assert_eq!(*err.suppressed()[0].error(), "b");
    /// # }
    /// ```
    #[must_use]
    pub fn error(&self) -> &E {
        &self.error
    }
}

impl<E: fmt::Display> fmt::Display for Suppressed<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            write!(f, "task `{}` failed: {:#}", self.task, self.error)
        } else {
            write!(f, "task `{}` failed: {}", self.task, self.error)
        }
    }
}

impl<E> From<Cancelled> for Error<E> {
    fn from(cancelled: Cancelled) -> Self {
        Error::Cancelled(cancelled)
    }
}

/// The first failure; with `{:#}` also each [`suppressed`](Error::suppressed)
/// one after it (`; then task `b` failed: ..`).
impl<E: fmt::Display + 'static> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // `{:#}` reaches the branch's error too, so anyhow's chain shows.
            Error::Failed { task, error } if f.alternate() => {
                write!(f, "task `{task}` failed: {error:#}")?;
            }
            Error::Failed { task, error } => return write!(f, "task `{task}` failed: {error}"),
            Error::Cancelled(c) => write!(f, "group {c}")?,
        }
        if f.alternate() {
            for later in self.suppressed() {
                write!(f, "; then {later:#}")?;
            }
        }
        Ok(())
    }
}

/// As derived, and the tasks of the [`suppressed`](Error::suppressed)
/// failures when there are some (their errors are in `{:#}` and in the
/// error chain, which `anyhow`'s `{:?}` prints).
impl<E: fmt::Debug> fmt::Debug for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let later: &[TaskName] = match self {
            Error::Failed { task, .. } => task.later(),
            Error::Cancelled(c) => c.later.as_ref(),
        }
        .map_or(&[], |l| &l.0.tasks);
        match self {
            Error::Failed { task, error } => {
                let mut d = f.debug_struct("Failed");
                d.field("task", task).field("error", error);
                if !later.is_empty() {
                    d.field("suppressed", &later);
                }
                d.finish()
            }
            Error::Cancelled(c) => {
                let mut d = f.debug_tuple("Cancelled");
                d.field(c);
                if !later.is_empty() {
                    d.field(&later);
                }
                d.finish()
            }
        }
    }
}

/// The source is the [`suppressed`](Error::suppressed) failures when there
/// are some (then what the `Cancelled` reports), else the `Cancelled`.
impl<E: fmt::Debug + fmt::Display + 'static> std::error::Error for Error<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let later = match self {
            Error::Failed { task, .. } => task.later(),
            Error::Cancelled(c) => c.later.as_ref(),
        };
        if let Some(list) = Later::get::<E>(later) {
            return Some(list);
        }
        match self {
            Error::Failed { .. } => None,
            Error::Cancelled(c) => Some(c),
        }
    }
}

/// Turns a group stopped on purpose into success: `errgroup! { .. }.allow_shutdown()`.
///
/// A group that was shut down ([`Cause::Shutdown`]) and whose branches did
/// not all return `Ok` (a service loop that returned `ctx.check()?`'s error)
/// evaluates to `Err(Error::Cancelled(..))`; for a group whose value has a
/// default (the all-`()` service group), that is one call away from `Ok`.
/// A failure that happened before the shutdown is still an error, and so
/// is a shutdown whose `grace` expired ([`Error::is_grace_expired`]): work
/// was dropped, and the caller must hear it.
///
/// ```
/// use errgroup::{AllowShutdown, errgroup};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let stopped = errgroup! {
///     type Error = errgroup::Cancelled;
///     server => { ctx.cancelled().await; ctx.check() }, // Err once shut down
///     admin => { ctx.shutdown(); Ok(()) },
/// };
/// assert!(stopped.as_ref().unwrap_err().is_shutdown());
/// assert_eq!(stopped.allow_shutdown().unwrap(), ((), ()));
/// # }
/// ```
pub trait AllowShutdown {
    /// `Ok(Default::default())` for an error that [`is_shutdown`](Error::is_shutdown), else `self`.
    #[must_use = "the result may still be an error"]
    fn allow_shutdown(self) -> Self;
}

impl<T: Default, E> AllowShutdown for Result<T, Error<E>> {
    fn allow_shutdown(self) -> Self {
        match self {
            Err(e) if e.is_shutdown() => Ok(T::default()),
            other => other,
        }
    }
}
