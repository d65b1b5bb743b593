//! Guides: moving code over to `errgroup`, and recipes.
//!
//! Nothing here is API; these pages only hold documentation. Every Rust
//! example on them compiles as a doctest against the current release.
//!
//! Moving over from what you would write instead:
//!
//! - a `JoinSet` of tasks and a `CancellationToken`: [`from_joinset`];
//! - `tokio::try_join!`: [`from_try_join`];
//! - Go's `golang.org/x/sync/errgroup` and `context`: [`from_go`].
//!
//! Recipes:
//!
//! - stop a service on Ctrl-C or SIGTERM with a grace period, and give
//!   request groups the service's lifetime as their parent: [`shutdown`];
//! - a server's accept loop: a task per connection, isolated, limited with
//!   backpressure and drained at shutdown: [`accept_loop`];
//! - an axum handler that fans out to several backends: [`axum`];
//! - spans for branches: [`tracing`].

pub mod from_joinset {
    //! Moving over from `JoinSet` + `CancellationToken`.
    //!
    //! The hand-written version of a cancel-on-first-error group: spawn each
    //! task with a clone of a token, `select!` on the token inside each one,
    //! cancel it at the first error, drain the set, resume a panic, and put
    //! the values back in order.
    //!
    //! ```
    //! use std::time::Duration;
    //! use tokio::task::JoinSet;
    //! use tokio_util::sync::CancellationToken;
    //!
    //! async fn fetch(name: &'static str, token: CancellationToken) -> anyhow::Result<String> {
    //!     tokio::select! {
    //!         () = token.cancelled() => anyhow::bail!("{name}: cancelled"),
    //!         () = tokio::time::sleep(Duration::from_millis(10)) => Ok(format!("{name} data")),
    //!     }
    //! }
    //!
    //! async fn fetch_both() -> anyhow::Result<(String, String)> {
    //!     let token = CancellationToken::new();
    //!     let mut set = JoinSet::new();
    //!     for (index, name) in ["user", "orders"].into_iter().enumerate() {
    //!         let token = token.clone();
    //!         set.spawn(async move { (index, fetch(name, token).await) });
    //!     }
    //!     let mut values = [None, None];
    //!     let mut first_error = None;
    //!     while let Some(joined) = set.join_next().await {
    //!         match joined {
    //!             Ok((index, Ok(value))) => values[index] = Some(value),
    //!             Ok((_, Err(error))) => {
    //!                 token.cancel();
    //!                 first_error.get_or_insert(error);
    //!             }
    //!             Err(join_error) => {
    //!                 token.cancel();
    //!                 if join_error.is_panic() {
    //!                     std::panic::resume_unwind(join_error.into_panic());
    //!                 }
    //!             }
    //!         }
    //!     }
    //!     if let Some(error) = first_error {
    //!         return Err(error);
    //!     }
    //!     let [Some(user), Some(orders)] = values else { unreachable!() };
    //!     Ok((user, orders))
    //! }
    //! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    //! # assert_eq!(fetch_both().await.unwrap(), ("user data".into(), "orders data".into()));
    //! # }
    //! ```
    //!
    //! With `errgroup!`, the group does all of that; the token is the
    //! injected `ctx`, and the helpers on [`Ctx`](crate::Ctx) replace the
    //! `select!`:
    //!
    //! ```
    //! use std::time::Duration;
    //! use errgroup::{Ctx, errgroup};
    //!
    //! async fn fetch(name: &str, ctx: &Ctx) -> anyhow::Result<String> {
    //!     ctx.sleep(Duration::from_millis(10)).await?; // `Err(Cancelled)` once the group is
    //!     Ok(format!("{name} data"))
    //! }
    //!
    //! async fn fetch_both() -> Result<(String, String), errgroup::Error<anyhow::Error>> {
    //!     errgroup! {
    //!         #[spawn] user   => fetch("user", ctx).await,
    //!         #[spawn] orders => fetch("orders", ctx).await,
    //!     }
    //! }
    //! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    //! # assert_eq!(fetch_both().await.unwrap(), ("user data".into(), "orders data".into()));
    //! # }
    //! ```
    //!
    //! Drop `#[spawn]` when the tasks do not need to run in parallel: plain
    //! branches run concurrently in the calling task, need neither `Send`
    //! nor `'static`, and may borrow the caller's locals.
    //!
    //! | `JoinSet` + `CancellationToken` | `errgroup` |
    //! |---|---|
    //! | `CancellationToken::new()`, a clone per task | `ctx`, injected into every branch |
    //! | `set.spawn(fut)` for a fixed set of tasks | a `#[spawn] name => body` branch |
    //! | `set.spawn(fut)` in a loop | a `#[spawn] name => for x in xs { .. }` branch, or [`Group::spawn`](crate::Group::spawn) |
    //! | `select! { _ = token.cancelled() => .., r = work => .. }` | [`ctx.run(work).await?`](crate::Ctx::run) |
    //! | `token.cancel()` at the first error, keep that error | automatic; the error is named after its branch |
    //! | the `join_next` loop | automatic: the group returns once every task has |
    //! | `JoinError::is_panic` then `resume_unwind` | automatic: the panic resumes in the caller |
    //! | putting values back in spawn order | automatic: values come in branch (and item) order |
    //! | `token.child_token()` for nested work | automatic: a group made inside a branch is a child |
    //! | dropping the `JoinSet` aborts its tasks | the same: dropping the group's future drops or aborts every branch |
    //! | tasks added while running | [`Group`](crate::Group), or [`ctx.spawn`](crate::Ctx::spawn) inside a branch |
    //! | tokio-util's `TaskTracker` (tasks that must not stop each other, awaited at shutdown, freed as they end) | a [`Pool`](crate::Pool), [`supervise`](crate::Pool::supervise)d: see [`accept_loop`](super::accept_loop) |
    //! | a `Semaphore` acquired before each `spawn` | [`Pool::limit`](crate::Pool::limit): [`spawn`](crate::Pool::spawn) waits for a slot |
    //!
    //! For tasks whose number is known only at run time, [`Group`](crate::Group)
    //! is the closest to a `JoinSet`:
    //!
    //! ```
    //! use errgroup::Group;
    //!
    //! # #[tokio::main(flavor = "current_thread")] async fn main() {
    //! let jobs = vec![3u32, 5, 0, 7];
    //! let mut group = Group::new().limit(2);
    //! for (i, job) in jobs.into_iter().enumerate() {
    //!     group.spawn(format!("job{i}"), move |ctx| async move {
    //!         ctx.check()?; // stop early once another job failed
    //!         if job == 0 {
    //!             anyhow::bail!("empty job");
    //!         }
    //!         Ok(())
    //!     });
    //! }
    //! let err = group.wait().await.unwrap_err();
    //! assert_eq!(err.task().unwrap(), "job2");
    //! # }
    //! ```
}

