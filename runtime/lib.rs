//! Go's `errgroup` + `context` discipline for async Rust, as an inline macro.
//!
//! ```
//! use errgroup::errgroup;
//! # struct Db;
//! # impl Db {
//! #     async fn user(&self, _: &errgroup::Ctx, id: u64) -> anyhow::Result<String> { Ok(format!("user{id}")) }
//! #     async fn orders(&self, _: &errgroup::Ctx, _: u64) -> anyhow::Result<Vec<u32>> { Ok(vec![1, 2]) }
//! # }
//!
//! async fn page(db: &Db, id: u64) -> anyhow::Result<(String, Vec<u32>)> {
//!     let (user, orders) = errgroup! {
//!         user   => db.user(&ctx, id).await,
//!         orders => db.orders(&ctx, id).await,
//!     }?;
//!     Ok((user, orders))
//! }
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! # assert_eq!(page(&Db, 7).await.unwrap(), ("user7".to_string(), vec![1, 2]));
//! # }
//! ```
//!
//! All branches start at once; the first to fail cancels the others through
//! the injected [`ctx`](BranchCtx); the group waits for every branch, then yields
//! every value in branch order or the first error, named after its branch.
//! See [`errgroup!`] for the grammar and the rules, [`Ctx`] for what a branch
//! can do with its context ([`BranchCtx`] adds the spawn typed by the group's
//! error), [`Group`] for groups built at run time, and [`Pool`] for a
//! server's connections (isolated, limited with backpressure, drained at
//! shutdown). The
//! [`guide`] moves code over from `JoinSet`, `try_join!` and Go, and has
//! recipes for shutdown, web handlers and tracing.
//!
//! # Cargo features
//!
//! None is on by default, and none changes what runs. Inside an
//! `errgroup!` branch, creating a raw channel or calling `.send()`,
//! `.recv()`, .. on one is a compile error: the group could not close it on
//! cancellation, so a branch blocked on it could hang the group. The
//! operations are recognised by the endpoint's type, wherever it was made:
//! tokio's, std's and async-channel's always, and each feature adds one
//! more crate's.
//!
//! | feature | checks operations on the endpoints of |
//! |---|---|
//! | `crossbeam-channel` | crossbeam-channel 0.5 |
//! | `flume` | flume 0.12 |
//! | `flume-0_11` | flume 0.11 |
//! | `kanal` | kanal 0.1 |
//! | `futures-channel` | futures-channel 0.3 (`futures::channel`) |
//!
//! The check goes by type: enable the feature matching the version in your
//! `Cargo.lock`, as an endpoint of another version is another type.

#![forbid(unsafe_code)]
// docs.rs (`--cfg docsrs`, nightly) labels feature-gated items with their feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

// Lets this crate's own tests and doctests use `errgroup!`, whose expansion
// names `::errgroup`.
extern crate self as errgroup;

// The layers, lowest first: each module imports only from those declared
// before it (tests/layers.rs checks this).
//
// An `Option` whose drop is one test inline (the trivial group's drops).
mod cold;
// Primitives: std's or loom's locks and atomics.
mod sync;
// `stop_signal()`: Ctrl-C and SIGTERM.
#[cfg(not(loom))]
mod signal;
// Which branch a `Cancelled` was handed to: echoes vs failures.
mod echo;
// `Error`, `Cause`, `Cancelled`, `TaskName`.
mod error;
// What a group tells `tracing` (the `tracing` feature; nothing without it).
mod trace;
// The cancellation tree: cause, deadline, hooks, waiters.
mod cancel;
// `limit = n`: permits, and when a branch may start.
mod limit;
// `Task` and `TaskSet`, the handles of a group's tokio tasks, and their shutdown rule.
mod tasks;
// One group's shared state: the node, the limit, the tasks, the first error.
mod state;
// A group's life around its work: deadline, token parent, `shutdown_on`,
// grace, the still-running report; driven by `errgroup!` and `Group` alike.
mod lifecycle;
// Group-bound channels, closed by the group's cancellation.
mod channel;
// One branch body: start, poll, catch a panic, complete.
mod branch;
// `#[spawn] for` items, run by a few worker tasks.
mod workers;
// `name => for x in items { .. }`, its items in-task or on the workers.
mod fanout;
// The loop an `errgroup!` runs.
mod engine;
// `Ctx`, `BranchCtx`, the ambient ctx, `ctx.spawn`.
mod ctx;
// `Pool`: one set of a group's tasks, with its own limit and failure policy.
mod pool;
// `Group`, the dynamic API.
mod group;

