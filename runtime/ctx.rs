//! `Ctx`: the context injected into every branch, Go's `context.Context`;
//! `BranchCtx<E>`, the same knowing the group's error type, as branches see it.

use std::fmt;
use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::ops::Deref;
use std::pin::pin;
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::branch::{Named, task_job};
use crate::cancel::Cancellation;
use crate::channel::{self, Receiver, Sender};
use crate::cold::ColdOnce;
use crate::error::{Cancelled, Cause, Running, TaskName};
use crate::limit::Start;
use crate::state::Place;
use crate::state::{Answer, Core};
use crate::trace;

/// The group of the branch whose code is running now, if any.
pub(crate) fn ambient_core() -> Option<Arc<Core>> {
    crate::state::ambient()
}

/// The context of one branch of a group: cancellation, its cause, the
/// deadline, and helpers that stop waiting when the group is cancelled.
///
/// Inside an `errgroup!` branch it is in scope as `ctx: &BranchCtx<E>`,
/// which derefs to `Ctx` (every method here works on it, and it passes as
/// `&Ctx` to a function taking one) and adds a [`spawn`](BranchCtx::spawn)
/// typed by the group's error type `E`. The dynamic [`Group`](crate::Group)
/// API passes a `Ctx` to each task by value. Cloning is cheap (a reference
/// count), and a clone stays tied to its group: after the group returns, it
/// reports the group as cancelled with [`Cause::Finished`].
///
/// | Go | errgroup |
/// |---|---|
/// | `<-ctx.Done()` | [`ctx.cancelled().await`](Ctx::cancelled) |
/// | `ctx.Err() != nil` | [`ctx.is_cancelled()`](Ctx::is_cancelled), [`ctx.check()?`](Ctx::check) |
/// | `context.Cause(ctx)` | [`ctx.cause()`](Ctx::cause) |
/// | `ctx.Deadline()` | [`ctx.deadline()`](Ctx::deadline) |
/// | `select { case r := <-work: case <-ctx.Done(): }` | [`ctx.run(work).await`](Ctx::run) |
/// | `select { case <-time.After(d): case <-ctx.Done(): }` | [`ctx.sleep(d).await`](Ctx::sleep) |
///
/// ```
/// use errgroup::errgroup;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let result = errgroup! {
///     failing => Err(anyhow::anyhow!("disk full")),
///     waiting => {
///         ctx.sleep(Duration::from_secs(60)).await?; // returns at once: the group is cancelled
///         Ok(())
///     },
/// };
/// assert_eq!(result.unwrap_err().to_string(), "task `failing` failed: disk full");
/// # }
/// ```
#[derive(Clone)]
pub struct Ctx {
    core: Arc<Core>,
    task: TaskName,
}

impl Ctx {
    pub(crate) fn new(core: Arc<Core>, task: TaskName) -> Ctx {
        Ctx { core, task }
    }

    /// The ctx's group.
    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// What a branch that does not hand its ctx to the body keeps of it,
    /// without a reference count or a name copied.
    pub(crate) fn into_parts(self) -> (Arc<Core>, TaskName) {
        (self.core, self.task)
    }

