//! One group's shared state: its place in the cancellation tree, its
//! `limit`, its tasks, its first error and panic. What every `Ctx` of the
//! group points to, under both `errgroup!` and [`Group`](crate::Group).
//!
//! # Invariants
//!
//! - The first error is the one whose `cancel(Failed)` won; an error that
//!   loses (the group was already cancelled) is dropped. They are read
//!   only after every branch and task has returned ([`State::finish`]).
//! - A failing branch records its error (cancelling the group) before it
//!   gives its `limit` permit back, so the branch that takes the permit
//!   sees the cancellation, as in Go: `branch::complete_failure` is the
//!   one place that does both, in that order.
//! - A panic is caught where the body is polled, recorded (the first one
//!   wins), cancels the group, before the permit is given back too
//!   (`branch::poll_guarded`), and is resumed by [`State::finish`] once
//!   every branch and task has returned.
//! - Three facts, each recorded once, in [`flags`] or the node: the group
//!   is **cancelled** when its node's cause is set (cancel.rs; the first
//!   cause wins); it is **closed to new work** when [`flags::SEALED`] is set
//!   (no task starts from then on); it has **finished** when
//!   [`flags::FINISHED`] is set (its result is out: every question is
//!   answered empty, and dropping its driver tears nothing down). A
//!   finished group is closed and cancelled (`Finished`); a closed one may
//!   still be awaiting its tasks (grace expired).
//! - A task is either awaited or refused: the driver's last poll seals the
//!   group in the critical section that finds the task set empty
//!   ([`Core::poll_tasks`]), or, when no task was ever spawned or refused,
//!   with a read-modify-write of the flags that a spawn's read-modify-write
//!   of the same word then sees; a spawn looks at the seal again under the
//!   task-set lock.
//! - Nothing a group may never use is allocated up front: the task set is
//!   created by the first task, the waiter list grows with the first waiter,
//!   and the typed error slot lives with the group's driver, not behind an
//!   `Arc`, and a group whose code needs no owned handle has no `Core`
//!   at all: its state stays in its future ([`Place`], below) and a
//!   trivial group allocates nothing (tests/allocations.rs).
//!
//! - What still runs is not tracked per branch: the driver walks its
//!   branches when asked ([`Answer`]) or when the deadline passes or grace
//!   expires. Only tasks, which are costly anyway, register a name and a
//!   start, in a state made by the first task or watcher.
//!
//! # Operations
//!
//! What the drivers (engine.rs, group.rs, lifecycle.rs) and the code of a
//! group (branch.rs, ctx.rs, pool.rs, fanout.rs, workers.rs, private.rs)
//! do to it. `Core`'s crate-visible methods are these operations and
//! read-only queries, nothing else: its fields, its flags word and its
//! locks are this file's. By what they are for:
//!
//! - **build** it: [`State::new`] (inline in its future, a [`Place`], or
//!   with a core from birth), [`Core::new`].
//! - **start** work: [`Core::start`] / [`Core::start_written`] (may a
//!   branch run now, or wait for a `limit` permit), [`Core::spawn_task`]
//!   (into the one task set, refused once closed) or
//!   [`Core::refuse_task`], [`Core::running_guard`] / [`Core::count_task`]
//!   and [`Core::uncount_task`] (what runs, for `len` and the census); and
//!   what the driver must look at from then on: [`Core::off_driver`],
//!   [`Core::watched`], [`Core::without_driver`], [`Core::want_durations`].
//! - **complete** it: `branch::complete_failure` (from the one guarded
//!   poll, `branch::poll_guarded`, or `branch::complete`) into
//!   [`State::fail`] (typed), [`Core::fail_boxed`] (a task's, boxed) or
//!   [`Core::fail_kept`] then [`State::keep`] (a `Group` task's, whose
//!   error `join_next` may take first); [`Core::panicked`];
//!   [`Core::joined`] for how a task ended.
//! - **cancel**: [`Core::cancel`] (the first cause wins), and
//!   [`Core::deadline_passed`].
//! - **finish**: [`Core::look`] then [`Core::poll_tasks`] (await the
//!   tasks, seal when empty), with [`Core::reap_tasks`] freeing ended ones
//!   of a `Group`, which has no driver until `wait`; then
//!   [`State::finish_closed`] (or [`State::finish`],
//!   [`State::finish_inline`]), which marks it finished.
//! - **shut down**: [`Core::grace_expired`] (closed, tasks aborted: the
//!   first half of the shutdown rule), and [`Core::shut_down`], the
//!   teardown of a group dropped before it finished.
//! - **report** what runs: [`Core::census`] (a driver's branches, then
//!   the tasks), [`Core::task_census`] (the tasks alone), and a `Watch`'s
//!   [`Core::ask`], answered at once or by the driver ([`Core::answer`]).
//! - **queries**, read-only: [`Core::is_cancelled`], [`Core::cause`],
//!   [`Core::cancelled_error`] (which tells echo.rs it was handed out),
//!   [`Core::cancellation`],
//!   [`Core::effective_deadline`], [`Core::own_deadline`],
//!   [`Core::is_timed`], [`Core::running`], [`Core::span`],
//!   [`Core::limit`], and [`Core::node`] (what a channel or a permit
//!   waits on).
//!
//! A group's state before it has a core ([`Place`]) answers the same
//! queries and takes the same cancellation and completion, forwarding to
//! its core once promoted.
//!
//! `Core` is written into its `Arc` in place, but nothing in it needs the
//! `Arc` except the handles it gives out (`running_guard`) and its parent's
//! hook on it ([`Core::link`]): it could be held by value by a driver whose
//! code borrows it.
//!
//! # Deadlock safety
//!
//! No lock is held while calling out: a task is spawned with the task-set
//! lock held only around `JoinSet::spawn`, which does not run the task, and
//! every cancellation happens after the lock is released.

use std::any::Any;
use std::future::Future;
use std::panic::{Location, resume_unwind};
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use futures_util::task::AtomicWaker;

use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cancel::{Cancellation, HasNode, Node, OnCancel};
use crate::cold::{Cold, ColdOnce};
use crate::echo;
use crate::error::{
    Cancelled, Cause, Census, Error, Later, Moment, Running, StillRunning, Suppressed, TaskName,
};
use crate::limit::{self, Limit, Start};
use crate::sync::{Arc, AtomicBool, AtomicUsize, Mutex, Ordering, Weak, lock};
use crate::tasks::{Joined, TaskSet};
use crate::trace;