pub mod from_try_join {
    //! Moving over from `tokio::try_join!`.
    //!
    //! ```
    //! # async fn user(id: u64) -> anyhow::Result<String> { Ok(format!("user{id}")) }
    //! # async fn orders(_: u64) -> anyhow::Result<Vec<u32>> { Ok(vec![1, 2]) }
    //! # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
    //! # let id = 7;
    //! let (user, orders) = tokio::try_join!(user(id), orders(id))?;
    //! # assert_eq!(user, "user7"); assert_eq!(orders, [1, 2]);
    //! # Ok(()) }
    //! ```
    //!
    //! becomes
    //!
    //! ```
    //! use errgroup::{Ctx, errgroup};
    //!
    //! # async fn user(_: &Ctx, id: u64) -> anyhow::Result<String> { Ok(format!("user{id}")) }
    //! # async fn orders(_: &Ctx, _: u64) -> anyhow::Result<Vec<u32>> { Ok(vec![1, 2]) }
    //! # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
    //! # let id = 7;
    //! let (user, orders) = errgroup! {
    //!     user   => user(ctx, id).await,
    //!     orders => orders(ctx, id).await,
    //! }?;
    //! # assert_eq!(user, "user7"); assert_eq!(orders, [1, 2]);
    //! # Ok(()) }
    //! ```
    //!
    //! What changes:
    //!
    //! - **How the others stop.** `try_join!` drops the other futures at
    //!   the first error, wherever they are waiting. A group cancels its
    //!   `ctx` and waits for every branch to return: a branch stops where
    //!   it looks at `ctx` (`ctx.check()?`, `ctx.sleep(..)`,
    //!   `ctx.run(..)`, a group channel) and can clean up on the way out. A
    //!   future that knows nothing of `ctx` runs to its end unless you wrap
    //!   it: `ctx.run(fut).await?` drops `fut` on cancellation, as
    //!   `try_join!` would have. `grace = d;` bounds how long the group
    //!   waits after a cancellation.
    //! - **The error names its branch.** The group evaluates to
    //!   `Result<(T1, .., Tn), errgroup::Error<E>>`;
    //!   [`Error::task`](crate::Error::task) says which branch failed first,
    //!   and `Display` says so too (`task `orders` failed: ...`). `?`
    //!   converts `Error<E>` into `anyhow::Error` or a `Box<dyn Error>`.
    //! - **One error type.** As with `try_join!`, every branch has the
    //!   same error type `E`. When every branch ends in `Ok(..)` or `?`,
    //!   nothing fixes it: say it with a header, `type Error = anyhow::Error;`.
    //! - **Parallelism.** `try_join!` runs everything in the calling task,
    //!   as plain branches do. Mark a branch `#[spawn]` to run it on
    //!   another worker thread (what `try_join!` over `tokio::spawn`
    //!   handles does), or `#[blocking]` for synchronous code.
    //! - **Deadlines and nesting.** `timeout = d;` replaces
    //!   `tokio::time::timeout(d, try_join!(..))` and the cause reaches
    //!   every branch (`ctx.cause()`); a group inside a branch is cancelled
    //!   with its parent without passing anything down.
    //! - **Cost.** A group allocates its shared state once and does more
    //!   bookkeeping per branch than `try_join!`, which allocates nothing;
    //!   the README's Performance section has the measured ratio. For a
    //!   hot join of two tiny futures that never need to be cancelled,
    //!   `try_join!` stays the cheaper tool.
    //!
    //! Where the branches' shared variables were `Arc<Mutex<..>>` or a
    //! channel only to get a value out, return it instead: a branch's value
    //! is its slot in the tuple.
}