    /// Completes once the group is cancelled: Go's `<-ctx.Done()`.
    ///
    /// # Cancellation safety
    ///
    /// Cancellation safe: dropping the future loses nothing.
    ///
    /// ```
    /// use errgroup::errgroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let result = errgroup! {
    ///     watcher => { ctx.cancelled().await; Ok("saw the cancellation") },
    ///     failing => Err("stop"),
    /// };
    /// assert!(result.is_err());
    /// # }
    /// ```
    pub fn cancelled(&self) -> impl Future<Output = ()> + Send + '_ {
        // The group's waiter list wakes us; a deadline is turned into a
        // cancellation by the group's timer, and a passed one is noticed
        // here up front.
        WhenCancelled((!self.core.is_cancelled()).then(|| self.core.cancellation()))
    }

    /// Whether the group is cancelled: Go's `ctx.Err() != nil`.
    ///
    /// Cheap enough to call in a hot loop; it also notices a passed deadline
    /// in a branch that never yields to the group's timer.
    ///
    /// ```
    /// use errgroup::errgroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (was,) = errgroup! { check => Ok::<_, ()>(ctx.is_cancelled()) }.unwrap();
    /// assert!(!was);
    /// # }
    /// ```
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.core.is_cancelled()
    }

    /// `Err(Cancelled)` once the group is cancelled, for `ctx.check()?` in a loop.
    ///
    /// ```
    /// use errgroup::errgroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (sum,) = errgroup! {
    ///     sum => {
    ///         let mut sum = 0u64;
    ///         for i in 0..1000 {
    ///             ctx.check()?;
    ///             sum += i;
    ///         }
    ///         Ok::<_, errgroup::Cancelled>(sum)
    ///     },
    /// }
    /// .unwrap();
    /// assert_eq!(sum, 499_500);
    /// # }
    /// ```
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() {
            Err(self.core.cancelled_error())
        } else {
            Ok(())
        }
    }

    /// Why the group was cancelled, `None` while it is not: Go's `context.Cause`.
    ///
    /// ```
    /// use errgroup::{errgroup, Cause};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let result = errgroup! {
    ///     db => Err("connection refused"),
    ///     observer => {
    ///         ctx.cancelled().await;
    ///         Ok(ctx.cause().unwrap())
    ///     },
    /// };
    /// assert_eq!(result.unwrap_err().cause().to_string(), "task `db` failed");
    /// # }
    /// ```
    #[must_use]
    pub fn cause(&self) -> Option<Cause> {
        self.core.cause()
    }

    /// The earliest deadline of this group and the groups it is nested in:
    /// Go's `ctx.Deadline()`.
    ///
    /// ```
    /// use errgroup::errgroup;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let start = tokio::time::Instant::now();
    /// let (deadline,) = errgroup! {
    ///     timeout = Duration::from_secs(5);
    ///     read => Ok::<_, ()>(ctx.deadline()),
    /// }
    /// .unwrap();
    /// assert_eq!(deadline, Some(start + Duration::from_secs(5)));
    /// # }
    /// ```
    #[must_use]
    pub fn deadline(&self) -> Option<Instant> {
        self.core.effective_deadline()
    }

    /// Runs `fut` until it completes or the group is cancelled, whichever
    /// comes first; on cancellation `fut` is dropped, not leaked. Go's
    /// `select` on a result and `ctx.Done()`.
    ///
    /// If the group is already cancelled, `fut` is not polled at all.
    ///
    /// # Cancellation safety
    ///
    /// As cancellation safe as `fut`: dropping the returned future drops `fut`.
    ///
    /// ```
    /// use errgroup::errgroup;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let result = errgroup! {
    ///     slow => {
    ///         // A future that knows nothing of ctx, stopped by it anyway.
    ///         let value = ctx.run(async {
    ///             tokio::time::sleep(Duration::from_secs(3600)).await;
    ///             42
    ///         })
    ///         .await?;
    ///         Ok(value)
    ///     },
    ///     failing => Err(anyhow::anyhow!("no route to host")),
    /// };
    /// assert_eq!(result.unwrap_err().task().unwrap(), "failing");
    /// # }
    /// ```
    pub async fn run<F: Future>(&self, fut: F) -> Result<F::Output, Cancelled> {
        self.check()?;
        let mut fut = pin!(fut);
        let mut cancelled = pin!(self.cancelled());
        poll_fn(|cx| {
            if cancelled.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(self.core.cancelled_error()));
            }
            fut.as_mut().poll(cx).map(Ok)
        })
        .await
    }

    /// Runs `fut` as one of the group's first-to-finish work: if it returns
    /// `Ok` before the group is cancelled, it shuts the group down
    /// ([`Cause::Shutdown`] naming this ctx's branch or task) and gives
    /// `Ok(Some(value))`; if the group is cancelled first (another finished
    /// first, or it was stopped), `fut` is dropped and it gives `Ok(None)`.
    /// An `Err` is returned as it is and stops nothing by itself: `?` makes
    /// it the branch's failure, as always.
    ///
    /// A branch that returns `Ok(..)` after it makes the group return `Ok`
    /// when the others do too: a proxy's two copy directions, where either
    /// one finishing must stop the other, or "serve until this completes".
    ///
    /// # Cancellation safety
    ///
    /// As cancellation safe as `fut`: dropping the returned future drops `fut`.
    ///
    /// ```
    /// use errgroup::errgroup;
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
    /// let (mut client, proxy_end) = tokio::io::duplex(64);
    /// let (mut server, upstream_end) = tokio::io::duplex(64);
    /// let (mut client_read, mut client_write) = tokio::io::split(proxy_end);
    /// let (mut server_read, mut server_write) = tokio::io::split(upstream_end);
    /// server.write_all(b"hello").await?;
    /// drop(server); // the server hangs up: that direction finishes
    /// errgroup! {
    ///     type Error = std::io::Error;
    ///     up   => { ctx.race(tokio::io::copy(&mut client_read, &mut server_write)).await?; Ok(()) },
    ///     down => { ctx.race(tokio::io::copy(&mut server_read, &mut client_write)).await?; Ok(()) },
    /// }?; // `down` finished, `up` was stopped: the group is `Ok`
    /// let mut got = [0; 5];
    /// client.read_exact(&mut got).await?;
    /// assert_eq!(&got, b"hello");
    /// # Ok(()) }
    /// ```
    pub async fn race<T, E, F>(&self, fut: F) -> Result<Option<T>, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        match self.run(fut).await {
            Ok(Ok(value)) => {
                self.shutdown();
                Ok(Some(value))
            }
            Ok(Err(error)) => Err(error),
            Err(_cancelled) => Ok(None),
        }
    }

    /// Sleeps for `duration` unless the group is cancelled first: Go's
    /// `select` on `time.After(d)` and `ctx.Done()`.
    ///
    /// # Cancellation safety
    ///
    /// Cancellation safe.
    ///
    /// ```
    /// use errgroup::errgroup;
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let result = errgroup! {
    ///     timeout = Duration::from_secs(1);
    ///     ticker => {
    ///         let mut ticks = 0;
    ///         while ctx.sleep(Duration::from_millis(300)).await.is_ok() {
    ///             ticks += 1;
    ///         }
    ///         Ok::<_, ()>(ticks)
    ///     },
    /// };
    /// assert_eq!(result.unwrap(), (3,));
    /// # }
    /// ```
    pub async fn sleep(&self, duration: Duration) -> Result<(), Cancelled> {
        self.run(tokio::time::sleep(duration)).await
    }

    /// Starts `task` as a tokio task of this ctx's group, which waits for it
    /// like for a branch: Go's `g.Go` from inside a goroutine. Its error
    /// cancels the group like a branch's; it counts towards the group's
    /// `limit`.
    ///
    /// This is the untyped spawn, for a `Ctx` that does not know its
    /// group's error type: a clone, [`Group::ctx`](crate::Group::ctx), the
    /// ctx a [`Group::spawn`](crate::Group::spawn) task gets. In a branch,
    /// `ctx` is a [`BranchCtx`], whose [`spawn`](BranchCtx::spawn) takes a
    /// task of the group's error type only and infers `Ok(())` with no
    /// turbofish.
    ///
    /// If `E` is the group's error type, a failure that comes first is the
    /// group's error. If it is not, the task still runs and its failure
    /// still cancels the group with [`Cause::Failed`] naming it, but the
    /// error cannot be returned as the group's: the group returns
    /// [`Error::Cancelled`](crate::Error::Cancelled) with that cause.
    ///
    /// Returns `Err(Cancelled)`, and starts nothing, once the group is
    /// cancelled or has returned.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    ///
    /// ```
    /// use errgroup::{Ctx, Error, Group};
    ///
    /// async fn flush(ctx: Ctx, batch: u32) -> Result<(), String> {
    ///     // Outlives this task; the group still waits for it.
    ///     ctx.spawn(format!("flush{batch}"), async move {
    ///         Err::<(), String>(format!("batch {batch}: disk full"))
    ///     })
    ///     .map_err(|e| e.to_string())
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut group = Group::<String>::new();
    /// group.spawn("writer", |ctx| flush(ctx, 7));
    /// let err = group.wait().await.unwrap_err();
    /// assert_eq!(err.to_string(), "task `flush7` failed: batch 7: disk full");
    ///
    /// // Another error type: the failure still stops the group, as a cause.
    /// let mut group = Group::<std::io::Error>::new();
    /// group.spawn("writer", |ctx| async move {
    ///     flush(ctx, 8).await.map_err(std::io::Error::other)
    /// });
    /// match group.wait().await.unwrap_err() {
    ///     Error::Cancelled(cancelled) => {
    ///         assert_eq!(cancelled.cause().to_string(), "task `flush8` failed");
    ///     }
    ///     other => panic!("{other:?}"),
    /// }
    /// # }
    /// ```
    pub fn spawn<E, F>(&self, name: impl Into<TaskName>, task: F) -> Result<(), Cancelled>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        // The trailing comment is shown by rustc's E0283 note on this line.
        E: Send + 'static, // no error type for the task? take a `&BranchCtx<YourError>`, or write `Ok::<(), YourError>(())`
    {
        spawn(&self.core, name.into(), |_| task, self.core.start())
    }

    /// A channel bound to this ctx's group, holding up to `capacity` items:
    /// the run-time twin of the `let (tx, rx) = channel(cap);` header.
    ///
    /// Once the group is cancelled, a [`send`](Sender::send) or
    /// [`recv`](Receiver::recv) blocked on it returns `Err` at once; when
    /// every [`Sender`] is gone, receivers drain the buffer and then get
    /// `Ok(None)`.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    ///
    /// ```
    /// use errgroup::errgroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (total,) = errgroup! {
    ///     type Error = anyhow::Error;
    ///     sum => {
    ///         let (tx, rx) = ctx.channel::<u32>(16);
    ///         for n in 1..=4 { tx.send(n).await?; }
    ///         drop(tx);
    ///         let mut total = 0;
    ///         while let Some(n) = rx.recv().await? { total += n; }
    ///         Ok(total)
    ///     },
    /// }
    /// .unwrap();
    /// assert_eq!(total, 10);
    /// # }
    /// ```
    #[must_use]
    pub fn channel<T: Send + 'static>(&self, capacity: usize) -> (Sender<T>, Receiver<T>) {
        channel::bound(self.core.node(), Some(capacity))
    }

    /// An unbounded channel bound to this ctx's group: like
    /// [`channel`](Ctx::channel), but `send` never waits.
    ///
    /// ```
    /// use errgroup::errgroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (len,) = errgroup! {
    ///     fill => {
    ///         let (tx, rx) = ctx.unbounded::<u64>();
    ///         for n in 0..10_000 { tx.try_send(n).unwrap(); }
    ///         Ok::<_, ()>(rx.len())
    ///     },
    /// }
    /// .unwrap();
    /// assert_eq!(len, 10_000);
    /// # }
    /// ```
    #[must_use]
    pub fn unbounded<T: Send + 'static>(&self) -> (Sender<T>, Receiver<T>) {
        channel::bound(self.core.node(), None)
    }

    /// Stops the group on purpose, as if its deadline had passed: every
    /// branch's ctx is cancelled with [`Cause::Shutdown`] naming this
    /// branch, nothing new starts, and the group waits for its branches as
    /// always. It returns `Ok` if they all still return `Ok`; otherwise its
    /// error [`is_shutdown`](crate::Error::is_shutdown), and
    /// [`allow_shutdown`](crate::AllowShutdown::allow_shutdown) turns it
    /// into `Ok`. A branch that failed before wins. `false` if the group was
    /// already cancelled.
    ///
    /// ```
    /// use errgroup::{Cause, errgroup};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (served, ()) = errgroup! {
    ///     server => { ctx.cancelled().await; Ok::<_, ()>(ctx.cause()) },
    ///     admin => { ctx.shutdown(); Ok(()) },
    /// }
    /// .unwrap();
    /// assert_eq!(served.unwrap().to_string(), "shut down by `admin`");
    /// # }
    /// ```
    #[allow(
        clippy::must_use_candidate,
        reason = "called for its effect; whether it stopped the group is a bonus"
    )]
    pub fn shutdown(&self) -> bool {
        self.core.cancel(Cause::Shutdown {
            by: self.task.clone(),
        })
    }

    /// A handle that stops this ctx's group from anywhere (another task, a
    /// signal handler, an admin endpoint), named after this branch until
    /// [`Shutdown::by`] renames it. It does not keep the group alive.
    ///
    /// ```
    /// use errgroup::errgroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (cause,) = errgroup! {
    ///     type Error = errgroup::Cancelled;
    ///     service => {
    ///         let stop = ctx.shutdown_handle().by("admin api");
    ///         ctx.spawn("admin", async move { stop.shutdown(); Ok(()) })?;
    ///         ctx.cancelled().await;
    ///         Ok(ctx.cause().unwrap())
    ///     },
    /// }
    /// .unwrap();
    /// assert_eq!(cause.to_string(), "shut down by `admin api`");
    /// # }
    /// ```
    #[must_use]
    pub fn shutdown_handle(&self) -> Shutdown {
        Shutdown::new(&self.core, self.task.clone())
    }

    /// A handle that asks this ctx's group which of its branches, fan-out
    /// items and tasks are still running, and for how long: for a watchdog
    /// or a debug endpoint. `Clone + Send + Sync + 'static`; it does not
    /// keep the group alive. See [`Watch`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use errgroup::errgroup;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// let (seen, ()) = errgroup! {
    ///     watchdog => {
    ///         let watch = ctx.watch();
    ///         tokio::time::sleep(Duration::from_secs(1)).await;
    ///         let names: Vec<String> =
    ///             watch.running().await.iter().map(|r| r.task().to_string()).collect();
    ///         Ok::<_, ()>(names)
    ///     },
    ///     slow => { tokio::time::sleep(Duration::from_secs(5)).await; Ok(()) },
    /// }
    /// .unwrap();
    /// assert_eq!(seen, ["watchdog", "slow"]);
    /// # }
    /// ```
    #[must_use]
    pub fn watch(&self) -> Watch {
        Watch::new(&self.core)
    }

    /// A `CancellationToken` cancelled when this ctx's group is, for code
    /// that speaks tokio-util (axum's and tonic's graceful shutdown, most
    /// tokio libraries). It is a child token: cancelling it cancels nothing
    /// here (use [`shutdown`](Ctx::shutdown) for that).
    ///
    /// ```
    /// use errgroup::errgroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let result = errgroup! {
    ///     library => {
    ///         let token = ctx.token();
    ///         token.cancelled().await; // tokio-util's API
    ///         Ok(())
    ///     },
    ///     failing => Err("boom"),
    /// };
    /// assert_eq!(result.unwrap_err().task().unwrap(), "failing");
    /// # }
    /// ```
    #[must_use]
    pub fn token(&self) -> CancellationToken {
        self.core.node().token()
    }

    /// Completes once the group is cancelled, like [`cancelled`](Ctx::cancelled),
    /// but owns what it needs: `Send + 'static`, for APIs that take a
    /// shutdown future, e.g. `axum::serve(..).with_graceful_shutdown(ctx.cancelled_owned())`.
    ///
    /// ```
    /// use errgroup::errgroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let result = errgroup! {
    ///     server => {
    ///         let stop = ctx.cancelled_owned(); // 'static: another task may own it
    ///         ctx.spawn("graceful", async move { stop.await; Ok(()) }).unwrap();
    ///         Ok(())
    ///     },
    ///     failing => Err("boom"),
    /// };
    /// assert!(result.is_err());
    /// # }
    /// ```
    pub fn cancelled_owned(&self) -> WaitForCancellationFutureOwned {
        self.token().cancelled_owned()
    }

    /// The name of the branch this ctx belongs to: `"fetch"`, or `"fetch[3]"`
    /// for an item of a fan-out branch.
    ///
    /// ```
    /// use errgroup::errgroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (name,) = errgroup! { fetch => Ok::<_, ()>(ctx.task().to_string()) }.unwrap();
    /// assert_eq!(name, "fetch");
    /// # }
    /// ```
    #[must_use]
    pub fn task(&self) -> &TaskName {
        &self.task
    }
}