/// `scoped_tls::scoped_thread_local!`'s expansion, token for token, but a
/// `const` where the macro writes a `static`: a key is set by code
/// compiled in the crate that writes the group or the task (generic over
/// it), where a `static` of this crate is opaque, so each use of the key
/// was a call through the function pointer it holds; a `const` is known
/// there, and its thread-local is read in place (~11 Ir per poll of a
/// trivial group, benches/instructions.sh). Its cell is still reachable
/// only through the key.
macro_rules! scoped_key {
    ($(#[$attr:meta])* $name:ident: $ty:ty) => {
        $(#[$attr])*
        const $name: scoped_tls::ScopedKey<$ty> = scoped_tls::ScopedKey {
            inner: {
                std::thread_local!(static KEY: std::cell::Cell<*const ()> = const {
                    std::cell::Cell::new(std::ptr::null())
                });
                &KEY
            },
            _marker: std::marker::PhantomData,
        };
    };
}

scoped_key! {
    /// The group of a body that is its own tokio task (a `#[spawn]` branch
    /// or item, a `ctx.spawn`, `Group` or pool task), so that a group
    /// created inside it becomes its child without `parent = ctx;`
    /// (semantic 6). Only the group is kept, not the body's ctx: that is
    /// all a nested group reads. Set around each poll (as a task-local is)
    /// from a borrow of the group its guard holds anyway: no reference
    /// count taken per poll, and no copy of it stored in every task.
    AMBIENT: Arc<Core>
}

scoped_key! {
    /// The group whose in-task branches are being polled: a group created
    /// in one of them promotes it (if it has no core yet), to be its parent.
    LENT: Place
}

/// The group of the branch whose code is running now, if any: the group
/// whose driver is polling its in-task branches ([`lend`]), else the
/// task's own.
///
/// A lend is the innermost: a driver lends its group around its branches
/// only, inside whatever task polls it, and a task body sets its own
/// group ([`in_ambient`]) only where tokio's scheduler polls it, never
/// inside a lend (the inline `#[spawn]` branch, `Spawn::inline`, is polled
/// in its driver's lend and sets none: its group is the lending one). So
/// one look at the lend answers for a group nested in an in-task branch,
/// and the task's is read only outside any driver's poll.
// `#[inline]`: where a group is created, most often with nothing set.
#[inline]
pub(crate) fn ambient() -> Option<Arc<Core>> {
    if !LENT.is_set() && !AMBIENT.is_set() {
        return None;
    }
    ambient_set()
}

/// [`ambient`] once something is set.
#[inline(never)]
fn ambient_set() -> Option<Arc<Core>> {
    if LENT.is_set() {
        return LENT.with(|place| Some(Arc::clone(place.promote())));
    }
    ambient_raw()
}

/// The ambient group alone, without a lent one.
fn ambient_raw() -> Option<Arc<Core>> {
    AMBIENT.is_set().then(|| AMBIENT.with(Arc::clone))
}

/// `f()` with `core` as the ambient group: a body that is its own tokio
/// task (a `#[spawn]` branch or item, a `ctx.spawn`, `Group` or pool
/// task), around each of its polls.
pub(crate) fn in_ambient<R>(core: &Arc<Core>, f: impl FnOnce() -> R) -> R {
    AMBIENT.set(core, f)
}

/// What a group needs to build its core.
#[derive(Debug, Default, Clone)]
pub(crate) struct Settings {
    pub(crate) parent: Option<Arc<Core>>,
    /// A `CancellationToken` parent: watched by the group's driver (or a
    /// `Group`'s watcher task); one already cancelled cancels the group at birth.
    pub(crate) token: Option<CancellationToken>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) limit: Option<usize>,
    /// Where the group was written, for its `tracing` span.
    pub(crate) site: Option<&'static Location<'static>>,
    /// The group's span, when it was made before its core (a [`Place`]'s).
    pub(crate) span: Option<trace::Span>,
    /// The group's own code needs an owned handle on it from the start (a
    /// `#[spawn]` or `#[blocking]` branch, a fan-out, a channel header: the
    /// macro knows): its core is built at birth, not promoted from a
    /// [`Place`] (which would cost building both).
    pub(crate) core: bool,
}

/// The cause a cancelled `CancellationToken` parent gives its group: a
/// shutdown from outside, not a failure.
pub(crate) fn token_cause() -> Cause {
    Cause::Parent(Box::new(Cause::Shutdown {
        by: TaskName::new("token"),
    }))
}

/// What a group keeps under its one lock: its tasks (`ctx.spawn`,
/// [`Group::spawn`](crate::Group::spawn), a pool's) and the first panic and
/// task error. Taken by tasks and failures only: an in-task group that
/// neither spawns nor fails never takes it.
///
/// Each optional field is a [`Cold`]: most groups leave them empty, and
/// their drop is then a test each, inline in the core's, where it was a
/// call (benches/instructions.sh).
struct Inner {
    /// Created by the first task: most groups never start one.
    set: Cold<TaskSet<bool>>,
    /// Every finished task returned `Ok`.
    all_ok: bool,
    panic: Cold<Box<dyn Any + Send>>,
    /// The first error of a task or `#[spawn]` branch, when one failed
    /// first. Untyped: an untyped `Ctx::spawn` task may have another error
    /// type than the group's, and `State::finish` then returns the cause alone.
    task_error: Cold<Box<dyn Any + Send>>,
}

/// Bits of a group's flags word (kept in its node: `Node::owner_word`, so
/// that [`Core::off_driver`] reaches its ancestors'): what a group's driver must look at beyond
/// its branches. All clear for a group that starts no task and is never
/// watched, whose driver then reads one word per poll and takes no lock.
mod flags {
    /// A task was added to (or refused by) the task set.
    pub(crate) const SPAWNED: usize = 1;
    /// Closed to new work: no task starts from now on. Set without the
    /// task-set lock when no task was ever spawned (both that and a spawn
    /// are read-modify-writes of this word, so one sees the other), else
    /// under it, where a spawn looks again.
    pub(crate) const SEALED: usize = 128;
    /// A [`Watch`](crate::Watch) handle was made: the driver keeps its waker
    /// where a question can wake it.
    pub(crate) const WATCHED: usize = 2;
    /// Code of the group runs off the driver (a `#[spawn]` or `#[blocking]`
    /// branch or item, or such code or a task of a group nested in it) and
    /// may make a `Watch` while the driver sleeps: the driver keeps its
    /// waker where a question can wake it.
    pub(crate) const OFF_DRIVER: usize = 4;
    /// A question waits for the driver's answer.
    pub(crate) const ASKED: usize = 8;
    /// Durations are wanted: fan-outs note when they launch items.
    pub(crate) const TIMED: usize = 16;
    /// The group has returned.
    pub(crate) const FINISHED: usize = 32;
    /// No driver: a [`Group`](crate::Group), whose every task is in the registry.
    pub(crate) const UNDRIVEN: usize = 64;
    /// Any of these: the driver keeps its waker in the core.
    pub(crate) const KEEP_WAKER: usize = SPAWNED | WATCHED | OFF_DRIVER;
}

/// What a group knows of its running tasks and watchers, behind one lock
/// taken only by tasks, watchers, and the end of a group that was watched.
#[derive(Default)]
struct Watch {
    /// The group's tasks (`ctx.spawn`, `Group::spawn`): name and start,
    /// a slab so that a task ends in O(1).
    tasks: Vec<Slot>,
    vacant: Option<usize>,
    /// How many tasks were registered: each one's rank, so that a census
    /// lists them in the order they were spawned whatever slots they reuse.
    spawned: u64,
    /// When the group's branches started, for a group without deadline or
    /// grace: when it was first watched.
    since: Option<Instant>,
    /// Taken when the deadline passed or grace expired; goes into the
    /// `Cancelled` the group returns.
    report: Option<Box<StillRunning>>,
    /// Questions for the driver.
    asks: Vec<oneshot::Sender<Vec<Running>>>,
    /// How many later failures were kept: each one's rank, so that those
    /// kept typed (in-task branches) and boxed (below) merge in the order
    /// they happened. Here, in the box made on demand, as a group with a
    /// single failure needs none of it.
    ranked: usize,
    /// The later failures of tasks and `#[spawn]` branches (not echoes),
    /// each a boxed `Suppressed<E>` with its rank.
    later: Vec<(usize, Box<dyn Any + Send>)>,
}

#[derive(Default)]
struct Watching {
    state: Mutex<Watch>,
    /// Tasks started and not yet ended (`Group::len`).
    running: AtomicUsize,
    /// A pool's tasks running, counted but not named (`count_task`): here,
    /// made by the first task, rather than a word in every group's core.
    pooled: AtomicUsize,
}

enum Slot {
    Running(u64, TaskName, Instant),
    Vacant(Option<usize>),
}

/// The group's flags as its driver read them once per poll ([`Core::look`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Look(usize);

/// Where a failure whose error its caller keeps goes ([`Core::fail_kept`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It cancelled the group: its error is the group's.
    First,
    /// A later failure, with its rank among the group's later failures.
    Later(usize),
    /// A later failure that echoes the cancellation (echo.rs): not the
    /// group's to keep.
    Echo,
}