pub mod from_go {
    //! Moving over from Go's `errgroup` and `context`.
    //!
    //! ```go
    //! g, ctx := errgroup.WithContext(ctx)
    //! g.SetLimit(8)
    //! pages := make([]string, len(urls))
    //! for i, url := range urls {
    //!     g.Go(func() error {
    //!         page, err := fetch(ctx, url)
    //!         pages[i] = page
    //!         return err
    //!     })
    //! }
    //! if err := g.Wait(); err != nil {
    //!     return nil, err
    //! }
    //! return pages, nil
    //! ```
    //!
    //! ```
    //! use errgroup::{Ctx, errgroup};
    //!
    //! async fn fetch(ctx: &Ctx, url: &str) -> anyhow::Result<String> {
    //!     ctx.check()?;
    //!     Ok(format!("<html>{url}</html>"))
    //! }
    //!
    //! async fn fetch_all(urls: &[String]) -> anyhow::Result<Vec<String>> {
    //!     let (pages,) = errgroup! {
    //!         limit = 8;
    //!         pages => for url in urls { fetch(ctx, url).await },
    //!     }?;
    //!     Ok(pages)
    //! }
    //! # #[tokio::main(flavor = "current_thread")] async fn main() {
    //! # let urls: Vec<String> = (0..20).map(|i| format!("/p{i}")).collect();
    //! # let pages = fetch_all(&urls).await.unwrap();
    //! # assert_eq!(pages.len(), 20);
    //! # assert_eq!(pages[3], "<html>/p3</html>");
    //! # }
    //! ```
    //!
    //! | Go | errgroup |
    //! |---|---|
    //! | `g, ctx := errgroup.WithContext(ctx)`; `g.Go(f)` ×n; `g.Wait()` | `errgroup! { a => .., b => .. }` |
    //! | `g.SetLimit(n)`, then `g.Go(f)`, which waits for a free slot | [`ctx.pool().limit(n)`](crate::Pool::limit), then [`pool.spawn(name, f).await?`](crate::Pool::spawn), which waits for a slot (and returns `Err(Cancelled)` if the group stops meanwhile); the limit counts that pool's tasks only |
    //! | `g.SetLimit(n)` over a known set of goroutines | `limit = n;` header, or [`Group::limit`](crate::Group::limit): counts every branch, item and task of the group, and a spawn over it is queued, never waits ([`ctx.spawn`](crate::BranchCtx::spawn), [`Group::spawn`](crate::Group::spawn)) |
    //! | `context.WithTimeout(ctx, d)` | `timeout = d;` header |
    //! | `context.WithDeadline(ctx, t)` | `deadline = t;` header |
    //! | `errgroup.WithContext(parent)` | automatic inside a branch; `parent = &ctx;` to choose |
    //! | `<-ctx.Done()` | [`ctx.cancelled().await`](crate::Ctx::cancelled) |
    //! | `ctx.Err() != nil` | [`ctx.is_cancelled()`](crate::Ctx::is_cancelled), [`ctx.check()?`](crate::Ctx::check) |
    //! | `context.Cause(ctx)` | [`ctx.cause()`](crate::Ctx::cause) |
    //! | `ctx.Deadline()` | [`ctx.deadline()`](crate::Ctx::deadline) |
    //! | `select { case v := <-work: case <-ctx.Done(): }` | [`ctx.run(work).await?`](crate::Ctx::run) |
    //! | `select { case <-time.After(d): case <-ctx.Done(): }` | [`ctx.sleep(d).await?`](crate::Ctx::sleep) |
    //! | `select { case ch <- v: case <-ctx.Done(): }` | `tx.send(v).await?` on a group channel |
    //! | `for _, x := range xs { g.Go(..) }` | `name => for x in xs { .. }` branch |
    //! | `g.Go(f)` from inside a goroutine | [`ctx.spawn(name, fut)`](crate::BranchCtx::spawn) |
    //! | `g.Go(f)` for work arriving at run time | [`Group::spawn`](crate::Group::spawn), then [`Group::wait`](crate::Group::wait) |
    //! | `g.TryGo(f)` | [`Group::try_spawn`](crate::Group::try_spawn) |
    //! | the first error from `g.Wait()` | `Err(Error::Failed { task, error })`: also says *which* task |
    //!
    //! What is different:
    //!
    //! - **Values come back.** A branch returns its value; the group returns
    //!   them in branch order (a `for` branch as a `Vec` in item order).
    //!   There is no slice to index into from the goroutines.
    //! - **`ctx` is injected.** Every branch has its own `ctx` in scope (a
    //!   `&BranchCtx<E>`, which passes as a `&Ctx`); pass it down as you
    //!   would pass Go's `ctx`. A group made
    //!   inside a branch, even in a function that was not given `ctx`, is
    //!   that branch's group's child.
    //! - **`cancel()` says why.** Go's `cancel()` becomes
    //!   [`ctx.shutdown()`](crate::Ctx::shutdown), a [`Shutdown`](crate::Shutdown)
    //!   handle, or a `shutdown_on = signal;` header: the group is stopped
    //!   on purpose ([`Cause::Shutdown`](crate::Cause::Shutdown) names who
    //!   asked), which is not a failure (the [`shutdown`](super::shutdown)
    //!   recipe). A branch returning `Err`, the `timeout`/`deadline`, the
    //!   parent, or dropping the group cancel it as in Go.
    //! - **Three kinds of goroutine.** Plain branches run concurrently in
    //!   the calling task and may borrow its locals; `#[spawn]` branches are
    //!   tokio tasks, in parallel on the runtime's workers; `#[blocking]`
    //!   branches run synchronous code on tokio's blocking pool, where
    //!   nothing can interrupt them: they poll `ctx.is_cancelled()`.
    //! - **Panics.** A panic in a branch cancels the group, and resumes in
    //!   the caller once every branch has returned, rather than ending the
    //!   process.
    //! - **Channels are bound to the group.** Go's channels block forever
    //!   unless every operation also selects on `ctx.Done()`. A group
    //!   channel (`let (tx, rx) = channel(cap);` above the branches, or
    //!   [`ctx.channel(cap)`](crate::Ctx::channel)) is closed when the group
    //!   is cancelled, and a raw tokio or std channel inside a branch is a
    //!   compile error.
    //! - **Same rules otherwise.** The first error wins; later failures of
    //!   a branch's own (not echoes of the cancellation) are kept in
    //!   [`err.suppressed()`](crate::Error::suppressed), where Go drops
    //!   them. The group waits for every branch. Its ctx is cancelled
    //!   once it returns ([`Cause::Finished`](crate::Cause::Finished)).
}