/// [`Ctx::cancelled`]: the group's cancellation, or nothing to wait for if
/// it was cancelled when asked. Written out rather than an `async` block,
/// which kept the cancellation twice (captured, and where it awaited it):
/// a blocked branch holds one (benches/memory.rs).
struct WhenCancelled<'a>(Option<Cancellation<'a>>);

impl Future for WhenCancelled<'_> {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        match &mut self.get_mut().0 {
            Some(cancellation) => std::pin::Pin::new(cancellation).poll(cx),
            None => Poll::Ready(()),
        }
    }
}

/// The `ctx` of an `errgroup!` branch: a [`Ctx`] that knows its group's
/// error type `E`, so that [`spawn`](BranchCtx::spawn) takes only tasks
/// whose error is the group's.
///
/// Every branch (plain, `#[spawn]`, `#[blocking]`, a fan-out item, under
/// `on_error = continue` too) has `ctx: &BranchCtx<E>` in scope, `E` the
/// group's error type (from `type Error = ..;` or inferred). It derefs to
/// `Ctx`: every `Ctx` method works on it, `&BranchCtx<E>` passes where a
/// `&Ctx` is expected, [`clone`](BranchCtx::clone) gives a `Ctx`, and it is
/// a `parent = ctx;` like a `Ctx`. `Send + Sync` whatever `E`. It is not
/// `Clone` (`ctx.clone()` must stay a `Ctx`, as it was when `ctx` was a
/// `&Ctx`, and `Clone::clone` should not disagree with it): a task that
/// needs a typed ctx of its own gets one from [`spawn_with`](BranchCtx::spawn_with).
///
/// ```
/// use errgroup::{Ctx, errgroup};
/// use std::time::Duration;
///
/// async fn fetch(ctx: &Ctx, id: u32) -> anyhow::Result<u32> {
///     ctx.sleep(Duration::from_millis(10)).await?;
///     Ok(id * 10)
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let (value,) = errgroup! {
///     page => {
///         // The task's `Ok(())` is the group's `Result<(), anyhow::Error>`.
///         ctx.spawn("audit", async { Ok(()) })?;
///         fetch(ctx, 4).await // a `&Ctx` helper takes it as is
///     },
/// }
/// .unwrap();
/// assert_eq!(value, 40);
/// # }
/// ```
///
/// A task of another error type is a compile error: convert it in the task.
///
/// ```compile_fail,E0271
/// # use errgroup::errgroup;
/// async fn read() -> std::io::Result<()> { Ok(()) }
/// # async fn f() {
/// errgroup! {
///     type Error = anyhow::Error;
///     page => {
///         ctx.spawn("read", read())?; // `async { Ok(read().await?) }` fits
///         Ok(())
///     },
/// };
/// # }
/// ```
///
/// The lifetime `'a` is that of the group's own future: the ctx of an
/// in-task branch of a group that has no `Arc` of its own borrows the
/// group's state there (so such a group allocates nothing), and gets an
/// owned group the first time something needs one (`ctx.clone()`, passing
/// it as a `&Ctx`, `spawn`, `channel`, `watch`, `token`, waiting on the
/// cancellation). `fn f(ctx: &BranchCtx<E>)` still names it (the lifetime
/// is elided); a ctx to keep is a [`Ctx`] (`ctx.clone()`).
pub struct BranchCtx<'a, E> {
    held: Held<'a>,
    // `fn() -> E`: the ctx holds no `E`, so it is `Send + Sync` whatever `E` is.
    error: PhantomData<fn() -> E>,
}