/// The answer to a question to a group: at once, or from its driver.
pub(crate) enum Answer {
    Now(Vec<Running>),
    Later(oneshot::Receiver<Vec<Running>>),
}
/// One group, type-erased.
pub(crate) struct Core {
    node: Node,
    /// The group's `tracing` span (zero-sized without the feature).
    span: trace::Span,
    limit: Option<Limit>,
    inner: Mutex<Inner>,
    /// Made by the first task or watcher, and boxed: a group with neither
    /// pays two words for it, and a test to drop it ([`ColdOnce`]).
    watching: ColdOnce<Box<Watching>>,
    /// The driver's waker, kept while a question may come
    /// (`flags::KEEP_WAKER`): here, not in `watching`, as every group with
    /// a `#[spawn]` or `#[blocking]` branch keeps it and most are never
    /// watched (the box cost it an allocation, ~450 instructions a group).
    driver: AtomicWaker,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// A root group's core with nothing set: what [`Core::new`] writes in
/// place, then sets what its settings say.
impl Default for Core {
    // `#[inline]`: see `Core::new`.
    #[inline]
    fn default() -> Self {
        Core {
            node: Node::new(),
            span: trace::none(),
            limit: None,
            inner: Mutex::new(Inner {
                set: Cold::new(None),
                all_ok: true,
                panic: Cold::new(None),
                task_error: Cold::new(None),
            }),
            watching: ColdOnce::new(),
            driver: AtomicWaker::new(),
        }
    }
}

impl HasNode for Core {
    fn node(&self) -> &Node {
        &self.node
    }
}

impl OnCancel for Core {
    fn on_cancel(&self, cause: &Cause) {
        self.cancel(Cause::Parent(Box::new(cause.clone())));
    }
}

impl Core {
    /// A group's state behind the `Arc` its ctxs share, linked into the
    /// cancellation tree.
    pub(crate) fn new(settings: Settings) -> Arc<Core> {
        let born_cancelled = settings
            .token
            .as_ref()
            .is_some_and(CancellationToken::is_cancelled);
        let parent = settings.parent.map(|p| p as Arc<dyn HasNode>);
        let span = match settings.span {
            Some(span) => span,
            None => trace::group(settings.site, settings.limit, settings.deadline),
        };
        let limit = settings.limit.map(Limit::new);
        // Written in place: `Arc::default` allocates, then writes the
        // default core into its place, where `Arc::new` built the core
        // aside and copied it in (344 bytes, a `memcpy` per group,
        // benches/instructions.sh); what is not a default is then set
        // field by field. Nothing in it needs the `Arc` but the handles it
        // gives out (`running_guard`) and the parent's hook (`link`), so it
        // could live by value.
        let mut core = Arc::<Core>::default();
        let fresh = Arc::get_mut(&mut core).expect("errgroup: a new core has one owner");
        fresh.node.place(parent, settings.deadline);
        fresh.span = span;
        fresh.limit = limit;
        core.link(born_cancelled);
        core
    }

    /// Links the group into the cancellation tree: its parent's
    /// cancellation reaches it (weakly: a parent does not keep its children
    /// alive), and a token parent cancelled already cancels it now.
    fn link(self: &Arc<Self>, born_cancelled: bool) {
        if let Some(parent) = self.node.parent() {
            let weak: Weak<Core> = Arc::downgrade(self);
            parent.on_cancel(weak);
        }
        if born_cancelled {
            self.cancel(token_cause());
        }
    }

    pub(crate) fn node(&self) -> &Node {
        &self.node
    }

    pub(crate) fn limit(&self) -> Option<&Limit> {
        self.limit.as_ref()
    }

    /// Cancels the group with `cause`; `false` if it was already cancelled.
    pub(crate) fn cancel(&self, cause: Cause) -> bool {
        self.cancel_then(cause, |_| ())
    }

    /// [`cancel`](Core::cancel) with `Finished`, by the driver as its
    /// group returns (`Ok` if `returns_ok` and nothing cancelled it
    /// before). Then only said, not kept, where nothing could see it: no
    /// handle holds the core but its driver's (every task has ended and
    /// dropped its own), nothing is hooked to its node (a child group
    /// holds the core; a token or channel hooks), and no `tracing` event
    /// tells it. A parent's cancellation that reaches the core through its
    /// weak hook meanwhile changes nothing: the group returns `Ok` all the
    /// same. Saves a lock and the cause (~100 instructions per group).
    fn cancel_finished(self: &Arc<Self>, returns_ok: bool) -> bool {
        if returns_ok && !trace::ENABLED && Arc::strong_count(self) == 1 {
            // What the handles' threads did before they dropped them, this
            // thread sees (as `Arc`'s own drop does).
            std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
            if let Some(first) = self.node.would_cancel() {
                return first;
            }
        }
        self.cancel(Cause::Finished)
    }

    /// [`cancel`](Core::cancel), running `first(won)` before the
    /// cancellation's own `tracing` event, so that what caused it is told first.
    fn cancel_then(&self, cause: Cause, first: impl FnOnce(bool)) -> bool {
        let before = trace::ENABLED && self.node.is_set();
        let won = self.node.cancel(cause);
        first(won);
        // Also when a passed deadline took the cause's place. The cause is
        // read (a lock and a clone) only for a `tracing` event to tell it.
        if trace::ENABLED && !before && self.node.is_set() {
            if let Some(cause) = self.node.cause() {
                trace::cancelled(&self.span, &cause);
            }
        }
        won
    }

    /// The group's `tracing` span.
    pub(crate) fn span(&self) -> &trace::Span {
        &self.span
    }

    // `#[inline]`: asked per fan-out item, from generic code compiled in the
    // user's crate, where a plain fn would be a call each time.
    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        self.node.is_cancelled()
    }

    pub(crate) fn cause(&self) -> Option<Cause> {
        self.node.cause()
    }

    /// The `Cancelled` handed to code of the group that asks now (an
    /// echo: see echo.rs).
    pub(crate) fn cancelled_error(&self) -> Cancelled {
        echo::handed();
        self.cancellation_error()
    }

    fn cancellation_error(&self) -> Cancelled {
        Cancelled::new(self.cause().unwrap_or(Cause::Dropped))
    }