pub mod shutdown {
    //! Recipe: graceful shutdown.
    //!
    //! Stopping a group on purpose is not a failure: [`ctx.shutdown()`](crate::Ctx::shutdown)
    //! (or a [`Shutdown`](crate::Shutdown) handle, or a `shutdown_on` signal)
    //! cancels every branch's `ctx` with [`Cause::Shutdown`](crate::Cause::Shutdown),
    //! nothing new starts, and the group waits for its branches as always;
    //! `grace` bounds how long. It returns `Ok` if they all still return
    //! `Ok`; otherwise its error [`is_shutdown`](crate::Error::is_shutdown),
    //! and [`allow_shutdown`](crate::AllowShutdown::allow_shutdown) makes it
    //! `Ok` in one call. A failure that came first still wins.
    //!
    //! A stop that dropped work is not clean: if `grace` expires, what
    //! still runs is dropped or aborted, the error's
    //! [`is_grace_expired`](crate::Error::is_grace_expired) is true and its
    //! `is_shutdown` false, so `allow_shutdown` keeps it and `serve_until`
    //! below returns it (its message ends in `, then grace expired`; its
    //! [`still_running`](crate::Error::still_running) report names what was
    //! dropped): the process exits with an error, not a clean status.
    //!
    //! ```
    //! use std::future::Future;
    //! use std::time::Duration;
    //!
    //! use errgroup::{AllowShutdown, Ctx, errgroup};
    //!
    //! /// Runs the service until `signal` completes or a part of it fails.
    //! async fn serve_until(signal: impl Future<Output = ()>) -> anyhow::Result<()> {
    //!     errgroup! {
    //!         type Error = anyhow::Error;
    //!         // After the cancellation, what still runs 10 s later is dropped.
    //!         grace = Duration::from_secs(10);
    //!         // When `signal` completes: `Cause::Shutdown` by "shutdown_on".
    //!         shutdown_on = signal;
    //!         http => serve_http(ctx).await,
    //!         jobs => run_jobs(ctx).await,
    //!     }
    //!     .allow_shutdown()?;
    //!     Ok(())
    //! }
    //!
    //! async fn serve_http(ctx: &Ctx) -> anyhow::Result<()> {
    //!     // Accepts connections until cancelled, then stops accepting and
    //!     // finishes the requests in flight: with axum,
    //!     // `axum::serve(listener, app).with_graceful_shutdown(ctx.cancelled_owned())`.
    //! #   ctx.cancelled().await;
    //!     Ok(())
    //! }
    //!
    //! async fn run_jobs(ctx: &Ctx) -> anyhow::Result<()> {
    //!     while ctx.sleep(Duration::from_secs(1)).await.is_ok() {
    //!         // one round of background work
    //!     }
    //!     Ok(())
    //! }
    //!
    //! // In `main`:
    //! async fn run() -> anyhow::Result<()> {
    //!     serve_until(async {
    //!         // On Unix, also `tokio::signal::unix::signal(SignalKind::terminate())`.
    //!         let _ = tokio::signal::ctrl_c().await;
    //!     })
    //!     .await
    //! }
    //! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    //! # serve_until(tokio::time::sleep(Duration::from_secs(5))).await.unwrap();
    //! # }
    //! ```
    //!
    //! # Work that is not a branch: a parent ctx or a token
    //!
    //! A request handler runs in the server's task, not in a branch of the
    //! service's group, so its groups are roots and the shutdown does not
    //! reach them. Hand them the service's lifetime: a [`Group`](crate::Group)
    //! stopped by the signal ([`shutdown_on`](crate::Group::shutdown_on)),
    //! whose [`ctx`](crate::Group::ctx) goes wherever requests are handled
    //! (an axum `State`, a field), and each request's group names it with
    //! `parent = &ctx;`. Code that speaks tokio-util gets the same lifetime
    //! as a `CancellationToken` from [`ctx.token()`](crate::Ctx::token), and
    //! a token from elsewhere can be the parent itself (`parent = &token;`).
    //!
    //! ```
    //! use std::time::Duration;
    //!
    //! use errgroup::{Ctx, Group, errgroup};
    //!
    //! async fn handle_request(service: &Ctx) -> Result<u32, errgroup::Error<anyhow::Error>> {
    //!     let (answer,) = errgroup! {
    //!         type Error = anyhow::Error;
    //!         parent = service;
    //!         answer => {
    //!             ctx.sleep(Duration::from_secs(60)).await?; // slow backend
    //!             Ok(42)
    //!         },
    //!     }?;
    //!     Ok(answer)
    //! }
    //!
    //! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    //! // stands in for `tokio::signal::ctrl_c()`
    //! let signal = tokio::time::sleep(Duration::from_secs(1));
    //! let service = Group::<anyhow::Error>::new().shutdown_on(signal);
    //! let service_ctx = service.ctx();
    //!
    //! let err = handle_request(&service_ctx).await.unwrap_err();
    //! assert!(err.is_shutdown(), "stopped by the service's shutdown: {err}");
    //! service.wait().await.unwrap();
    //! # }
    //! ```
}