/// What a [`BranchCtx`] holds of its group.
enum Held<'a> {
    Owned(Ctx),
    /// The state of an in-task group, in its future (`Place`, state.rs),
    /// and the name the macro wrote: a [`TaskName`] is made only when one
    /// is handed out (a failure, `task()`, a promotion). `owned` is the
    /// `Ctx` made the first time one is needed, boxed: every ctx is as large
    /// as its largest variant, and a blocked branch or item holds one
    /// (benches/memory.rs), where a promoted ctx is rare and allocates anyway.
    Lent {
        place: &'a Place,
        task: &'static str,
        owned: ColdOnce<Box<Ctx>>,
    },
}

impl<'a, E> BranchCtx<'a, E> {
    pub(crate) fn new(core: Arc<Core>, task: TaskName) -> Self {
        BranchCtx::from_ctx(Ctx::new(core, task))
    }

    /// The ctx of an in-task branch of the group whose state is `place`.
    #[inline]
    pub(crate) fn lent(place: &'a Place, task: &'static str) -> Self {
        let held = match place.core() {
            Some(core) => Held::Owned(Ctx::new(Arc::clone(core), TaskName::new(task))),
            None => Held::Lent {
                place,
                task,
                owned: ColdOnce::new(),
            },
        };
        BranchCtx {
            held,
            error: PhantomData,
        }
    }