    /// Completes once the group is cancelled.
    pub(crate) fn cancellation(&self) -> Cancellation<'_> {
        self.node.cancellation()
    }

    pub(crate) fn effective_deadline(&self) -> Option<Instant> {
        self.node.effective_deadline()
    }

    #[inline]
    pub(crate) fn own_deadline(&self) -> Option<Instant> {
        self.node.own_deadline()
    }

    /// How a branch created now may start (see `limit.rs`).
    // `#[inline]`: asked per branch, from generic code compiled in the
    // user's crate.
    #[inline]
    pub(crate) fn start(&self) -> Start {
        limit::start(&self.node, self.limit.as_ref())
    }

    /// How a written branch or a `Group::spawn` task created now may start:
    /// also in a cancelled group (see `limit::start_written`).
    #[inline]
    pub(crate) fn start_written(&self) -> Start {
        limit::start_written(self.limit.as_ref())
    }

    pub(crate) fn panicked(&self, task: TaskName, payload: Box<dyn Any + Send>) {
        trace::panicked(&self.span, &task);
        self.cancel(Cause::Panicked { task });
        lock(&self.inner).panic.get_or_insert(payload);
    }

    /// Records the error of a task or `#[spawn]` branch if it is the first
    /// failure, and cancels the group: boxed, as the core is untyped.
    /// `State::finish` takes it back if it is of the group's error type.
    /// A later one is kept too, unless it is an echo (`echoed`: its body
    /// was handed a `Cancelled`, echo.rs).
    pub(crate) fn fail_boxed<E: Send + 'static>(&self, task: TaskName, error: E, echoed: bool) {
        let spare = spare_name(&task, echoed, self.is_cancelled());
        if self.cancel_failed(task) {
            *lock(&self.inner).task_error = Some(Box::new(error));
        } else if let Some(task) = spare {
            let later = Box::new(Suppressed::new(task, error));
            let mut watch = lock(&self.watching().state);
            let rank = watch.ranked;
            watch.ranked += 1;
            watch.later.push((rank, later));
        }
    }

    /// Records the failure of `task` whose error its caller keeps (a
    /// `Group`'s own task, whose error `join_next` may take before the
    /// group's end): cancels the group, and says where the error goes,
    /// for [`State::keep`] to put it there once the group finishes.
    pub(crate) fn fail_kept(&self, task: TaskName, echoed: bool) -> Verdict {
        if self.cancel_failed(task) {
            Verdict::First
        } else if echoed {
            Verdict::Echo
        } else {
            // A later failure takes its rank now, in the order failures happen.
            Verdict::Later(self.later_rank())
        }
    }

    /// What an inline group recorded before it was promoted to this core
    /// (`Place`, state.rs): its cause, its first panic, how many later failures
    /// it ranked.
    fn adopt(&self, cause: Option<Cause>, panic: Option<Box<dyn Any + Send>>, ranked: usize) {
        if let Some(cause) = cause {
            self.cancel(cause);
        }
        if let Some(payload) = panic {
            lock(&self.inner).panic.get_or_insert(payload);
        }
        if ranked > 0 {
            lock(&self.watching().state).ranked += ranked;
        }
    }

    /// The rank of a later failure kept now.
    fn later_rank(&self) -> usize {
        let mut watch = lock(&self.watching().state);
        watch.ranked += 1;
        watch.ranked - 1
    }

    /// Cancels the group because `task` failed; `true` if it is the first
    /// failure (the caller keeps its error).
    fn cancel_failed(&self, task: TaskName) -> bool {
        let name = trace::name(&task);
        self.cancel_then(Cause::Failed { task }, |first| {
            trace::failed(&self.span, &name, first);
        })
    }

    /// How a task of `task`'s ended, as a value if it gave one: a panic that
    /// escaped is recorded to resume in the caller, an abort the group did
    /// not ask for (the runtime shutting down) cancels the group.
    pub(crate) fn joined<T>(&self, task: &TaskName, joined: Joined<T>) -> Option<T> {
        match joined {
            Joined::Done(value) => Some(value),
            Joined::Panicked(payload) => {
                self.panicked(task.clone(), payload);
                None
            }
            Joined::Aborted => {
                self.cancel(Cause::Dropped);
                None
            }
        }
    }

    /// Adds `job` (whose output says whether it returned `Ok`) to the
    /// group's tasks; refused once the group has returned.
    pub(crate) fn spawn_task<F>(&self, name: &trace::Name, job: F) -> Result<(), Cancelled>
    where
        F: Future<Output = bool> + Send + 'static,
    {
        let before = self.mark(flags::SPAWNED);
        if let Some(parent) = self.node.parent() {
            // The task runs off the enclosing groups' drivers too.
            off_driver(parent);
        }
        if before & flags::SEALED != 0 {
            return Err(self.cancelled_error());
        }
        let mut tasks = lock(&self.inner);
        // Sealed meanwhile, under this lock (the set was found empty).
        if self.flags() & flags::SEALED != 0 {
            drop(tasks);
            return Err(self.cancelled_error());
        }
        tasks.set.get_or_insert_with(TaskSet::new).spawn(name, job);
        Ok(())
    }

    /// Counts a task as running until the guard is dropped (its future ends
    /// or is dropped, aborted or refused), and keeps its name and start for
    /// [`Core::census_tasks`].
    pub(crate) fn running_guard(self: &Arc<Self>, task: &TaskName) -> RunningTask {
        self.watching().running.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let mut watch = lock(&self.watching().state);
        watch.spawned += 1;
        let entry = Slot::Running(watch.spawned, task.clone(), started);
        let key = if let Some(key) = watch.vacant {
            let Slot::Vacant(next) = std::mem::replace(&mut watch.tasks[key], entry) else {
                unreachable!("errgroup: the vacant list names a running slot")
            };
            watch.vacant = next;
            key
        } else {
            watch.tasks.push(entry);
            watch.tasks.len() - 1
        };
        drop(watch);
        RunningTask(Arc::clone(self), key)
    }

    /// Counts a task as running, without registering its name: a pool's
    /// task, of which a server has thousands, each paying for a slot
    /// otherwise. [`Core::uncount_task`] when it ends.
    pub(crate) fn count_task(&self) {
        self.watching().running.fetch_add(1, Ordering::Relaxed);
        self.watching().pooled.fetch_add(1, Ordering::Relaxed);
    }

    /// A task counted by [`Core::count_task`] has ended.
    pub(crate) fn uncount_task(&self) {
        self.watching().pooled.fetch_sub(1, Ordering::Relaxed);
        self.watching().running.fetch_sub(1, Ordering::Relaxed);
    }

    /// Adds the running tasks to `census`, in the order they were spawned.
    fn census_tasks(&self, census: &mut Census) {
        let watch = lock(&self.watching().state);
        let mut running: Vec<_> = watch
            .tasks
            .iter()
            .filter_map(|slot| match slot {
                Slot::Running(rank, task, since) => Some((*rank, task, *since)),
                Slot::Vacant(_) => None,
            })
            .collect();
        running.sort_unstable_by_key(|&(rank, ..)| rank);
        let pooled = self.watching().pooled.load(Ordering::Relaxed);
        for (_, task, since) in running {
            census.add(task, Some(since));
        }
        // A pool's tasks are counted, not named (`count_task`): one line for all.
        if pooled > 0 {
            census.add(&TaskName::new(format!("{pooled} pool tasks")), None);
        }
    }

    /// What runs now of a group whose driver's work is `branches` (which
    /// adds those still running, in the order written) and its tasks:
    /// `since`, when the group's work started if the driver knows (a
    /// timer's), else when it was first watched.
    pub(crate) fn census(
        &self,
        since: Option<Instant>,
        branches: impl FnOnce(&mut Census),
    ) -> Census {
        let mut census = Census::new(since.or_else(|| self.since()));
        branches(&mut census);
        self.census_tasks(&mut census);
        census
    }

    /// What runs now of a group whose work is its tasks alone (a `Group`).
    pub(crate) fn task_census(&self) -> Census {
        let mut census = Census::new(None);
        self.census_tasks(&mut census);
        census
    }

    fn watching(&self) -> &Watching {
        self.watching.get_or_init(Box::default)
    }

    /// The flags (see [`flags`]).
    #[inline]
    fn flags(&self) -> usize {
        self.node.owner_word().load(Ordering::Acquire)
    }

    /// Marks `bits` in the flags.
    #[inline]
    fn mark(&self, bits: usize) -> usize {
        self.node.owner_word().fetch_or(bits, Ordering::AcqRel)
    }

    /// What the driver's poll must look at beyond its branches, read once
    /// for its tasks ([`Core::poll_tasks`]) and its watchers
    /// ([`Core::answer`]).
    #[inline]
    pub(crate) fn look(&self) -> Look {
        Look(self.flags())
    }

    /// The group has no driver (a [`Group`](crate::Group)): every task is
    /// in the registry, and a `Watch` is answered at once.
    pub(crate) fn without_driver(&self) {
        self.mark(flags::UNDRIVEN);
    }

    /// Durations are wanted from now on (a deadline or grace will report
    /// what still runs, and for how long).
    pub(crate) fn want_durations(&self) {
        self.mark(flags::TIMED);
    }

    /// Whether durations are wanted: a fan-out notes when it launches items.
    #[inline]
    pub(crate) fn is_timed(&self) -> bool {
        self.flags() & flags::TIMED != 0
    }

    /// Code of this group runs off its driver from now on (a `#[spawn]` or
    /// `#[blocking]` branch or item, a task): and so code of every group it
    /// is nested in, which that code may ask (a `Watch` from a ctx of theirs
    /// it holds) while their drivers sleep, so their drivers keep their
    /// wakers too. Marked up the chain the first time only: an ancestor of a
    /// group marked is marked.
    pub(crate) fn off_driver(&self) {
        off_driver(&self.node);
    }

    /// When the group's branches started, if known (a watched group).
    fn since(&self) -> Option<Instant> {
        self.watching.get().and_then(|w| lock(&w.state).since)
    }

    /// A [`Watch`](crate::Watch) is made: the driver keeps its waker from
    /// its next poll on, and durations are counted from now at the latest.
    pub(crate) fn watched(&self) {
        self.mark(flags::WATCHED | flags::TIMED);
        let mut watch = lock(&self.watching().state);
        watch.since.get_or_insert_with(Instant::now);
    }

    /// The group has returned, or its driver was dropped: every question,
    /// waiting or to come, is answered with nothing.
    #[inline]
    fn close_watch(&self) {
        // One read-modify-write: a `Watch` made concurrently either sees
        // `FINISHED` or is seen here as `WATCHED` (see `watched`).
        if self.mark(flags::FINISHED) & flags::WATCHED != 0 {
            self.close_watched();
        }
    }

    /// Teardown of a group whose driver is gone before it finished (its
    /// future or its `Group` dropped): cancelled with `Dropped`, closed to
    /// new tasks with those running aborted (it cannot wait for them), every
    /// question answered empty. Nothing once the group has finished.
    #[inline]
    pub(crate) fn shut_down(&self) {
        if self.flags() & flags::FINISHED == 0 {
            self.cancel(Cause::Dropped);
            self.close_tasks();
            self.close_watch();
        }
    }

    #[cold]
    fn close_watched(&self) {
        let mut watch = lock(&self.watching().state);
        // Waiting questions are answered empty as their senders drop.
        watch.asks.clear();
    }

    /// Answers the questions of the group's watchers (`Watch::running`)
    /// with `census`, and keeps the driver's `waker`, when it will sleep
    /// after this poll, where the next question can wake it (the driver's
    /// part of [`flags::KEEP_WAKER`]); `look` is what the driver read.
    #[inline]
    pub(crate) fn answer(
        &self,
        look: Look,
        waker: Option<&Waker>,
        census: impl FnOnce() -> Census,
    ) {
        if look.0 & flags::KEEP_WAKER == 0 {
            return;
        }
        if let Some(waker) = waker {
            self.driver.register(waker);
        }
        // Read again once the waker is kept: a question asked after
        // `look` and before it was kept woke no one.
        if self.flags() & flags::ASKED != 0 {
            self.answer_asks(census);
        }
    }

    #[cold]
    fn answer_asks(&self, census: impl FnOnce() -> Census) {
        let asks = self.take_asks();
        if asks.is_empty() {
            return;
        }
        let list = census().into_list();
        for ask in asks {
            // A watcher that stopped waiting is no error.
            let _ = ask.send(list.clone());
        }
    }

    /// Which branches and tasks run now: answered here for a group without
    /// a driver, else by the driver's next poll, which this wakes.
    pub(crate) fn ask(&self) -> Answer {
        let mut watch = lock(&self.watching().state);
        // Read under the lock: a close that marked `FINISHED` after this
        // takes the lock next and drops the question asked here.
        if self.flags() & flags::FINISHED != 0 {
            return Answer::Now(Vec::new());
        }
        if self.flags() & flags::UNDRIVEN != 0 {
            drop(watch);
            return Answer::Now(self.task_census().into_list());
        }
        let (answer, question) = oneshot::channel();
        watch.asks.push(answer);
        self.mark(flags::ASKED);
        drop(watch);
        self.driver.wake();
        Answer::Later(question)
    }

    /// The questions to answer now; the driver answers each with its census.
    fn take_asks(&self) -> Vec<oneshot::Sender<Vec<Running>>> {
        let mut watch = lock(&self.watching().state);
        self.node
            .owner_word()
            .fetch_and(!flags::ASKED, Ordering::AcqRel);
        std::mem::take(&mut watch.asks)
    }

    /// Keeps `report` as what the group's `Cancelled` will carry.
    fn keep_report(&self, report: StillRunning) {
        lock(&self.watching().state).report = Some(Box::new(report));
    }

    /// The deadline passed: the group is cancelled with `DeadlineExceeded`,
    /// and keeps `census` as its report, unless a failure came first (then
    /// it says what happened).
    pub(crate) fn deadline_passed(&self, census: impl FnOnce() -> Census) {
        self.cancel(Cause::DeadlineExceeded);
        if self.cause() == Some(Cause::DeadlineExceeded) {
            self.keep_report(census().report(Moment::Deadline));
        }
    }

    /// Grace expired: `report` (what still ran) is kept, and the first half
    /// of the shutdown rule (tasks.rs) applied; the driver stops what else
    /// it runs, and awaits the tasks ([`Core::poll_tasks`]).
    pub(crate) fn grace_expired(&self, report: StillRunning) {
        self.keep_report(report);
        self.close_tasks();
    }

    /// Tasks started and not yet ended.
    pub(crate) fn running(&self) -> usize {
        self.watching
            .get()
            .map_or(0, |w| w.running.load(Ordering::Relaxed))
    }

    /// A task refused because the group was cancelled when it was asked for.
    /// The refusal is the caller's: it gets this `Cancelled` and decides;
    /// the group's result stays what its branches and tasks make it (a
    /// branch that heard the refusal and returned `Ok` leaves it `Ok`).
    pub(crate) fn refuse_task(&self) -> Cancelled {
        self.cancelled_error()
    }

    /// Collects finished tasks; `Ready(all_ok)` once none is running.
    ///
    /// `last`: nothing else of the group runs (every branch has returned),
    /// so `Ready` ends the group. Then the set is closed in the critical
    /// section that finds it empty: a task spawned meanwhile through a ctx
    /// that outlives the group's code (`Group::ctx`, a clone moved to a
    /// thread) is either in the set, and awaited, or refused; never
    /// accepted and then aborted unseen by `close_tasks`.
    ///
    /// `look`: the flags as the driver read them at the start of this poll
    /// ([`Core::look`]): before the last poll a task is only added by
    /// running code of this group (a branch or another task), which the
    /// driver will poll again, and the last poll looks again below.
    // `#[inline]`: a group that never spawned a task (every `#[spawn]` or
    // `#[blocking]` branch is a task of its own, outside the set) pays a
    // test, or a read-modify-write on its last poll, not a call.
    #[inline]
    pub(crate) fn poll_tasks(&self, look: Look, cx: &mut Context<'_>, last: bool) -> Poll<bool> {
        if look.0 & flags::SPAWNED == 0 {
            if !last {
                return Poll::Ready(true);
            }
            // Nothing was ever spawned or refused: sealing the word closes
            // the set, as the lock in `poll_set` would, and a spawn from
            // now on is refused.
            if self
                .node
                .owner_word()
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |f| {
                    (f & flags::SPAWNED == 0).then_some(f | flags::SEALED)
                })
                .is_ok()
            {
                return Poll::Ready(true);
            }
        }
        self.poll_set(cx, last)
    }

    /// [`Core::poll_tasks`] once a task was spawned or refused: the
    /// set, under its lock.
    fn poll_set(&self, cx: &mut Context<'_>, last: bool) -> Poll<bool> {
        let mut tasks = lock(&self.inner);
        let mut escaped = None;
        let Inner { set, all_ok, .. } = &mut *tasks;
        let drained = set.as_mut().map_or(Poll::Ready(()), |set| {
            set.poll_drain(cx, tally(all_ok, &mut escaped))
        });
        let ready = drained.map(|()| {
            self.seal_if(last);
            *all_ok
        });
        drop(tasks);
        self.escaped(escaped);
        ready
    }

    /// Frees the tasks that have ended, without waiting and without taking
    /// the waker of whoever polls the set: a [`Group`](crate::Group) has no
    /// driver to do it until `wait`, and a finished task otherwise stays
    /// in the set, result and all.
    pub(crate) fn reap_tasks(&self) {
        if self.flags() & flags::UNDRIVEN == 0 {
            // The driver is woken by every task's end and reaps it then.
            return;
        }
        let mut tasks = lock(&self.inner);
        let mut escaped = None;
        let Inner { set, all_ok, .. } = &mut *tasks;
        if let Some(set) = set.as_mut() {
            set.reap(tally(all_ok, &mut escaped));
        }
        drop(tasks);
        self.escaped(escaped);
    }

    /// Records the first task whose end was not its own (a panic that
    /// escaped, an abort): outside the task-set lock, as it may cancel the group.
    fn escaped(&self, escaped: Option<Joined<bool>>) {
        if let Some(joined) = escaped {
            self.joined::<bool>(&TaskName::new("spawned task"), joined);
        }
    }

    /// Seals the group (closed to new tasks), when `last`: called under
    /// the task-set lock, where a spawn looks again.
    fn seal_if(&self, last: bool) {
        if last {
            self.mark(flags::SEALED);
        }
    }

    /// The first half of the shutdown rule (tasks.rs): no task starts from
    /// now on, and those still running are aborted; `poll_tasks` awaits them.
    fn close_tasks(&self) {
        if self.mark(flags::SEALED) & flags::SPAWNED == 0 {
            // No task was added: the sealed word refuses the next ones.
            return;
        }
        // A spawn that passed the word before it was sealed looks again
        // under this lock: it is refused, or in the set aborted here.
        let mut tasks = lock(&self.inner);
        if let Some(set) = tasks.set.as_mut() {
            set.abort_all();
        }
    }
}