pub mod accept_loop {
    //! Recipe: a server's accept loop.
    //!
    //! A server is the other shape of concurrency: not a request fanning
    //! out, where the first error stops the rest, but a long-running accept
    //! loop whose connection tasks must not take each other down, must be
    //! limited with backpressure, and must all be drained when the service
    //! stops. `examples/tcp_server.rs` is a complete one (a key-value store
    //! with a test suite that drives the real binary); this page gets there
    //! step by step from the hand-written tokio version.
    //!
    //! # Before: `tokio::spawn` + `Semaphore` + a broadcast channel
    //!
    //! The usual plumbing, as in tokio's mini-redis: a semaphore bounds the
    //! connections (acquired *before* accepting, so the loop waits), a
    //! broadcast channel tells every connection to stop, a tracker waits
    //! for them, and each connection logs its own error and returns, so
    //! that one bad client does not stop the server. `tokio::spawn` isolates
    //! a panic.
    //!
    //! ```
    //! use std::future::Future;
    //! use std::pin::pin;
    //! use std::sync::Arc;
    //! use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    //! use tokio::net::{TcpListener, TcpStream};
    //! use tokio::sync::{Semaphore, broadcast};
    //! use tokio_util::task::TaskTracker;
    //!
    //! async fn serve(
    //!     listener: TcpListener,
    //!     max_conns: usize,
    //!     shutdown: impl Future<Output = ()>,
    //! ) -> std::io::Result<()> {
    //!     let slots = Arc::new(Semaphore::new(max_conns));
    //!     let (stop, _) = broadcast::channel::<()>(1);
    //!     let tracker = TaskTracker::new();
    //!     let mut shutdown = pin!(shutdown);
    //!     loop {
    //!         let slot = tokio::select! {
    //!             slot = Arc::clone(&slots).acquire_owned() => slot.expect("never closed"),
    //!             () = &mut shutdown => break,
    //!         };
    //!         let (socket, peer) = tokio::select! {
    //!             accepted = listener.accept() => accepted?,
    //!             () = &mut shutdown => break,
    //!         };
    //!         let mut stop = stop.subscribe();
    //!         tracker.spawn(async move {
    //!             if let Err(e) = handle(socket, &mut stop).await {
    //!                 eprintln!("conn {peer}: {e}");
    //!             }
    //!             drop(slot);
    //!         });
    //!     }
    //!     drop(stop); // every connection's `recv` returns
    //!     tracker.close();
    //!     tracker.wait().await;
    //!     Ok(())
    //! }
    //!
    //! /// Echoes lines until the client closes or the server stops.
    //! async fn handle(socket: TcpStream, stop: &mut broadcast::Receiver<()>) -> std::io::Result<()> {
    //!     let (read, mut write) = socket.into_split();
    //!     let mut lines = BufReader::new(read).lines();
    //!     loop {
    //!         let line = tokio::select! {
    //!             line = lines.next_line() => line?,
    //!             _ = stop.recv() => return Ok(()),
    //!         };
    //!         let Some(line) = line else { return Ok(()) };
    //!         write.write_all(format!("{line}\n").as_bytes()).await?;
    //!     }
    //! }
    //! # #[tokio::main(flavor = "current_thread")] async fn main() {
    //! # let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    //! # let addr = listener.local_addr().unwrap();
    //! # let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    //! # let server = tokio::spawn(serve(listener, 8, async { stopped.await.ok(); }));
    //! # let mut client = BufReader::new(TcpStream::connect(addr).await.unwrap());
    //! # client.get_mut().write_all(b"hello\n").await.unwrap();
    //! # let mut echo = String::new();
    //! # client.read_line(&mut echo).await.unwrap();
    //! # assert_eq!(echo, "hello\n");
    //! # stop.send(()).unwrap();
    //! # server.await.unwrap().unwrap();
    //! # }
    //! ```
    //!
    //! Still missing: a grace period (a `TaskTracker` cannot abort its
    //! tasks), Ctrl-C *and* SIGTERM, and knowing whether anything was
    //! abandoned.
    //!
    //! # After: one `errgroup!`
    //!
    //! ```
    //! use std::time::Duration;
    //! use errgroup::{AllowShutdown, Ctx, errgroup};
    //! use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    //! use tokio::net::{TcpListener, TcpStream};
    //!
    //! async fn serve(
    //!     listener: TcpListener,
    //!     max_conns: usize,
    //!     shutdown: impl Future<Output = ()> + Send + 'static,
    //! ) -> anyhow::Result<()> {
    //!     errgroup! {
    //!         type Error = anyhow::Error;
    //!         shutdown_on = shutdown;              // 1. the stop signal
    //!         grace = Duration::from_secs(5);      // 4. then abort what still runs
    //!         accept => {
    //!             let conns = ctx.pool().limit(max_conns) // 2. the semaphore and the tracker
    //!                 .catch_panics()                     // 3. isolation
    //!                 .supervise(|conn, failure| eprintln!("{conn} {failure}"));
    //!             while let Ok(accepted) = ctx.run(listener.accept()).await {
    //!                 let (socket, peer) = accepted?;
    //!                 conns.spawn_with(format!("conn {peer}"), |ctx| handle(ctx, socket)).await?;
    //!             }
    //!             Ok(())
    //!         },
    //!     }
    //!     .allow_shutdown()?;
    //!     Ok(())
    //! }
    //!
    //! /// Echoes lines until the client closes or the server stops.
    //! async fn handle(ctx: Ctx, socket: TcpStream) -> anyhow::Result<()> {
    //!     let (read, mut write) = socket.into_split();
    //!     let mut lines = BufReader::new(read).lines();
    //!     while let Ok(line) = ctx.run(lines.next_line()).await {
    //!         let Some(line) = line? else { break };
    //!         write.write_all(format!("{line}\n").as_bytes()).await?;
    //!     }
    //!     Ok(())
    //! }
    //! # #[tokio::main(flavor = "current_thread")] async fn main() {
    //! # let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    //! # let addr = listener.local_addr().unwrap();
    //! # let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    //! # let server = tokio::spawn(serve(listener, 8, async { stopped.await.ok(); }));
    //! # let mut client = BufReader::new(TcpStream::connect(addr).await.unwrap());
    //! # client.get_mut().write_all(b"hello\n").await.unwrap();
    //! # let mut echo = String::new();
    //! # client.read_line(&mut echo).await.unwrap();
    //! # assert_eq!(echo, "hello\n");
    //! # stop.send(()).unwrap();
    //! # server.await.unwrap().unwrap();
    //! # }
    //! ```
    //!
    //! Step by step:
    //!
    //! 1. **The stop signal.** `shutdown_on = errgroup::stop_signal();` in a
    //!    real server: Ctrl-C and SIGTERM (what `docker stop` and systemd
    //!    send), in one line. It cancels every `ctx`, which replaces the
    //!    broadcast channel and both `select!`s: [`ctx.run`](crate::Ctx::run)
    //!    around `accept` ends the loop, and around a connection's read
    //!    closes a connection that waits for its next request, while a
    //!    request in flight finishes and is answered.
    //! 2. **The connections.** [`ctx.pool()`](crate::BranchCtx::pool) is one
    //!    set of the group's tasks. Its [`limit`](crate::Pool::limit) counts
    //!    the connections only, not the accept branch or a background one,
    //!    and [`spawn`](crate::Pool::spawn) *waits* for a slot (it resolves
    //!    once the task has started, `Err(Cancelled)` if the server stops
    //!    meanwhile): the loop accepts no faster than connections end, as
    //!    Go's `g.Go` under `SetLimit`. The group awaits every connection
    //!    before it returns, as `TaskTracker::wait` did, and keeps nothing of
    //!    one that ended: memory is what still runs, for ever.
    //! 3. **Isolation.** By default a task's error stops the group, Go's
    //!    rule, right for a request's fan-out and wrong for a server: one
    //!    malformed frame would stop it for everybody.
    //!    [`supervise`](crate::Pool::supervise) hands each failure to your
    //!    handler with the task's name (and, with the `tracing` feature, as
    //!    an event), and [`catch_panics`](crate::Pool::catch_panics) does the
    //!    same for a panic, with its message.
    //! 4. **Grace, and a clean exit.** `grace` aborts what still runs that
    //!    long after the stop. The group's result says how it went:
    //!    `allow_shutdown()` turns a stop on purpose into `Ok`, and
    //!    [`Error::still_running`](crate::Error::still_running) is `Some`
    //!    when grace expired with work abandoned, which a server reports with
    //!    its exit code (`examples/tcp_server.rs` exits 1 then).
    //!
    //! | hand-written | errgroup |
    //! |---|---|
    //! | `Semaphore::new(n)`, `acquire_owned()` before `accept` | `ctx.pool().limit(n)`, `conns.spawn(..).await` |
    //! | `TaskTracker` (or an mpsc "all done" channel), `close` + `wait` | automatic: the group awaits its pool's tasks |
    //! | a broadcast channel, a `select!` on it in every connection | `ctx.run(read).await` in the connection |
    //! | `select!` on the shutdown future around `accept` | `ctx.run(listener.accept()).await` |
    //! | `tokio::signal::ctrl_c()` (SIGTERM by hand) | `shutdown_on = errgroup::stop_signal();` |
    //! | log the error and return `Ok(())` in each handler | [`supervise`](crate::Pool::supervise) |
    //! | `tokio::spawn` isolating a panic | [`catch_panics`](crate::Pool::catch_panics) |
    //! | a timeout around the wait, and leaked tasks | `grace = d;`, and [`Error::still_running`](crate::Error::still_running) |
    //!
    //! # First to finish
    //!
    //! A proxy copies both ways, and either direction finishing must stop
    //! the other; "serve until this completes" is the same shape.
    //! [`ctx.race(fut)`](crate::Ctx::race) shuts the group down when `fut`
    //! returns `Ok`, and the group returns `Ok`; an error keeps its usual
    //! meaning.
    //!
    //! ```
    //! use errgroup::{Ctx, errgroup};
    //! use tokio::net::TcpStream;
    //!
    //! async fn proxy(ctx: Ctx, mut client: TcpStream, mut upstream: TcpStream) -> std::io::Result<()> {
    //!     let (mut client_read, mut client_write) = client.split();
    //!     let (mut upstream_read, mut upstream_write) = upstream.split();
    //!     errgroup! {
    //!         type Error = std::io::Error;
    //!         parent = &ctx;
    //!         up   => { ctx.race(tokio::io::copy(&mut client_read, &mut upstream_write)).await?; Ok(()) },
    //!         down => { ctx.race(tokio::io::copy(&mut upstream_read, &mut client_write)).await?; Ok(()) },
    //!     }
    //!     .map_err(std::io::Error::other)?;
    //!     Ok(())
    //! }
    //! ```
}