#[cfg(all(test, loom))]
mod loom_tests;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub mod guide;

/// What the compile-time check of [`errgroup!`] names in its errors.
///
/// Inside a branch, a raw channel endpoint or a detached task is a compile
/// error (README, "Raw channels and detached spawns"). rustc words that
/// error as a trait these types do not implement: [`GroupChannel`] for a
/// channel endpoint, [`GroupTask`] and [`GroupLocalTask`] for a task, with
/// the crate it comes from as a [`from`] marker. Only the check itself
/// implements or calls them.
///
/// ```compile_fail
/// # async fn run() -> Result<(), errgroup::Error<std::io::Error>> {
/// let (tx, _rx) = tokio::sync::mpsc::channel::<u32>(1);
/// errgroup::errgroup! {
///     // error: an `errgroup!` branch names a raw tokio channel endpoint
///     send => { let _ = tx.send(1).await; Ok(()) },
/// }?;
/// # Ok(())
/// # }
/// ```
///
/// [`GroupChannel`]: lint::GroupChannel
/// [`GroupTask`]: lint::GroupTask
/// [`GroupLocalTask`]: lint::GroupLocalTask
/// [`from`]: lint::from
pub mod lint {
    pub use crate::__private::lints::{GroupChannel, GroupLocalTask, GroupTask, from};
}