/// [`Core::off_driver`] for the group whose node is `node`, and up its
/// chain of parents to the first one marked already.
fn off_driver(node: &Node) {
    let mut node = Some(node);
    while let Some(at) = node {
        let word = at.owner_word();
        if word.fetch_or(flags::OFF_DRIVER, Ordering::AcqRel) & flags::OFF_DRIVER != 0 {
            break;
        }
        node = at.parent();
    }
}

/// How each ended task of the group's set counts: whether it returned
/// `Ok`, and the first one that did not end on its own.
fn tally<'a>(
    all_ok: &'a mut bool,
    escaped: &'a mut Option<Joined<bool>>,
) -> impl FnMut(Joined<bool>) + 'a {
    move |joined| match joined {
        Joined::Done(ok) => *all_ok &= ok,
        joined => {
            *all_ok = false;
            escaped.get_or_insert(joined);
        }
    }
}

/// One running task, counted and named by its group while this lives.
#[derive(Debug)]
pub(crate) struct RunningTask(Arc<Core>, usize);

impl RunningTask {
    /// The task's group.
    // Its one caller (branch.rs) reaps tasks, which loom's models leave out.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.0
    }
}

impl Drop for RunningTask {
    fn drop(&mut self) {
        self.0.watching().running.fetch_sub(1, Ordering::Relaxed);
        let mut watch = lock(&self.0.watching().state);
        watch.tasks[self.1] = Slot::Vacant(watch.vacant);
        watch.vacant = Some(self.1);
    }
}