    fn from_ctx(ctx: Ctx) -> Self {
        BranchCtx {
            held: Held::Owned(ctx),
            error: PhantomData,
        }
    }

    /// The name of the branch an in-task runner built with this ctx keeps:
    /// a borrow, never a copy (its group is the scope's).
    pub(crate) fn named(&self) -> Named<'_> {
        match &self.held {
            Held::Owned(ctx) => Named::Borrowed(ctx.task()),
            Held::Lent { task, .. } => Named::Static(task),
        }
    }

    /// [`named`](BranchCtx::named), by value.
    pub(crate) fn into_named(self) -> Named<'a> {
        match self.held {
            Held::Owned(ctx) => Named::owned(ctx.into_parts().1),
            Held::Lent { task, .. } => Named::Static(task),
        }
    }

    /// The same ctx, owning its group (made one now if it was not): a
    /// `#[blocking]` body's, on another thread.
    pub(crate) fn into_owned(self) -> BranchCtx<'static, E> {
        BranchCtx::from_ctx(Ctx::from(self))
    }

    /// The group's inline state, if it is one that has no core yet.
    fn place(&self) -> Option<&'a Place> {
        match &self.held {
            Held::Lent { place, .. } if place.core().is_none() => Some(*place),
            _ => None,
        }
    }

    /// [`Ctx::is_cancelled`], without making the group an owned one.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        match &self.held {
            Held::Owned(ctx) => ctx.is_cancelled(),
            Held::Lent { place, .. } => place.is_cancelled(),
        }
    }

    /// [`Ctx::check`], without making the group an owned one.
    pub fn check(&self) -> Result<(), Cancelled> {
        match self.place() {
            Some(place) if place.is_cancelled() => Err(place.cancelled_error()),
            Some(_) => Ok(()),
            None => Ctx::check(self),
        }
    }

    /// [`Ctx::cause`], without making the group an owned one.
    #[must_use]
    pub fn cause(&self) -> Option<Cause> {
        match &self.held {
            Held::Owned(ctx) => ctx.cause(),
            Held::Lent { place, .. } => place.cause(),
        }
    }

    /// [`Ctx::deadline`], without making the group an owned one.
    #[must_use]
    pub fn deadline(&self) -> Option<Instant> {
        // A group without a core has no deadline, nor a parent's.
        self.place().map_or_else(|| Ctx::deadline(self), |_| None)
    }

    /// [`Ctx::shutdown`], without making the group an owned one.
    #[allow(
        clippy::must_use_candidate,
        reason = "called for its effect; whether it stopped the group is a bonus"
    )]
    pub fn shutdown(&self) -> bool {
        match &self.held {
            Held::Owned(ctx) => ctx.shutdown(),
            Held::Lent { place, task, .. } => place.cancel(Cause::Shutdown {
                by: TaskName::new(*task),
            }),
        }
    }

    /// [`Ctx::task`], without making the group an owned one: by value, as
    /// an in-task branch's ctx keeps only the name the macro wrote (a
    /// `TaskName` of a `&'static str` copies no string).
    #[must_use]
    pub fn task(&self) -> TaskName {
        match &self.held {
            Held::Owned(ctx) => ctx.task().clone(),
            Held::Lent { task, .. } => TaskName::new(*task),
        }
    }

    /// Starts `task` as a tokio task of this ctx's group, which waits for it
    /// like for a branch: Go's `g.Go` from inside a goroutine. Its error
    /// cancels the group like a branch's, and is the group's error if it
    /// came first; it counts towards the group's `limit`.
    ///
    /// The task's error type is the group's, `E`: its `Ok(())` needs no
    /// annotation, and `?` in it converts other errors with `From` as in
    /// the branch. A task of another error type does not compile.
    ///
    /// Returns `Err(Cancelled)`, and starts nothing, once the group is
    /// cancelled or has returned.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    ///
    /// ```
    /// use errgroup::errgroup;
    /// use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let flushed = Arc::new(AtomicUsize::new(0));
    /// let counter = Arc::clone(&flushed);
    /// errgroup! {
    ///     writer => {
    ///         for batch in 0..3 {
    ///             let counter = Arc::clone(&counter);
    ///             // Outlives this branch; the group still waits for it.
    ///             ctx.spawn(format!("flush{batch}"), async move {
    ///                 counter.fetch_add(1, SeqCst);
    ///                 Ok(())
    ///             })?;
    ///         }
    ///         Ok::<_, anyhow::Error>(())
    ///     },
    /// }
    /// .unwrap();
    /// assert_eq!(flushed.load(SeqCst), 3);
    /// # }
    /// ```
    pub fn spawn<F>(&self, name: impl Into<TaskName>, task: F) -> Result<(), Cancelled>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Send + 'static,
    {
        let core = Ctx::core(self);
        spawn(core, name.into(), |_| task, core.start())
    }

    /// [`spawn`](BranchCtx::spawn)s `make(ctx)`, `ctx` the task's own (named
    /// `name`, typed like this one): as [`Group::spawn`](crate::Group::spawn)
    /// does, for a task that spawns in turn, shuts the group down as itself,
    /// or watches the cancellation. `make` runs now, in the caller.
    ///
    /// ```
    /// use errgroup::{Cause, errgroup};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (cause,) = errgroup! {
    ///     type Error = String;
    ///     service => {
    ///         ctx.spawn_with("admin", |ctx| async move {
    ///             ctx.spawn("audit", async { Ok(()) }).map_err(|e| e.to_string())?;
    ///             ctx.shutdown(); // as `admin`, not as `service`
    ///             Ok(())
    ///         })
    ///         .map_err(|e| e.to_string())?;
    ///         ctx.cancelled().await;
    ///         Ok(ctx.cause().unwrap())
    ///     },
    /// }
    /// .unwrap();
    /// assert_eq!(cause.to_string(), "shut down by `admin`");
    /// # }
    /// ```
    pub fn spawn_with<M, F>(&self, name: impl Into<TaskName>, make: M) -> Result<(), Cancelled>
    where
        M: FnOnce(BranchCtx<'static, E>) -> F,
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Send + 'static,
    {
        let core = Ctx::core(self);
        spawn(
            core,
            name.into(),
            |ctx| make(BranchCtx::from_ctx(ctx)),
            core.start(),
        )
    }

    /// An untyped [`Ctx`] of the same branch, to keep or hand on (a
    /// `Ctx` stays tied to its group as a clone of it would).
    ///
    /// This is what `ctx.clone()` gives in a branch, as it did when `ctx`
    /// was a `&Ctx`: a `Ctx`, not a `BranchCtx`, so that functions and
    /// structs taking a `Ctx` take it unchanged.
    ///
    /// ```
    /// use errgroup::{Ctx, errgroup};
    ///
    /// async fn worker(ctx: Ctx) -> Result<&'static str, ()> {
    ///     ctx.cancelled().await;
    ///     Ok("stopped")
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (stopped, ()) = errgroup! {
    ///     worker => worker(ctx.clone()).await,
    ///     stop => { ctx.shutdown(); Ok(()) },
    /// }
    /// .unwrap();
    /// assert_eq!(stopped, "stopped");
    /// # }
    /// ```
    #[must_use]
    #[allow(
        clippy::should_implement_trait,
        reason = "it gives a `Ctx`, not a `Self`: `ctx.clone()` in a branch keeps the type it had"
    )]
    pub fn clone(&self) -> Ctx {
        Ctx::clone(self)
    }
}