pub use crate::channel::{Receiver, SendError, Sender, TryRecvError, TrySendError};
pub use crate::ctx::{BranchCtx, Ctx, IntoParent, Shutdown, Watch};
pub use crate::error::{
    AllowShutdown, Cancelled, Cause, Error, Moment, Running, StillRunning, Suppressed, TaskName,
};
pub use crate::group::Group;
pub use crate::pool::{Failure, Pool};
#[cfg(not(loom))]
pub use crate::signal::stop_signal;
/// Runs named branches concurrently as one group: the first error cancels
/// the rest, and the group returns when every branch has returned.
///
/// ```
/// use errgroup::errgroup;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> anyhow::Result<()> {
/// let id = 7;
/// let (user, orders) = errgroup! {
///     timeout = Duration::from_secs(2);
///     user   => Ok::<_, anyhow::Error>(format!("user {id}")),
///     orders => { ctx.sleep(Duration::from_millis(10)).await?; Ok(vec![1, 2, 3]) },
/// }?;
/// assert_eq!(user, "user 7");
/// assert_eq!(orders, [1, 2, 3]);
/// # Ok(()) }
/// ```
///
/// # Grammar
///
/// ```text
/// errgroup! {
///     HEADER*
///     BRANCH (, BRANCH)* ,?
/// }
///
/// HEADER := timeout = EXPR ;       // Duration: ctx cancelled with cause DeadlineExceeded
///         | deadline = EXPR ;      // tokio::time::Instant, same
///         | parent = EXPR ;        // ctx, a Ctx or a CancellationToken: this group is its child
///         | limit = EXPR ;         // usize > 0: at most N branches/items running at once
///         | grace = EXPR ;         // Duration: after cancellation, drop what still runs
///         | type Error = TYPE ;    // fixes the error type E of every branch
///         | on_error = continue ;  // supervisor mode: no cancel on error
///         | shutdown_on = EXPR ;   // IntoFuture: when it completes, the group is shut down
///                                  //   (`errgroup::stop_signal()`: Ctrl-C or SIGTERM)
///         | crate = PATH ;         // where errgroup is, when not at ::errgroup (see below)
///
/// BRANCH := ATTR* NAME => BODY                   // one task
///         | ATTR* NAME => for PAT in EXPR BLOCK  // fan-out: one task per item
/// ATTR   := #[spawn] | #[blocking]                 // a tokio task; the blocking pool
///         | #[spawn(clone(NAME, ..))] | #[blocking(clone(NAME, ..))]  // clones NAME first
/// ```
///
/// `{ }`, `( )` and `[ ]` all work as delimiters. `BODY` is the body of an
/// async block that evaluates to `Result<T, E>`; inside it, `ctx` is the
/// branch's context, a `&`[`BranchCtx<E>`](BranchCtx): a [`Ctx`] (it derefs
/// to one) whose [`spawn`](BranchCtx::spawn) takes tasks of the group's
/// error type `E`. The macro awaits internally (like
/// `tokio::try_join!`) and evaluates to `Result<(T1, .., Tn), Error<E>>`,
/// values in branch order; a one-branch group gives `(T1,)`. A `for` branch
/// gives `Vec<T>` in iteration order; its items are named `name[i]`. When
/// the group fails, the values of the branches that succeeded are dropped
/// by the time its `Err` is in your hands, so a value that cleans up on
/// drop (a staged file, a reserved slot) undoes itself:
/// `examples/thumbnails.rs` publishes three files all or nothing this way.
///
/// # Semantics
///
/// 1. **Concurrent start.** Every branch starts at once, also in a group
///    born cancelled (created during a shutdown, under a cancelled parent,
///    with a zero `timeout`): its branches then see their ctx cancelled and
///    can clean up, as Go's `g.Go` would. Plain branches run
///    in the calling task and may borrow locals. `#[spawn]` branches run as
///    tokio tasks, in parallel (captures are moved; `Send + 'static`); in a
///    group whose branches are all plain `#[spawn]` ones, awaited inside a
///    tokio task, the last runs in the group's own task instead, which would only wait (so it shares
///    that task's `tokio::task::id()`, task-locals and tokio-console entry).
///    `#[blocking]` bodies are synchronous code on tokio's blocking pool, with
///    `ctx` for `is_cancelled()` checks.
/// 2. **First error wins.** The first branch, in time, to return `Err(e)`
///    cancels the group's ctx with [`Cause::Failed`]; the group still waits
///    for every branch, then yields [`Error::Failed`] with that branch's name
///    and `e`. Errors returned after the cancellation never replace it, and
///    are not dropped either: a branch, item or task that fails of its own
///    afterwards (a flush during the shutdown) is listed by
///    [`Error::suppressed`], in the order they happened; an `Err` that only
///    passes on the [`Cancelled`] the group handed that branch is an echo
///    of the cancellation and is not (the rule is on `suppressed`).
/// 3. **Wait for all.** Nothing the group started runs after it returns,
///    tasks started with [`Ctx::spawn`] included. With `grace = d;`,
///    branches still running `d` after the cancellation are dropped
///    (in-task) or aborted (spawned, and `ctx.spawn` tasks); `#[blocking]`
///    bodies cannot be stopped and are waited for.
/// 4. **Outer cancellation.** Dropping the group's future (an outer
///    `select!`, `timeout`, a dropped request) drops every in-task branch and
///    aborts every `#[spawn]` branch. A `#[blocking]` body cannot be
///    stopped: it sees its ctx cancelled and finishes on its own.
/// 5. **Deadlines and parents.** `timeout`/`deadline` cancel the ctx with
///    [`Cause::DeadlineExceeded`], a cancelled `parent` with [`Cause::Parent`].
///    If no branch failed first, the group yields [`Error::Cancelled`],
///    unless every branch still returned `Ok`: then it yields `Ok`.
/// 6. **Nesting is automatic.** An `errgroup!` (or a [`Group`]) created while
///    a branch runs is a child of that branch's group, also inside functions
///    the branch calls; `parent = ..;` overrides it.
/// 7. **Panics.** A panicking branch cancels the group
///    ([`Cause::Panicked`]); once the others have returned, the panic resumes
///    in the caller with its original payload.
/// 8. **Limits.** `limit = n` bounds how many branches, items and
///    `ctx.spawn` tasks run at once; the others wait (a spawn over the
///    limit is queued: the caller goes on). A `for` branch pulls
///    items lazily: 1,000,000 items with `limit = 8` hold memory for 8.
///    A [`Pool`]'s tasks count towards the pool's own limit instead, under
///    which [`Pool::spawn`] makes the caller wait for a slot: an accept loop.
/// 9. **Nothing new starts after cancellation.** Items not yet pulled,
///    branches waiting for a slot and `ctx.spawn` calls made after the
///    cancellation never run. A refused `ctx.spawn` returns
///    `Err(Cancelled)` to its caller, which decides: a branch that heard it
///    and still returns `Ok` leaves the group's result as it was.
/// 10. **Supervisor mode.** With `on_error = continue;` a failing branch
///     cancels nothing; the group evaluates to
///     `Result<(Result<T1, E>, .., Result<Tn, E>), Error<E>>` (a `for`
///     branch gives `Vec<Result<T, E>>`). A branch that returns `Err` after a
///     deadline or parent cancellation comes back as its own `Err`; the
///     outer error is for branches that never ran. It is about branches:
///     a task started with `ctx.spawn` still cancels the group when it
///     fails; a [`Pool`] [`supervise`](Pool::supervise)d by a handler is
///     the supervisor for tasks.
/// 11. **The nearest `ctx` wins.** In a nested group, `ctx` is the inner
///     group's.
///
/// Fan-out, as Go's `for _, u := range urls { g.Go(..) }`:
///
/// ```
/// use errgroup::errgroup;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
/// let prefix = String::from("page");
/// let (pages, total) = errgroup! {
///     limit = 8;                              // at most 8 items at once
///     pages => for id in 0..100u32 {          // items pulled lazily
///         let page = format!("{prefix}-{id}"); // borrows `prefix`
///         ctx.check()?;
///         Ok::<_, anyhow::Error>(page)
///     },
///     total => Ok(100u32),
/// }?;
/// assert_eq!(pages.len(), total as usize);
/// assert_eq!(pages[42], "page-42");
/// # Ok(()) }
/// ```
///
/// `#[spawn] for` runs its items in parallel on the runtime's worker threads,
/// as tokio tasks would (`Send + 'static`: pass owned data through the
/// iterator, e.g. `urls.into_iter().map(|u| (u, client.clone()))`), driven by
/// about one worker task per runtime thread rather than a task per item
/// (so an item that blocks its thread delays the items sharing its worker:
/// blocking work belongs in `#[blocking]`); `#[blocking] for` runs each item
/// on the blocking pool.
///
/// ```
/// use errgroup::{errgroup, Cause};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let outcome = errgroup! {
///     on_error = continue;
///     good => Ok(1),
///     bad  => Err("no".to_string()),
/// };
/// let (good, bad) = outcome.unwrap();
/// assert_eq!(good, Ok(1));
/// assert_eq!(bad, Err("no".to_string()));
///
/// let result = errgroup! {
///     outer => {
///         // A child of `outer`'s group without saying so.
///         let (inner,) = errgroup! {
///             inner => { ctx.cancelled().await; Ok::<_, String>(ctx.cause()) },
///         }
///         .map_err(|e| e.to_string())?;
///         Ok(inner)
///     },
///     failing => Err("boom".to_string()),
/// };
/// assert_eq!(result.unwrap_err().to_string(), "task `failing` failed: boom");
/// # }
/// ```
///
/// # Branches that never return `Ok`
///
/// A branch's value type is inferred from its `Ok(..)`. A branch that never
/// returns `Ok` has none, and needs no turbofish either: when the macro can
/// see it from the syntax, the value type is `()` (no such value ever
/// exists, but `()` is `Default`, so the group still ends in
/// [`.allow_shutdown()`](AllowShutdown::allow_shutdown) in every edition);
/// under `on_error = continue` it is left to the code around the group,
/// which may name its `Result<T, E>`. The macro sees it when the branch's
/// tail (through blocks, and every arm of an `if`/`else` or `match`) is
///
/// - `Err(..)`, or `return Err(..)` with or without its `;`,
/// - a `loop` that no `break` leaves,
/// - `panic!(..)`, `unreachable!(..)`, `todo!(..)` or `unimplemented!(..)`
///   (bare or through `std::`/`core::`),
///
/// and no `return` in the body returns anything else. Where a `break` or a
/// `return` is inside a macro invocation, or a labelled block may be left
/// with a value, the branch is inferred as any other: write its type there
/// (`Err::<(), _>(..)`), as you would for any `Result`. An `Err::<u8, _>(..)`
/// keeps the type it names.
///
/// ```
/// use errgroup::errgroup;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let mut ticks = 0;
/// let result = errgroup! {
///     ticker => loop {
///         ctx.sleep(Duration::from_secs(1)).await.map_err(|_| "stopped")?;
///         ticks += 1;
///     },
///     failing => {
///         ctx.sleep(Duration::from_millis(2500)).await.map_err(|_| "stopped")?;
///         Err("boom")
///     },
/// };
/// assert_eq!(result.unwrap_err().to_string(), "task `failing` failed: boom");
/// assert_eq!(ticks, 2);
/// # }
/// ```
///
/// # Moving branches and `clone(..)`
///
/// A `#[spawn]` or `#[blocking]` branch moves what it names, as an
/// `async move` block or a `move` closure does: a second such branch that
/// reads the same variable gets rustc's E0382, "use of moved value", with
/// "value moved here" under the first branch's attribute. `clone(..)` on
/// the attribute is the fix: `#[spawn(clone(db, cfg))]` runs
/// `let db = Clone::clone(&db);` (and the same for `cfg`) before the
/// branch moves them, so the branch owns its clones and the variables stay
/// usable after the group. Cloning an `Arc` is a reference-count increment.
/// A fan-out clones once per item.
///
/// ```
/// use errgroup::errgroup;
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let names = Arc::new(vec!["ada", "grace"]);
/// let (count, longest, lengths) = errgroup! {
///     type Error = std::convert::Infallible;
///     #[spawn(clone(names))] count => Ok(names.len()),
///     #[blocking(clone(names))] longest => Ok(names.iter().map(|n| n.len()).max()),
///     #[spawn(clone(names))] lengths => for i in 0..2 { Ok(names[i].len()) },
/// }
/// .unwrap();
/// assert_eq!((count, longest, lengths), (2, Some(5), vec![3, 5]));
/// assert_eq!(Arc::strong_count(&names), 1); // every clone is gone
/// # }
/// ```
///
/// # Stopping on a signal
///
/// `shutdown_on = signal;` shuts the group down on purpose when `signal`
/// completes, as a branch's [`Ctx::shutdown`] does: every ctx is cancelled
/// with [`Cause::Shutdown`] by `"shutdown_on"`, and the group returns as
/// after a deadline (semantic 5). `signal` is any [`IntoFuture`], its
/// output ignored: `tokio::signal::ctrl_c()`, a oneshot receiver, a
/// `CancellationToken`'s `cancelled()`. A signal that never completes
/// changes nothing.
///
/// [`IntoFuture`]: std::future::IntoFuture
///
/// ```
/// use errgroup::{errgroup, Cause, TaskName};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let (cause,) = errgroup! {
///     shutdown_on = tokio::time::sleep(Duration::from_secs(5));
///     server => { ctx.cancelled().await; Ok::<_, ()>(ctx.cause()) },
/// }
/// .unwrap();
/// assert_eq!(cause, Some(Cause::Shutdown { by: TaskName::new("shutdown_on") }));
/// # }
/// ```
///
/// # Through a re-export or a renamed dependency
///
/// The expansion names the runtime as `::errgroup`. A crate that depends on
/// errgroup under another name (`eg = { package = "errgroup", .. }`), or
/// uses it through another crate's re-export, says where it is with
/// `crate = PATH;`: `crate = eg;`, `crate = my_framework::errgroup;`.
///
/// ```
/// mod framework {
///     pub use errgroup as group;
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (n,) = framework::group::errgroup! {
///     crate = framework::group;
///     n => Ok::<_, ()>(1),
/// }
/// .unwrap();
/// assert_eq!(n, 1);
/// # }
/// ```
///
/// # Errors the compiler reports
///
/// Mistakes in the block are compile errors that point at the offending
/// tokens and say how to fix them: an empty group, duplicate branch names,
/// an unknown or repeated header, a header after a branch, `limit = 0`,
/// `channel(0)`, an
/// unknown attribute, `#[spawn]` with `#[blocking]`, a `clone(..)` that is
/// not a list of names, `.await` in a
/// `#[blocking]` body, `ctx` rebound with `let`, the branch's `ctx` moved
/// into a `ctx.spawn` task (use `ctx.spawn_with`), and a group whose error
/// type nothing fixes (add `type Error = ..;`). All of them are reported in
/// one build.
///
/// ```compile_fail
/// # async fn f() {
/// let _ = errgroup::errgroup! {
///     a => Ok(1),
///     a => Ok(2), // error: the branch name `a` is used twice
/// };
/// # }
/// ```
#[doc(inline)]
pub use errgroup_macros::errgroup;