/// A copy of `task` for the later list, in case its failure is not the
/// first: none for an echo, and none that allocates (a `String` name)
/// while the failure may still be the first, whose name moves into the
/// cause, as `cancelled` says the group is not cancelled yet. (A failure
/// that loses a race with another cancellation between the two is then
/// not kept.)
fn spare_name(task: &TaskName, echoed: bool, cancelled: bool) -> Option<TaskName> {
    if echoed {
        None
    } else if cancelled {
        Some(task.clone())
    } else {
        task.cheap_clone()
    }
}

/// A group: its state (inline until promoted to a core, `Place` in state.rs) and
/// the first error of its branches, typed, and the later failures of its
/// in-task branches (echo.rs says which count).
#[derive(Debug)]
pub(crate) struct State<E> {
    pub(crate) place: Place,
    failures: Mutex<Failures<E>>,
}

/// The typed failures of a group, under one lock.
#[derive(Debug)]
struct Failures<E> {
    first: Option<E>,
    /// Each with its rank (`Core::later_rank`); none until a second
    /// failure happens (an `Option`, so that a group without one drops
    /// nothing here: an empty `Vec` was a call).
    later: Option<Vec<(usize, Suppressed<E>)>>,
}

impl<E> State<E> {
    /// Whether dropping the state would drop nothing, so that `Scope`'s
    /// drop (engine.rs) may skip it, where its drop was two out-of-line
    /// calls per group: a group never promoted nor cancelled has recorded
    /// nothing (a failure, a panic and a later failure's rank each cancel
    /// it before they are written), and without the `tracing` feature its
    /// span is nothing. Never under loom, whose primitives want their drop.
    #[inline]
    pub(crate) fn holds_nothing(&self) -> bool {
        let nothing = !cfg!(loom)
            && !trace::ENABLED
            && !self.place.promoted.load(Ordering::Relaxed)
            && !self.place.cancelled.load(Ordering::Relaxed);
        debug_assert!(!nothing || self.records_nothing());
        nothing
    }

    /// [`State::holds_nothing`]'s claim, checked field by field.
    fn records_nothing(&self) -> bool {
        let failures = lock(&self.failures);
        failures.first.is_none()
            && failures.later.is_none()
            && lock(&self.place.slow).is_none()
            && self.place.born.is_none()
            && self.place.core.get().is_none()
    }

    /// A state that holds nothing, to drop another in its place (`Scope`).
    pub(crate) fn empty() -> Self {
        State {
            place: Place {
                cancelled: AtomicBool::new(false),
                promoted: AtomicBool::new(false),
                slow: Mutex::new(None),
                born: None,
                core: OnceLock::new(),
                site: None,
                span: trace::none(),
            },
            failures: Mutex::new(Failures {
                first: None,
                later: None,
            }),
        }
    }

    #[inline]
    pub(crate) fn new(settings: Settings) -> Self {
        State {
            place: Place::new(settings),
            failures: Mutex::new(Failures {
                first: None,
                later: None,
            }),
        }
    }

    /// The group's core, made now if it has none (`Place`, state.rs).
    pub(crate) fn core(&self) -> &Arc<Core> {
        self.place.promote()
    }

    /// Keeps the error of a failure recorded by [`Core::fail_kept`] where
    /// its `verdict` says: the group's error, or a later failure. An echo's
    /// is dropped, as [`State::fail`] drops one: a task that failed leaves
    /// the group no `Ok`, so no task's own result is given back.
    pub(crate) fn keep(&self, verdict: Verdict, task: TaskName, error: E) {
        match verdict {
            Verdict::First => lock(&self.failures).first = Some(error),
            Verdict::Later(rank) => self.keep_later(rank, task, error),
            Verdict::Echo => {}
        }
    }

    /// Keeps a failure that came after the first, with its `rank`.
    fn keep_later(&self, rank: usize, task: TaskName, error: E) {
        lock(&self.failures)
            .later
            .get_or_insert_with(Vec::new)
            .push((rank, Suppressed::new(task, error)));
    }

    /// Records `error` if it is the first failure and cancels the group; a
    /// later one is kept unless it is an echo (`echoed`, echo.rs).
    pub(crate) fn fail(&self, task: TaskName, error: E, echoed: bool) {
        let spare = spare_name(&task, echoed, self.place.is_cancelled());
        let first = self.place.cancel_failed(task);
        if first {
            lock(&self.failures).first = Some(error);
        } else if let Some(task) = spare {
            let rank = self.place.later_rank();
            self.keep_later(rank, task, error);
        }
    }
}

impl<E: Send + Sync + 'static> State<E> {
    /// The group's result once every branch and task has returned: resumes
    /// a panic, else `Ok(value)` if every branch gave one and no task failed,
    /// else the first error, else the cancellation. Cancels the ctx with
    /// `Finished` either way, and closes the group to new tasks.
    pub(crate) fn finish<T>(&self, value: Option<T>) -> Result<T, Error<E>> {
        let core = self.core();
        core.close_tasks();
        let tasks_ok = lock(&core.inner).all_ok;
        self.finish_closed(value, tasks_ok)
    }

    /// [`State::finish`] once the task set is closed and empty, `tasks_ok`
    /// what [`Core::poll_tasks`] said as it closed it: the driver's last
    /// poll has just done both, so the task-set lock is not taken twice more.
    #[inline]
    pub(crate) fn finish_closed<T>(&self, value: Option<T>, tasks_ok: bool) -> Result<T, Error<E>> {
        // An unpromoted group that nothing cancelled: every branch gave
        // its value (a failure or panic cancels the group first).
        if self.place.core().is_none() && !self.place.is_cancelled() {
            if let Some(value) = value {
                return Ok(value);
            }
        }
        self.finish_slow(value, tasks_ok)
    }

    /// [`State::finish_closed`] for a group the driver has just seen
    /// without a core once every branch returned: none can promote it any
    /// more, so only its inline cancellation is read.
    ///
    /// The driver's output itself: each path writes it where the driver's
    /// caller wants it, where a `Result` from the shared slow path was
    /// written aside and copied over on every path, the fast one too.
    #[inline]
    pub(crate) fn finish_inline<T>(&self, value: Option<T>) -> Poll<Result<T, Error<E>>> {
        if !self.place.cancelled.load(Ordering::Acquire) {
            if let Some(value) = value {
                return Poll::Ready(Ok(value));
            }
        }
        self.finish_inline_slow(value)
    }

    #[inline(never)]
    fn finish_inline_slow<T>(&self, value: Option<T>) -> Poll<Result<T, Error<E>>> {
        Poll::Ready(self.finish_slow(value, true))
    }

    #[inline(never)]
    fn finish_slow<T>(&self, value: Option<T>, tasks_ok: bool) -> Result<T, Error<E>> {
        let core = self.place.core();
        // `Finished` only where a handle can see it: an unpromoted group's
        // every ctx was a borrow, which ends with its future (`Place`, state.rs).
        let first = match core {
            Some(core) => {
                let first = core.cancel_finished(value.is_some() && tasks_ok);
                core.close_watch();
                first
            }
            None => !self.place.is_cancelled(),
        };
        // Nothing cancelled the group before: no panic and no error was
        // recorded (each cancels the group before it is stored, and every
        // branch and task has returned), so they need no lock.
        let value = match value {
            Some(value) if first && tasks_ok => return Ok(value),
            value => value,
        };
        let (panic, task_error) = match core {
            Some(core) => {
                let mut slots = lock(&core.inner);
                (slots.panic.take(), slots.task_error.take())
            }
            None => (self.place.take_panic(), None),
        };
        if let Some(payload) = panic {
            resume_unwind(payload);
        }
        let watching = core.and_then(|core| core.watching.get());
        let report = watching.and_then(|w| lock(&w.state).report.take());
        let later = self.take_later(report.as_deref());
        // A task that failed after the cancellation (its error dropped)
        // did not return `Ok` either, as a branch would not have
        // (`tasks_ok`). A refused one is its caller's business.
        if let (Some(value), None, true) = (value, &task_error, tasks_ok) {
            return Ok(value);
        }
        if let Some(Cause::Failed { task }) = self.place.cause() {
            // A task's error of another type than `E` (an untyped
            // `Ctx::spawn`) cannot be the group's: the cause names its task.
            let error = lock(&self.failures)
                .first
                .take()
                .or_else(|| task_error.and_then(|e| e.downcast::<E>().ok().map(|e| *e)));
            if let Some(error) = error {
                let task = task.with_later(later);
                return Err(Error::Failed { task, error });
            }
        }
        let cancelled = Cancelled::new(self.place.cause().unwrap_or(Cause::Dropped));
        if matches!(cancelled.cause(), Cause::Parent(_)) && later.is_none() {
            // Handed to the branch this group runs in: an echo of the
            // parent's cancellation there. Not with failures of its own.
            echo::handed();
        }
        Err(Error::Cancelled(
            cancelled.with_report(report).with_later(later),
        ))
    }

    /// The later failures, typed and boxed, in the order they happened.
    fn take_later(&self, report: Option<&StillRunning>) -> Option<Later> {
        let mut later = lock(&self.failures).later.take().unwrap_or_default();
        let watching = self.place.core().and_then(|core| core.watching.get());
        let boxed = watching.map_or_else(Vec::new, |w| std::mem::take(&mut lock(&w.state).later));
        if later.is_empty() && boxed.is_empty() {
            return None;
        }
        // A task of another error type than `E` cannot be listed as one.
        later.extend(
            boxed
                .into_iter()
                .filter_map(|(rank, e)| e.downcast::<Suppressed<E>>().ok().map(|e| (rank, *e))),
        );
        later.sort_by_key(|&(rank, _)| rank);
        let report = report.map(|r| Box::new(r.clone()));
        Later::new(later.into_iter().map(|(_, s)| s).collect(), report)
    }
}