pub mod axum {
    //! Recipe: an axum handler that fans out.
    //!
    //! A handler that needs three backends calls them at once in one group.
    //! The first failure cancels the other calls, a `timeout` bounds the
    //! whole request, and when the handler's future is dropped (a timeout
    //! layer, the server shutting down, a closed connection the server
    //! notices) the group and everything it runs go with it. The branches
    //! run in the handler's task (no `#[spawn]`), so they borrow the
    //! handler's state and arguments.
    //!
    //! ```
    //! use std::time::Duration;
    //!
    //! use axum::extract::{Path, State};
    //! use axum::http::StatusCode;
    //! use axum::routing::get;
    //! use axum::{Json, Router};
    //! use errgroup::{Cause, Ctx, errgroup};
    //! use serde::Serialize;
    //!
    //! #[derive(Clone)]
    //! struct Backends;
    //!
    //! impl Backends {
    //!     async fn user(&self, ctx: &Ctx, id: u64) -> anyhow::Result<String> {
    //!         ctx.check()?;
    //!         Ok(format!("user {id}"))
    //!     }
    //!     async fn orders(&self, _ctx: &Ctx, _id: u64) -> anyhow::Result<Vec<u32>> {
    //!         Ok(vec![1, 2, 3])
    //!     }
    //!     async fn recommendations(&self, ctx: &Ctx, id: u64) -> anyhow::Result<Vec<String>> {
    //!         if id == 0 {
    //!             anyhow::bail!("no recommendations for user 0");
    //!         }
    //!         ctx.sleep(Duration::from_millis(5)).await?;
    //!         Ok(vec!["a book".into()])
    //!     }
    //! }
    //!
    //! #[derive(Serialize)]
    //! struct Dashboard {
    //!     user: String,
    //!     orders: Vec<u32>,
    //!     recommendations: Vec<String>,
    //! }
    //!
    //! async fn dashboard(
    //!     State(backends): State<Backends>,
    //!     Path(id): Path<u64>,
    //! ) -> Result<Json<Dashboard>, (StatusCode, String)> {
    //!     let (user, orders, recommendations) = errgroup! {
    //!         timeout = Duration::from_secs(2);
    //!         user            => backends.user(ctx, id).await,
    //!         orders          => backends.orders(ctx, id).await,
    //!         recommendations => backends.recommendations(ctx, id).await,
    //!     }
    //!     .map_err(|err| {
    //!         let status = match err.cause() {
    //!             Cause::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
    //!             _ => StatusCode::BAD_GATEWAY,
    //!         };
    //!         (status, err.to_string())
    //!     })?;
    //!     Ok(Json(Dashboard { user, orders, recommendations }))
    //! }
    //!
    //! fn app() -> Router {
    //!     Router::new()
    //!         .route("/dashboard/{id}", get(dashboard))
    //!         .with_state(Backends)
    //! }
    //! // Serve it with `axum::serve(tokio::net::TcpListener::bind(addr).await?, app())`.
    //! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    //! # let _ = app();
    //! # let Json(ok) = dashboard(State(Backends), Path(7)).await.unwrap();
    //! # assert_eq!((ok.user.as_str(), ok.orders.len(), ok.recommendations.len()), ("user 7", 3, 1));
    //! # let (status, body) = dashboard(State(Backends), Path(0)).await.err().unwrap();
    //! # assert_eq!(status, StatusCode::BAD_GATEWAY);
    //! # assert_eq!(body, "task `recommendations` failed: no recommendations for user 0");
    //! # }
    //! ```
    //!
    //! To make the request part of the service's shutdown, keep the
    //! service's `Ctx` in the state and add `parent = &state.ctx;` to the
    //! group (see [`shutdown`](super::shutdown)).
}