/// Where `&BranchCtx` passes as a `&Ctx`: makes the group an owned one
/// the first time (one allocation, once per group).
impl<E> Deref for BranchCtx<'_, E> {
    type Target = Ctx;

    fn deref(&self) -> &Ctx {
        match &self.held {
            Held::Owned(ctx) => ctx,
            Held::Lent { place, task, owned } => owned.get_or_init(|| {
                Box::new(Ctx::new(Arc::clone(place.promote()), TaskName::new(*task)))
            }),
        }
    }
}

impl<E> From<BranchCtx<'_, E>> for Ctx {
    fn from(ctx: BranchCtx<'_, E>) -> Ctx {
        match ctx.held {
            Held::Owned(ctx) => ctx,
            Held::Lent {
                place,
                task,
                mut owned,
            } => owned.take().map_or_else(
                || Ctx::new(Arc::clone(place.promote()), TaskName::new(task)),
                |ctx| *ctx,
            ),
        }
    }
}

impl<E> fmt::Debug for BranchCtx<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.held {
            Held::Owned(ctx) => ctx.fmt(f),
            Held::Lent { task, .. } => f
                .debug_struct("Ctx")
                .field("task", task)
                .field("cause", &self.cause())
                .field("deadline", &self.deadline())
                .finish_non_exhaustive(),
        }
    }
}