// # Place: where an `errgroup!` group's state lives: in the group's own future
// until something needs an owned, `'static` handle on it, then in an
// `Arc<Core>`.
//
// A root group whose branches are all in-task, with no `limit`, deadline,
// `grace`, token or `shutdown_on` and without the `tracing` feature, keeps
// here what its code reads and writes: its cancellation cause, its first
// panic, and how many later failures it ranked. Its branches' ctxs borrow
// it (`BranchCtx<'_, E>`), so such a group allocates nothing until it is
// cancelled or a branch panics (the record of which is boxed: `Slow`).
//
// # Promotion
//
// Whatever needs a `'static` handle (`ctx.clone()`, a `&Ctx` made by
// deref, `ctx.spawn`, a channel, a watch, a token, a `#[spawn]` or
// `#[blocking]` branch, a fan-out, a group nested in one of its branches,
// a waiter on the cancellation) calls [`Place::promote`], which builds
// the group's [`Core`] the first time, moves what the inline state knows
// into it, and from then on every operation here forwards to it (one
// load). A group that needs a core anyway ([`needs_core`]) has one from
// birth.
//
// # Invariants
//
// - One cancellation record: before promotion, `slow.cause`; after, the
//   core's. The core is published under the `slow` lock, and an inline
//   cancellation takes that lock and forwards if the core is there: a
//   cancellation racing a promotion (a `&BranchCtx` lent to a scoped
//   thread) is never lost, and the first cause wins either way.
// - `cancelled` is set only with `slow.cause`, under the lock: the hot
//   read (`is_cancelled`) is one or two loads and takes no lock.
// - Only a promoted group can be seen after it finished (every borrow of
//   the inline state ends with the group's future), so `Finished` is set
//   on promoted groups only, and an unpromoted group has nothing to tear
//   down when its future is dropped.
// - Nothing waits on the inline state: a waiter on the cancellation
//   promotes first, so a cancellation while unpromoted wakes no one.

/// `f()` with `place` lent as the ambient group: a driver's poll of its
/// in-task branches. A group nested in one of them lends its own inside
/// `f`, which then wins until its poll returns.
#[inline]
pub(crate) fn lend<R>(place: &Place, f: impl FnOnce() -> R) -> R {
    LENT.set(place, f)
}

/// Whether a group built from `settings` needs its `Arc<Core>` from birth:
/// a parent (its cancellation reaches the group through the core's hook),
/// a timer or a `limit` (driven through the core), or code that would
/// promote it at once ([`Settings::core`]).
fn needs_core(settings: &Settings) -> bool {
    settings.core
        || settings.parent.is_some()
        || settings.token.is_some()
        || settings.deadline.is_some()
        || settings.limit.is_some()
}

/// A group's state, inline until promoted: see the module docs.
pub(crate) struct Place {
    /// `slow.cause` is set; read without the lock.
    cancelled: AtomicBool,
    /// Boxed, made the first time it is written: most groups never write
    /// it, and inline it took most of the group's state, which the
    /// expansion writes and moves at every group's start (Scope, engine.rs).
    slow: Mutex<Option<Box<Slow>>>,
    /// The core of a group born with one ([`needs_core`]): a plain
    /// field, where setting the `OnceLock` below took a `Once` call per
    /// group (~80 instructions, benches/instructions.sh).
    born: Option<Arc<Core>>,
    /// The promoted group; set once, under `slow`'s lock.
    core: OnceLock<Arc<Core>>,
    /// `core` is set: its publication as loom sees it (the `OnceLock`'s
    /// own is invisible to loom), read before `core` is.
    promoted: AtomicBool,
    /// Where the group was written, for the core made on promotion.
    site: Option<&'static Location<'static>>,
    /// The group's span while it has no core, which then takes it.
    span: trace::Span,
}

/// What an unpromoted group records, under one lock taken only when it is
/// cancelled, panics, ranks a later failure, or is promoted.
#[derive(Default)]
struct Slow {
    cause: Option<Cause>,
    panic: Option<Box<dyn Any + Send>>,
    /// How many later failures were ranked (`Core::later_rank`'s count,
    /// moved into the core on promotion).
    ranked: usize,
}

impl std::fmt::Debug for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Place")
            .field("core", &self.core())
            .finish_non_exhaustive()
    }
}

impl Place {
    /// The state of a group built from `settings`: a core from birth if
    /// it needs one ([`needs_core`]).
    #[allow(clippy::inline_always, reason = "see `Scope::new` (private.rs)")]
    #[inline(always)]
    fn new(settings: Settings) -> Self {
        let site = settings.site;
        if needs_core(&settings) {
            return Place::with(Some(Core::new(settings)), true, site, trace::none());
        }
        // Field by field: `needs_core` said the parent and token are
        // none, and dropping the whole struct was a call.
        let Settings {
            parent,
            token,
            span,
            ..
        } = settings;
        debug_assert!(parent.is_none() && token.is_none());
        let span = span.unwrap_or_else(|| trace::group(site, None, None));
        Place::with(None, false, site, span)
    }

    // The empty cell is made in `with`, in the place it is returned to: one
    // made aside was copied in as 16 bytes of which only its 4-byte state
    // had just been written, a load the CPU cannot forward from that store
    // and waits out (38 -> 33 ns per trivial group, benches/README.md).
    #[allow(clippy::inline_always, reason = "see `Scope::new` (private.rs)")]
    #[inline(always)]
    fn with(
        born: Option<Arc<Core>>,
        promoted: bool,
        site: Option<&'static Location<'static>>,
        span: trace::Span,
    ) -> Self {
        Place {
            cancelled: AtomicBool::new(false),
            promoted: AtomicBool::new(promoted),
            slow: Mutex::new(None),
            born,
            core: OnceLock::new(),
            site,
            span,
        }
    }

    /// The group's core, if it has one yet.
    #[inline]
    pub(crate) fn core(&self) -> Option<&Arc<Core>> {
        if self.promoted.load(Ordering::Acquire) {
            self.born.as_ref().or_else(|| self.core.get())
        } else {
            None
        }
    }

    /// The group's core, made now if it has none: what the inline state
    /// knows (cause, panic, ranks) moves into it.
    pub(crate) fn promote(&self) -> &Arc<Core> {
        if let Some(core) = self.core() {
            return core;
        }
        let mut slow = lock(&self.slow);
        if let Some(core) = self.core() {
            return core;
        }
        let core = Core::new(Settings {
            site: self.site,
            span: Some(self.span.clone()),
            ..Settings::default()
        });
        // A fresh core has no waiter, child or hook to call out to, so
        // this runs under the lock without calling into other code.
        let (cause, panic, ranked) = match slow.take() {
            Some(slow) => (slow.cause, slow.panic, slow.ranked),
            None => (None, None, 0),
        };
        core.adopt(cause, panic, ranked);
        let core = self.core.get_or_init(|| core);
        self.promoted.store(true, Ordering::Release);
        drop(slow);
        core
    }