pub mod tracing {
    //! Recipe: tracing.
    //!
    //! With the `tracing` cargo feature, a group is a span where it was
    //! written (`site = "src/page.rs:42"`, its branch count, `limit` and the
    //! time left before its deadline), nested under whatever span is
    //! current there, and each branch, fan-out item and `ctx.spawn` task is
    //! a `branch` span named as errors name it (`user`, `orders[3]`).
    //! `#[spawn]` and `#[blocking]` bodies and tasks are polled inside their
    //! span on whatever thread runs them, so an instrumented handler's logs
    //! nest as they read. Events: a branch failing (the first at `WARN`,
    //! later ones at `INFO`), the group cancelled and why, a panic, `grace`
    //! running out. `cargo run --example traced --features tracing` shows
    //! them; the README has its output.
    //!
    //! ```toml
    //! errgroup = { version = "0.1", features = ["tracing"] }
    //! ```
    //!
    //! A branch's error is not in its event (the error type need not be
    //! `Display`); record the group's error, which names the branch:
    //!
    //! ```text
    //! #[tracing::instrument(skip(db))]
    //! async fn page(db: &Db, id: u64) -> anyhow::Result<(User, Vec<Order>)> {
    //!     let result = errgroup! {
    //!         user => db.user(ctx, id).await,
    //!         #[spawn] orders => fetch_orders(id).await,
    //!     };
    //!     if let Err(err) = &result {
    //!         tracing::warn!(task = ?err.task(), cause = %err.cause(), "page failed: {err:#}");
    //!     }
    //!     Ok(result?)
    //! }
    //! ```
}