/// What a group can be the child of: a [`Ctx`] or [`BranchCtx`] (the group is cancelled when
/// that ctx's group is, with [`Cause::Parent`]) or a tokio-util
/// [`CancellationToken`] (cancelled with `Parent(Shutdown { by: "token" })`
/// when the token is, which counts as a shutdown, not a failure). Taken by
/// the `parent = ..;` header and [`Group::with_parent`](crate::Group::with_parent).
///
/// ```
/// use errgroup::errgroup;
/// use tokio_util::sync::CancellationToken;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let token = CancellationToken::new(); // what axum or tonic code passes around
/// let result = errgroup! {
///     parent = &token;
///     server => { ctx.cancelled().await; Ok::<_, ()>(ctx.cause().unwrap()) },
///     outside => { token.cancel(); Ok(()) },
/// };
/// let (cause, ()) = result.expect("stopped on purpose, and the server returned Ok");
/// assert!(cause.is_shutdown());
/// # }
/// ```
pub trait IntoParent {
    #[doc(hidden)]
    fn into_parent(self) -> Parent;
}

/// A group's parent, as [`IntoParent`] gives it.
#[doc(hidden)]
#[derive(Debug)]
pub struct Parent(pub(crate) ParentKind);

#[derive(Debug)]
pub(crate) enum ParentKind {
    Group(Arc<Core>),
    Token(CancellationToken),
}

impl IntoParent for &Ctx {
    fn into_parent(self) -> Parent {
        Parent(ParentKind::Group(Arc::clone(&self.core)))
    }
}

impl IntoParent for &&Ctx {
    fn into_parent(self) -> Parent {
        (*self).into_parent()
    }
}

impl IntoParent for Ctx {
    fn into_parent(self) -> Parent {
        Parent(ParentKind::Group(self.core))
    }
}

impl<E> IntoParent for &BranchCtx<'_, E> {
    fn into_parent(self) -> Parent {
        self.clone().into_parent()
    }
}

impl<E> IntoParent for &&BranchCtx<'_, E> {
    fn into_parent(self) -> Parent {
        (*self).into_parent()
    }
}

impl<E> IntoParent for BranchCtx<'_, E> {
    fn into_parent(self) -> Parent {
        Ctx::from(self).into_parent()
    }
}

impl IntoParent for &CancellationToken {
    fn into_parent(self) -> Parent {
        Parent(ParentKind::Token(self.clone()))
    }
}

impl IntoParent for CancellationToken {
    fn into_parent(self) -> Parent {
        Parent(ParentKind::Token(self))
    }
}

/// Stops a group on purpose from anywhere: made by
/// [`Ctx::shutdown_handle`] or [`Group::shutdown_handle`](crate::Group::shutdown_handle).
/// `Clone + Send + Sync + 'static`; it does not keep the group alive, and
/// does nothing once the group has returned.
///
/// ```
/// use errgroup::Group;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut group = Group::<()>::new();
/// let stop = group.shutdown_handle().by("ctrl-c");
/// group.spawn("server", |ctx| async move { ctx.cancelled().await; Ok(()) });
/// assert!(stop.shutdown());
/// group.wait().await.unwrap(); // the server returned Ok: so does the group
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Shutdown {
    core: Weak<Core>,
    by: TaskName,
}

impl Shutdown {
    pub(crate) fn new(core: &Arc<Core>, by: TaskName) -> Self {
        Shutdown {
            core: Arc::downgrade(core),
            by,
        }
    }