    /// The group's span: its core's, or none.
    #[inline]
    pub(crate) fn span(&self) -> &trace::Span {
        match self.core() {
            Some(core) => core.span(),
            None => &self.span,
        }
    }

    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        match self.core() {
            Some(core) => core.is_cancelled(),
            None => self.cancelled.load(Ordering::Acquire),
        }
    }

    pub(crate) fn cause(&self) -> Option<Cause> {
        if let Some(core) = self.core() {
            return core.cause();
        }
        if !self.cancelled.load(Ordering::Acquire) {
            return None;
        }
        // Promoted meanwhile: the cause moved into the core.
        let inline = lock(&self.slow)
            .as_ref()
            .and_then(|slow| slow.cause.clone());
        inline.or_else(|| self.core()?.cause())
    }

    /// The `Cancelled` handed to code of the group that asks now (an
    /// echo: see echo.rs).
    pub(crate) fn cancelled_error(&self) -> Cancelled {
        echo::handed();
        Cancelled::new(self.cause().unwrap_or(Cause::Dropped))
    }

    /// Cancels the group with `cause`; `false` if it was already cancelled.
    pub(crate) fn cancel(&self, cause: Cause) -> bool {
        self.cancel_then(cause, |_| ())
    }

    /// [`Core::cancel_then`]: `first(won)` runs before the cancellation's
    /// own `tracing` event.
    fn cancel_then(&self, cause: Cause, first: impl FnOnce(bool)) -> bool {
        if let Some(core) = self.core() {
            return core.cancel_then(cause, first);
        }
        let mut slow = lock(&self.slow);
        if let Some(core) = self.core() {
            drop(slow);
            return core.cancel_then(cause, first);
        }
        if slow.as_ref().is_some_and(|slow| slow.cause.is_some()) {
            drop(slow);
            first(false);
            return false;
        }
        let told = trace::ENABLED.then(|| cause.clone());
        slow.get_or_insert_default().cause = Some(cause);
        self.cancelled.store(true, Ordering::Release);
        drop(slow);
        first(true);
        if let Some(cause) = told {
            trace::cancelled(&self.span, &cause);
        }
        true
    }

    /// Cancels the group because `task` failed; `true` if it is the first
    /// failure (the caller keeps its error).
    fn cancel_failed(&self, task: TaskName) -> bool {
        if let Some(core) = self.core() {
            return core.cancel_failed(task);
        }
        let name = trace::name(&task);
        self.cancel_then(Cause::Failed { task }, |first| {
            trace::failed(&self.span, &name, first);
        })
    }

    /// `task` panicked: the first panic is kept, to be resumed when the
    /// group finishes.
    pub(crate) fn panicked(&self, task: TaskName, payload: Box<dyn Any + Send>) {
        if let Some(core) = self.core() {
            return core.panicked(task, payload);
        }
        trace::panicked(&self.span, &task);
        self.cancel(Cause::Panicked { task });
        let mut slow = lock(&self.slow);
        match self.core() {
            Some(core) => {
                drop(slow);
                core.adopt(None, Some(payload), 0);
            }
            None => {
                slow.get_or_insert_default().panic.get_or_insert(payload);
            }
        }
    }

    /// The rank of a later failure kept now.
    fn later_rank(&self) -> usize {
        if let Some(core) = self.core() {
            return core.later_rank();
        }
        let mut slow = lock(&self.slow);
        if let Some(core) = self.core() {
            drop(slow);
            return core.later_rank();
        }
        let slow = slow.get_or_insert_default();
        slow.ranked += 1;
        slow.ranked - 1
    }

    /// The panic of an unpromoted group, taken once it has finished.
    fn take_panic(&self) -> Option<Box<dyn Any + Send>> {
        lock(&self.slow).as_mut()?.panic.take()
    }
}

#[cfg(all(test, not(loom)))]
mod surface_tests {
    /// The module doc's Operations list is complete: every method of
    /// `Core` visible outside this file is named in it, and nothing it
    /// names as `Core`'s is gone.
    #[test]
    fn every_crate_visible_method_of_core_is_a_listed_operation() {
        let source = include_str!("state.rs");
        let operations = &source[source.find("//! # Operations").unwrap()..];
        let operations = &operations[..operations.find("//! # Deadlock safety").unwrap()];
        let start = source.find("\nimpl Core {\n").unwrap();
        let end = start + source[start..].find("\n}\n").unwrap();
        let methods: Vec<&str> = source[start..end]
            .lines()
            .filter_map(|line| line.trim().strip_prefix("pub(crate) fn "))
            .map(|rest| rest.split(['(', '<']).next().unwrap())
            .collect();
        assert!(methods.len() > 10, "{methods:?}");
        for method in &methods {
            assert!(
                operations.contains(&format!("[`Core::{method}`]")),
                "Core::{method} is crate-visible but not in the module doc's Operations"
            );
        }
        for named in operations.split("[`Core::").skip(1) {
            let name = named.split('`').next().unwrap();
            assert!(
                methods.contains(&name) || name == "link",
                "the Operations list names Core::{name}, which is not crate-visible"
            );
        }
    }
}

#[cfg(all(test, not(loom)))]
mod place_tests {
    use super::Place;
    use crate::error::{Cause, TaskName};
    use crate::state::Settings;

    fn root() -> Place {
        Place::new(Settings::default())
    }

    #[test]
    fn a_root_group_starts_without_a_core_and_keeps_its_first_cause() {
        let inline = root();
        assert!(
            inline.core().is_none(),
            "with or without the tracing feature"
        );
        assert!(!inline.is_cancelled());
        assert!(inline.cancel(Cause::Shutdown {
            by: TaskName::new("a")
        }));
        assert!(!inline.cancel(Cause::Dropped));
        assert!(inline.is_cancelled());
        assert!(inline.cause().unwrap().is_shutdown());
    }

    #[test]
    fn promotion_moves_the_cause_and_later_cancellations_go_to_the_core() {
        let inline = root();
        assert!(inline.cancel_failed(TaskName::new("x")));
        let core = inline.promote();
        assert!(matches!(core.cause(), Some(Cause::Failed { .. })));
        assert!(!inline.cancel(Cause::Dropped));
        assert!(matches!(inline.cause(), Some(Cause::Failed { .. })));
        assert!(std::ptr::eq(inline.promote(), core), "promoted once");
    }

    #[test]
    fn a_cancellation_after_promotion_reaches_the_core() {
        let inline = root();
        let core = std::sync::Arc::clone(inline.promote());
        assert!(!core.is_cancelled());
        assert!(inline.cancel(Cause::Dropped));
        assert_eq!(core.cause(), Some(Cause::Dropped));
        assert!(inline.is_cancelled());
    }

    /// A group born with a core (`Place::born`) promotes to it: no second
    /// core is made into `Place::core`, and the one it has is the one every
    /// accessor reads.
    #[test]
    fn a_group_born_with_a_core_promotes_to_that_core() {
        let born = Place::new(Settings {
            core: true,
            ..Settings::default()
        });
        let core = std::sync::Arc::clone(born.core().expect("a core from birth"));
        assert!(std::ptr::eq(born.promote(), born.core().unwrap()));
        assert!(std::sync::Arc::ptr_eq(born.promote(), &core));
        assert!(born.core.get().is_none(), "a second core was made");
        assert!(born.cancel(Cause::Dropped));
        assert_eq!(core.cause(), Some(Cause::Dropped));
    }

    /// A cancellation racing a promotion (a `&BranchCtx` lent to a scoped
    /// thread) is never lost: it lands inline before the core is
    /// published, and moves with the rest, or in the core after.
    #[test]
    fn a_cancellation_racing_a_promotion_is_not_lost() {
        for _ in 0..200 {
            let inline = root();
            std::thread::scope(|s| {
                s.spawn(|| inline.cancel(Cause::Dropped));
                s.spawn(|| {
                    inline.promote();
                });
            });
            assert_eq!(inline.promote().cause(), Some(Cause::Dropped));
        }
    }
}