    /// The same handle, naming `by` as who asked.
    ///
    /// ```
    /// let group = errgroup::Group::<()>::new();
    /// let stop = group.shutdown_handle().by("SIGTERM");
    /// assert!(stop.shutdown());
    /// assert_eq!(group.ctx().cause().unwrap().to_string(), "shut down by `SIGTERM`");
    /// ```
    #[must_use]
    pub fn by(self, by: impl Into<TaskName>) -> Self {
        Shutdown {
            by: by.into(),
            ..self
        }
    }

    /// Stops the group, as [`Ctx::shutdown`] does; `false` if it was
    /// already cancelled or has returned.
    ///
    /// ```
    /// let group = errgroup::Group::<()>::new();
    /// let stop = group.shutdown_handle();
    /// assert!(stop.shutdown());
    /// assert!(!stop.shutdown(), "only the first stops it");
    /// ```
    #[allow(
        clippy::must_use_candidate,
        reason = "called for its effect; whether it stopped the group is a bonus"
    )]
    pub fn shutdown(&self) -> bool {
        self.core.upgrade().is_some_and(|core| {
            core.cancel(Cause::Shutdown {
                by: self.by.clone(),
            })
        })
    }
}

/// Asks a running group which of its branches, fan-out items and tasks
/// are still running, and for how long: what a watchdog logs when a
/// shutdown takes too long, what a debug endpoint shows. Made by
/// [`Ctx::watch`] or [`Group::watch`](crate::Group::watch).
/// `Clone + Send + Sync + 'static`; it does not keep the group alive.
///
/// An `errgroup!` group's in-task branches live in the future that runs the
/// group, so [`running`](Watch::running) is answered by that future's next
/// poll, which the question wakes: it costs the group nothing until asked.
/// Once the group has returned, the answer is empty.
///
/// ```
/// use std::time::Duration;
/// use errgroup::errgroup;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let (log, ..) = errgroup! {
///     // A watchdog: every second, what still runs.
///     watchdog => {
///         let watch = ctx.watch();
///         let mut log = Vec::new();
///         loop {
///             tokio::time::sleep(Duration::from_secs(1)).await;
///             let running = watch.running().await;
///             let others: Vec<String> = running
///                 .iter()
///                 .filter(|r| r.task() != "watchdog")
///                 .map(ToString::to_string)
///                 .collect();
///             if others.is_empty() {
///                 break;
///             }
///             log.push(others.join(", "));
///         }
///         Ok::<_, ()>(log)
///     },
///     fetch => { tokio::time::sleep(Duration::from_millis(2500)).await; Ok(()) },
///     items => for i in 1..=2u64 {
///         tokio::time::sleep(Duration::from_millis(1500 * i)).await;
///         Ok(())
///     },
/// }
/// .unwrap();
/// assert_eq!(
///     log,
///     [
///         "`fetch` for 1s, `items[0]` for 1s, `items[1]` for 1s",
///         "`fetch` for 2s, `items[1]` for 2s",
///     ],
/// );
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Watch {
    core: Weak<Core>,
}

impl Watch {
    pub(crate) fn new(core: &Arc<Core>) -> Self {
        core.watched();
        Watch {
            core: Arc::downgrade(core),
        }
    }

    /// What is still running: branches in the order written (a fan-out's
    /// running items by index), then the tasks (`ctx.spawn`,
    /// [`Group::spawn`](crate::Group::spawn)), then a [`Pool`](crate::Pool)'s
    /// tasks, counted in one line (`"12 pool tasks"`) rather than named.
    /// Empty once the group has returned.
    ///
    /// # Cancellation safety
    ///
    /// Cancellation safe: a question dropped unanswered costs the group nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut group = errgroup::Group::<()>::new();
    /// let watch = group.watch();
    /// let (release, gate) = tokio::sync::oneshot::channel::<()>();
    /// group.spawn("held", |_| async move { gate.await.ok(); Ok(()) });
    /// assert_eq!(watch.running().await[0].task(), "held");
    /// release.send(()).unwrap();
    /// group.wait().await.unwrap();
    /// assert!(watch.running().await.is_empty());
    /// # }
    /// ```
    pub async fn running(&self) -> Vec<Running> {
        let Some(core) = self.core.upgrade() else {
            return Vec::new();
        };
        let answer = core.ask();
        // Not kept while waiting: the group may end, and its core with it.
        drop(core);
        match answer {
            Answer::Now(list) => list,
            Answer::Later(answer) => answer.await.unwrap_or_default(),
        }
    }
}

/// Starts `make(ctx)` as a task of `core`'s group with `ctx` its own, as
/// `start` allows: `ctx.spawn` and `ctx.spawn_with`.
pub(crate) fn spawn<E, M, F>(
    core: &Arc<Core>,
    name: TaskName,
    make: M,
    start: Start,
) -> Result<(), Cancelled>
where
    M: FnOnce(Ctx) -> F,
    F: Future<Output = Result<(), E>> + Send + 'static,
    E: Send + 'static,
{
    if matches!(start, Start::Refused) {
        return Err(core.refuse_task());
    }
    let body = make(Ctx::new(Arc::clone(core), name.clone()));
    core.spawn_task(
        &trace::name(&name),
        task_job(Arc::clone(core), name, body, start),
    )
}

impl fmt::Debug for Ctx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("task", &self.task)
            .field("cause", &self.cause())
            .field("deadline", &self.deadline())
            .finish_non_exhaustive()
    }
}
