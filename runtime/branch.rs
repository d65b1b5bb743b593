//! The futures that run one branch body: wait for its start, poll the body,
//! catch a panic, then complete: record an error, hand the `limit` permit
//! back. Every kind of branch (in-task, `#[spawn]`, `#[blocking]`, a fan-out
//! item, a `ctx.spawn` task, a `Group`'s task) is built by the one recipe
//! ([`unit()`], [`task_unit`], [`spawn_unit`], [`blocking_unit`],
//! [`item_unit`]: its span, its ambient group, its guard), is polled by the
//! one guarded poll ([`poll_guarded`]), and completes through
//! [`complete_failure`].
//!
//! Hand-written rather than `async fn`s so that the body's state is stored
//! once: nested `async fn`s that take a future and await it keep a copy of
//! it per level, and a group future grew to five times its bodies.

use std::any::Any;
use std::cell::Cell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use crate::echo;
use crate::error::{Census, TaskName};
use crate::limit::{self, Permit, Start};
use crate::state::{self, Core, State};
use crate::sync::Arc;
use crate::tasks::{Joined, Task};
use crate::trace;

/// Where a failing branch's error goes: the typed slot of the group's
/// driver, or, for a branch that is its own tokio task and so cannot borrow
/// the driver, boxed into the core ([`Boxed`]).
pub(crate) trait Record<E> {
    /// `echoed`: the body was handed a `Cancelled` (echo.rs).
    fn fail(&self, owner: &impl Owner, task: TaskName, error: E, echoed: bool);

    /// `task` panicked: its group records it, unless the record is a
    /// policy that takes it ([`Policy`]: a supervised pool's `catch_panics`).
    #[inline]
    fn panicked(&self, owner: &impl Owner, task: TaskName, payload: Box<dyn Any + Send>) {
        owner.panicked(task, payload);
    }
}

impl<E> Record<E> for &State<E> {
    fn fail(&self, _owner: &impl Owner, task: TaskName, error: E, echoed: bool) {
        State::fail(self, task, error, echoed);
    }
}

/// The record of a `Group`'s own task, whose error is its outcome
/// (group.rs): `verdict` records the failure in the group and says where
/// the error goes once the group finishes (`join_next` may take it
/// before), and the error waits here, with that verdict, for the task to
/// hand it over ([`Kept::take`]). A closure, as group.rs is a layer above
/// this one (tests/layers.rs).
pub(crate) struct Kept<E, V, F> {
    verdict: F,
    kept: Cell<Option<(E, V)>>,
}

impl<E, V, F: Fn(&Core, TaskName, bool) -> V> Kept<E, V, F> {
    pub(crate) fn new(verdict: F) -> Self {
        Kept {
            verdict,
            kept: Cell::new(None),
        }
    }

    /// The error of the failure recorded, with its verdict.
    pub(crate) fn take(&self) -> Option<(E, V)> {
        self.kept.take()
    }
}

impl<E, V, F: Fn(&Core, TaskName, bool) -> V> Record<E> for Kept<E, V, F> {
    fn fail(&self, owner: &impl Owner, task: TaskName, error: E, echoed: bool) {
        let verdict = (self.verdict)(owner.core(), task, echoed);
        self.kept.set(Some((error, verdict)));
    }
}

/// A record whose policy its caller writes, as closures: a pool's
/// (pool.rs, a layer above this one: tests/layers.rs), whose handler may
/// take a task's error or panic instead of its group.
pub(crate) struct Policy<F, P> {
    pub(crate) fail: F,
    pub(crate) panicked: P,
}

impl<E, F, P> Record<E> for Policy<F, P>
where
    F: Fn(&Core, TaskName, E, bool),
    P: Fn(&Core, TaskName, Box<dyn Any + Send>),
{
    fn fail(&self, owner: &impl Owner, task: TaskName, error: E, echoed: bool) {
        (self.fail)(owner.core(), task, error, echoed);
    }

    fn panicked(&self, owner: &impl Owner, task: TaskName, payload: Box<dyn Any + Send>) {
        (self.panicked)(owner.core(), task, payload);
    }
}

/// Records a `#[spawn]` branch's error in its core: no `Arc` around the
/// driver's typed slot just for the branches that run as tasks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Boxed;

impl<E: Send + 'static> Record<E> for Boxed {
    fn fail(&self, owner: &impl Owner, task: TaskName, error: E, echoed: bool) {
        owner.core().fail_boxed(task, error, echoed);
    }
}

/// The one completion step of a failure: its error is recorded
/// (cancelling the group) before its permit is handed back, so whoever
/// takes the permit next sees the cancellation, as in Go.
#[inline]
pub(crate) fn complete_failure<E, P>(
    record: &impl Record<E>,
    owner: &impl Owner,
    task: &impl Who,
    error: E,
    permit: &mut Option<P>,
    echoed: bool,
) -> Option<P> {
    record.fail(owner, task.name(), error, echoed);
    permit.take()
}

/// The completion of a `#[blocking]` body's `output` (a body that is a
/// future completes in [`poll_guarded`]): a value goes with its permit, a
/// failure through [`complete_failure`].
// `#[inline]`: a few lines on the way out of every blocking body and item,
// where a call cost as much.
#[inline]
pub(crate) fn complete<T, E, P>(
    record: &impl Record<E>,
    owner: &impl Owner,
    task: &impl Who,
    output: Result<T, E>,
    permit: &mut Option<P>,
    echoed: bool,
) -> (Option<T>, Option<P>) {
    match output {
        Ok(value) => (Some(value), permit.take()),
        Err(error) => (
            None,
            complete_failure(record, owner, task, error, permit, echoed),
        ),
    }
}

/// How a branch holds its group: its own reference, or, for an in-task
/// branch or item, a borrow of the scope's (no reference count to take and
/// give back per item), or of its inline state (`Place`, state.rs).
pub(crate) trait Owner {
    /// The group's core (promoting an inline group: only what needs one
    /// calls it).
    fn core(&self) -> &Arc<Core>;

    /// The group's span.
    fn span(&self) -> &trace::Span {
        Core::span(self.core())
    }

    /// `task` panicked.
    fn panicked(&self, task: TaskName, payload: Box<dyn std::any::Any + Send>) {
        Core::panicked(self.core(), task, payload);
    }

    /// `poll()`, with whatever ambient group the body sees while it is
    /// polled: the poller's (an in-task body's driver sets its group
    /// around all of its branches), unless the owner is [`Ambient`].
    #[inline]
    fn enter<R>(&self, poll: impl FnOnce() -> R) -> R {
        poll()
    }
}

/// The group of a body that is its own tokio task (a `#[spawn]` branch or
/// item, a `ctx.spawn` task, a `Group`'s or a pool's task), or polled as
/// one (`Spawn::inline`): set as the ambient group around each of its polls
/// (so that a group created inside it becomes its child, semantic 6),
/// from this reference, which the body's guard holds anyway (or a borrow
/// of it, `C = &Arc<Core>`).
#[derive(Debug)]
pub(crate) struct Ambient<C = Arc<Core>>(pub(crate) C);

impl<C: Owner> Owner for Ambient<C> {
    fn core(&self) -> &Arc<Core> {
        self.0.core()
    }

    #[inline]
    fn enter<R>(&self, poll: impl FnOnce() -> R) -> R {
        state::in_ambient(self.0.core(), poll)
    }
}

/// An in-task branch: its group is its scope's, whose state it borrows
/// (`Place`, state.rs), with a core or not yet.
impl<E> Owner for &State<E> {
    fn core(&self) -> &Arc<Core> {
        self.place.promote()
    }

    fn span(&self) -> &trace::Span {
        self.place.span()
    }

    fn panicked(&self, task: TaskName, payload: Box<dyn std::any::Any + Send>) {
        self.place.panicked(task, payload);
    }
}

impl Owner for Arc<Core> {
    fn core(&self) -> &Arc<Core> {
        self
    }
}

impl Owner for &Arc<Core> {
    fn core(&self) -> &Arc<Core> {
        self
    }
}

/// The name of an in-task branch, as its ctx lends it (`__private::Lent`):
/// the one the macro wrote, or a borrow of its ctx's; and of a `#[spawn]`
/// branch (`__private::SpawnName`). A `TaskName` is made only when one is
/// handed out (a failure, a panic, a census).
#[derive(Debug, Clone)]
pub(crate) enum Named<'s> {
    Static(&'static str),
    Borrowed(&'s TaskName),
    /// A ctx handed over by value whose name was not a plain `&'static str`.
    /// An `Arc`, not a `Box`, though it has one owner: its drop is a
    /// decrement inline and the rest out of line, where a `Box`'s dropped
    /// the name inline, and dropping a `Named` (every in-task branch does)
    /// was then a call.
    Owned(Arc<TaskName>),
}

impl Named<'_> {
    pub(crate) fn owned(task: TaskName) -> Self {
        match task.as_static() {
            Some(name) => Named::Static(name),
            None => Named::Owned(Arc::new(task)),
        }
    }
}

impl Who for Named<'_> {
    fn name(&self) -> TaskName {
        match self {
            Named::Static(name) => TaskName::new(*name),
            Named::Borrowed(task) => TaskName::clone(task),
            Named::Owned(task) => TaskName::clone(task),
        }
    }

    fn span(&self, group: &trace::Span) -> trace::Span {
        match self {
            Named::Static(name) => trace::branch(group, &TaskName::new(*name)),
            Named::Borrowed(task) => trace::branch(group, task),
            Named::Owned(task) => trace::branch(group, task),
        }
    }
}

/// How a branch names itself when it fails or panics: a [`TaskName`], or,
/// for a fan-out item, its branch's name and its index (24 bytes where a
/// `TaskName` takes 40, in every `#[spawn]` item; an in-task item keeps
/// neither, its fan-out names it).
pub(crate) trait Who {
    fn name(&self) -> TaskName;
    /// Its span, a child of its group's `group` (trace.rs): from a borrow of
    /// its name, which a `ctx.spawn` task may have allocated.
    fn span(&self, group: &trace::Span) -> trace::Span;
}

impl Who for TaskName {
    fn name(&self) -> TaskName {
        self.clone()
    }

    fn span(&self, group: &trace::Span) -> trace::Span {
        trace::branch(group, self)
    }
}

/// The name of an item of a fan-out: `name[index]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ItemName {
    pub(crate) name: &'static str,
    pub(crate) index: usize,
}

impl Who for ItemName {
    fn name(&self) -> TaskName {
        TaskName::indexed(self.name, self.index)
    }

    fn span(&self, group: &trace::Span) -> trace::Span {
        trace::branch(group, &self.name())
    }
}

/// What happens to a branch still running when `grace` expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterGrace {
    /// Dropped where it stands (an in-task body).
    Drop,
    /// Still awaited: aborted tasks until they have stopped, blocking
    /// bodies until they return.
    Wait,
}

/// A branch future that knows how to stop when `grace` expires.
pub(crate) trait Stop {
    /// Aborts what can be aborted; says whether the future is then dropped
    /// or still awaited.
    fn stop(self: Pin<&mut Self>) -> AfterGrace;
    /// Adds itself to `census` if it still runs (what runs in it, for a
    /// fan-out). Only called when asked, or when the deadline passes or
    /// `grace` expires: nothing is kept for it meanwhile.
    fn running(&self, census: &mut Census);
}

/// Where a branch is in its life.
enum Phase {
    /// Waiting for a `limit` permit, or for the cancellation, whichever first.
    Queued(Pin<Box<dyn Future<Output = Option<Permit>> + Send>>),
    /// With its permit, and whether a `Cancelled` was handed to the body
    /// (echo.rs): a flag in the phase rather than beside it, where it
    /// took a word in every branch and item.
    Running(Option<Permit>, bool),
    Done,
}

pin_project! {
    /// A unit of work as the recipe builds it ([`unit()`]): its body, and
    /// its [`Head`] (its group, its name, where it is in its life). Run by
    /// [`Run`], as its start allows, through [`Head::run`].
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub(crate) struct Guarded<F, C = Arc<Core>, N = TaskName> {
        head: Head<C, N>,
        #[pin]
        body: F,
    }
}

/// Everything of a unit of work but its body: its group, its name, where it
/// is in its life. Nothing of it is generic over the body, which is a type
/// of its own for every branch of every group (benches/compile-time.sh).
pub(crate) struct Head<C = Arc<Core>, N = TaskName> {
    core: C,
    task: N,
    phase: Phase,
}

impl<F, C, N: Who> std::fmt::Debug for Guarded<F, C, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("task", &self.head.task.name())
            .finish_non_exhaustive()
    }
}

impl<F: Future, C: Owner, N> Guarded<F, C, N> {
    // `#[inline]`: once per branch and per fan-out item, where the call
    // and the moves of the body into and out of it cost more than its body.
    // Private: every unit of work is built by the recipe ([`unit()`]).
    #[inline]
    fn new(core: C, task: N, body: F, start: Start) -> Self {
        Guarded {
            head: Head::new(core, task, start),
            body,
        }
    }
}

impl<C: Owner, N> Head<C, N> {
    // `#[inline]`: see `Guarded::new`.
    #[inline]
    fn new(core: C, task: N, start: Start) -> Self {
        let phase = match start {
            Start::Refused => Phase::Done,
            Start::Now(permit) => Phase::Running(permit, false),
            Start::Queued => queued(core.core()),
        };
        Head { core, task, phase }
    }
}

impl<C, N: Who> Head<C, N> {
    /// [`Stop::running`] for a unit that has not been dropped.
    pub(crate) fn running(&self, census: &mut Census) {
        if !matches!(self.phase, Phase::Done) {
            census.add(&self.task.name(), None);
        }
    }
}

impl<'s, E> Head<&'s State<E>, Named<'s>> {
    /// An in-task branch's head and the span to run its body in: the
    /// recipe's first half ([`unit()`]), made once per kind of group
    /// rather than once per body.
    // `#[inline]`: see [`Head::run`].
    #[inline]
    pub(crate) fn in_task(state: &'s State<E>, task: Named<'s>) -> (Self, trace::Span) {
        // No `limit` without a core: a written branch starts now.
        let start = match state.place.core() {
            Some(core) => core.start_written(),
            None => Start::Now(None),
        };
        let span = if trace::ENABLED {
            task.span(state.span())
        } else {
            trace::none()
        };
        (Head::new(state, task, start), span)
    }
}

impl<F: Future, C, N> Guarded<trace::Traced<F>, C, N> {
    /// The recipe's second half ([`unit()`]): `body` in its span.
    // `#[inline]`: see `Guarded::new`.
    #[inline]
    pub(crate) fn with_head(head: Head<C, N>, span: trace::Span, body: F) -> Self {
        Guarded {
            head,
            body: trace::instrument(span, body),
        }
    }
}

impl<F, C, N> Guarded<F, C, N> {
    /// Its part that is not the body.
    pub(crate) fn head(&self) -> &Head<C, N> {
        &self.head
    }
}

impl<'s, F, E, T> Guarded<F, &'s State<E>, Named<'s>>
where
    F: Future<Output = Result<T, E>>,
{
    /// [`Head::value`] for an in-task branch (`InTaskLeaf`, engine.rs),
    /// which drops its unit as soon as this is `Ready`.
    // `#[inline]`: see [`Head::run`].
    #[inline]
    pub(crate) fn in_task_value(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.project();
        this.head.in_task_value(this.body, cx)
    }
}

impl<'s, E> Head<&'s State<E>, Named<'s>> {
    /// [`Head::value`] for an in-task branch, whose unit is dropped as soon
    /// as this is `Ready`, its permit with it (after its error or panic is
    /// recorded, as [`poll_guarded`] does): a running one's phase is left
    /// as it is, where [`Head::run`] sets it `Done`.
    // `#[inline]`: see [`Head::run`].
    #[inline]
    fn in_task_value<T>(
        &mut self,
        body: Pin<&mut dyn Future<Output = Result<T, E>>>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<T>> {
        let Phase::Running(_, echoed) = &mut self.phase else {
            let state = self.core;
            return self.value(&state, body, cx);
        };
        poll_in_task(self.core, &self.task, echoed, body, cx)
    }
}

/// One poll (or run) of a body: its panic caught, and whether a
/// `Cancelled` was handed to it meanwhile (echo.rs), collected even when it
/// panicked.
#[inline]
pub(crate) fn caught<R>(f: impl FnOnce() -> R) -> (std::thread::Result<R>, bool) {
    let collect = echo::Collect::start();
    let result = catch_unwind(AssertUnwindSafe(f));
    (result, collect.finish())
}

/// The one guarded poll of a unit of work: `poll` (its body's) inside
/// `owner`'s ambient group, its panic caught, whether a `Cancelled` was
/// handed to it collected into `echoed` (echo.rs), and, once it has ended,
/// completed: its error recorded by `record` before `permit` is handed
/// back ([`complete_failure`]), or its panic recorded by `record` before
/// the permit is dropped.
///
/// Every poll of a body goes through it: an in-task branch's
/// ([`poll_in_task`]), a `#[spawn]` task's ([`SpawnUnit`]), a fan-out
/// item's ([`Bare`]), a unit that may wait for a permit ([`Head::run`],
/// which keeps its phase around it), a pool's task (pool.rs, under its
/// [`Policy`]). The one shape left beside it runs no future: a
/// `#[blocking]` body runs once, on another thread, and is completed there
/// ([`blocking_item`]) or where its join handle is polled
/// ([`RunBlocking`]).
///
/// `permit`: what the unit holds while it runs, `()` for a unit that never
/// holds one: an `Option<Permit>` there, always `None`, cost the trivial
/// group 37 instructions (238 -> 275, benches/instructions.sh).
// Inlined, `always` in optimized builds: each caller is a path of its own
// whose instructions were measured (benches/instructions.sh), and the body
// is then called directly; see [`poll_in_task`].
#[allow(clippy::inline_always, reason = "measured: see poll_in_task")]
#[cfg_attr(debug_assertions, inline)]
#[cfg_attr(not(debug_assertions), inline(always))]
pub(crate) fn poll_guarded<T, E, P>(
    owner: &impl Owner,
    record: &impl Record<E>,
    task: &impl Who,
    echoed: &mut bool,
    permit: &mut Option<P>,
    poll: impl FnOnce() -> Poll<Result<T, E>>,
) -> Poll<(Option<T>, Option<P>)> {
    let (polled, handed) = owner.enter(|| caught(poll));
    *echoed |= handed;
    match polled {
        Ok(Poll::Pending) => Poll::Pending,
        // Matched here to the end, not handed to [`complete`]: through it,
        // the in-task fan-out's item took 339 instructions where it takes
        // 332 (benches/instructions.sh).
        Ok(Poll::Ready(Ok(value))) => Poll::Ready((Some(value), permit.take())),
        Ok(Poll::Ready(Err(error))) => Poll::Ready((
            None,
            complete_failure(record, owner, task, error, permit, *echoed),
        )),
        Err(payload) => {
            // Recorded (cancelling the group) before the permit is handed
            // back, as a failure is: the unit it wakes, maybe on another
            // thread, must not start. The permit is not handed on.
            record.panicked(owner, task.name(), payload);
            drop(permit.take());
            Poll::Ready((None, None))
        }
    }
}

/// The poll of a running in-task branch, whose unit is dropped as soon as
/// this is `Ready` (after its error or panic is recorded, as
/// [`poll_guarded`] does): [`Head::in_task_value`]'s, that of a branch of a
/// group without `limit`, which has no phase (`FreeLeaf`, engine.rs), and
/// that of a `#[spawn]` branch run inline (`InlineLeaf`, engine.rs).
/// `echoed`: whether a `Cancelled` was handed to the body (echo.rs).
// Inlined, as [`Head::run`] is, so that the body is called directly; and
// `always` in optimized builds: with `#[inline]` alone LLVM inlined it in
// one bench binary and not in another (the trivial group took 404
// instructions where it took 319, benches/README.md), and left it a call
// once an inline `#[spawn]` branch was a second caller of the same output
// type (313 -> 351, benches/instructions.sh). Unoptimized, a plain
// `#[inline]`: compiled once all the same.
#[allow(clippy::inline_always, reason = "measured: see the comment above")]
#[cfg_attr(debug_assertions, inline)]
#[cfg_attr(not(debug_assertions), inline(always))]
pub(crate) fn poll_in_task<T, E>(
    state: &State<E>,
    task: &Named<'_>,
    echoed: &mut bool,
    body: Pin<&mut dyn Future<Output = Result<T, E>>>,
    cx: &mut Context<'_>,
) -> Poll<Option<T>> {
    let polled = poll_guarded(&state, &state, task, echoed, &mut None::<()>, || {
        body.poll(cx)
    });
    // Not `Poll::map`: see [`Run`]'s poll.
    match polled {
        Poll::Ready((value, _)) => Poll::Ready(value),
        Poll::Pending => Poll::Pending,
    }
}

impl<C: Owner, N: Who> Head<C, N> {
    /// A branch's value, its error recorded by `record` and its permit
    /// handed back at once (not generic over the body: see [`Head::run`]).
    // `#[inline]`: see [`Head::run`].
    #[inline]
    fn value<T, E>(
        &mut self,
        record: &impl Record<E>,
        body: Pin<&mut dyn Future<Output = Result<T, E>>>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<T>> {
        let (value, _permit) = ready!(self.run(record, body, cx));
        Poll::Ready(value)
    }
}

/// A branch waiting for its `limit` permit: out of line, so that the
/// constructor of every branch and item stays small enough to inline.
#[cold]
#[inline(never)]
fn queued(core: &Arc<Core>) -> Phase {
    Phase::Queued(Box::pin(admit(Arc::clone(core))))
}

/// A permit once one is free, `None` if the group is cancelled first.
async fn admit(core: Arc<Core>) -> Option<Permit> {
    limit::admit(core.node(), core.limit()?).await
}

/// The one recipe for a unit of work polled by its group's driver (an
/// in-task branch or fan-out item): its body inside its `tracing` span (with
/// the feature), guarded by `start`. Its ambient group is the driver's, set
/// once around all of its in-task branches (engine.rs); a body that is its
/// own tokio task sets its own ([`task_unit`]).
// `#[inline]`: see `Guarded::new`.
#[inline]
pub(crate) fn unit<F: Future, C: Owner, N: Who>(
    core: C,
    task: N,
    body: F,
    start: Start,
) -> Guarded<trace::Traced<F>, C, N> {
    // Without the feature no span is made: the group's is not even looked up.
    let span = if trace::ENABLED {
        task.span(core.span())
    } else {
        trace::none()
    };
    Guarded::new(core, task, trace::instrument(span, body), start)
}

pin_project! {
    /// An in-task fan-out item: its body, and nothing its fan-out holds
    /// for it (its group, the branch's name, the item's index, its `limit`
    /// permit, whether it was handed a `Cancelled`), which the fan-out
    /// hands to each poll ([`Bare::poll_as`]). A [`Guarded`] kept them in
    /// every item, and with its ctx a blocked item held its group and its
    /// name twice (benches/memory.rs). An item starts with its permit in
    /// hand: never queued.
    ///
    /// Once it has ended it holds nothing: its body, an `async` block, let
    /// go of everything it held as it returned (or unwound), and its span
    /// is closed then. So its fan-out may keep it until the slot's next
    /// item replaces it, where an `Option` around every body to drop it at
    /// once took a word more per item.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub(crate) struct Bare<F> {
        // Its own `tracing` span (entered around each poll), not an
        // `Instrumented` body: that one would keep the span open as long
        // as the ended item is kept.
        span: trace::Span,
        #[pin]
        body: F,
    }
}

impl<F> Bare<F> {
    /// Its span: closed once it has ended.
    pub(crate) fn span(&self) -> &trace::Span {
        &self.span
    }
}

impl<F, T, E> Bare<F>
where
    F: Future<Output = Result<T, E>>,
{
    /// Polls the body as the item `task` of `owner`'s group, whose error
    /// `record` records, holding `permit`, `echoed` if a `Cancelled` was
    /// handed to it as it ran (echo.rs; set by this poll if one is): once
    /// it has ended, its value if it gave one and the permit, taken from
    /// `permit` (dropped if it panicked). Not to be polled again then.
    // `#[inline]`: see [`Head::run`].
    #[inline]
    pub(crate) fn poll_as(
        self: Pin<&mut Self>,
        record: &impl Record<E>,
        owner: &impl Owner,
        task: &impl Who,
        permit: &mut Option<Permit>,
        echoed: &mut bool,
        cx: &mut Context<'_>,
    ) -> Poll<(Option<T>, Option<Permit>)> {
        let this = self.project();
        let ended = poll_bare(
            this.span, echoed, this.body, record, owner, task, permit, cx,
        );
        if ended.is_ready() {
            *this.span = trace::none();
        }
        ended
    }
}

/// [`Bare::poll_as`], not generic over the body (see [`Head::run`]).
// `#[inline]`: see [`Head::run`].
#[inline]
#[allow(
    clippy::too_many_arguments,
    reason = "Bare::poll_as's, and its two fields"
)]
fn poll_bare<T, E>(
    span: &trace::Span,
    echoed: &mut bool,
    mut body: Pin<&mut dyn Future<Output = Result<T, E>>>,
    record: &impl Record<E>,
    owner: &impl Owner,
    task: &impl Who,
    permit: &mut Option<Permit>,
    cx: &mut Context<'_>,
) -> Poll<(Option<T>, Option<Permit>)> {
    poll_guarded(owner, record, task, echoed, permit, || {
        let _span = trace::enter(span);
        body.as_mut().poll(cx)
    })
}

/// The recipe ([`unit()`]) for an in-task fan-out item: its body, with its
/// span.
// `#[inline]`: see `Guarded::new`.
#[inline]
pub(crate) fn item_unit<F: Future>(core: &Arc<Core>, task: ItemName, body: F) -> Bare<F> {
    let span = if trace::ENABLED {
        task.span(core.span())
    } else {
        trace::none()
    };
    Bare { span, body }
}

/// The recipe ([`unit()`]) for a pool's task (pool.rs): its body in its
/// span. The pool keeps the rest itself (its group, the ambient one as the
/// task is polled; the task's name; its slot of the pool's `limit`), and
/// polls it with [`poll_guarded`] under its failure policy ([`Policy`]).
pub(crate) fn pool_unit<F: Future>(core: &Arc<Core>, task: &TaskName, body: F) -> trace::Traced<F> {
    let span = if trace::ENABLED {
        task.span(core.span())
    } else {
        trace::none()
    };
    trace::instrument(span, body)
}

/// [`unit()`] for a body that is its own tokio task (a `#[spawn]` branch or
/// item, a `ctx.spawn` task, a `Group`'s task), or polled as one
/// (`Spawn::inline`): its group is also the ambient one as it is polled
/// ([`Ambient`]).
pub(crate) fn task_unit<F: Future, N: Who>(
    core: Arc<Core>,
    task: N,
    body: F,
    start: Start,
) -> Guarded<trace::Traced<F>, Ambient, N> {
    unit(Ambient(core), task, body, start)
}

pin_project! {
    /// A `#[spawn]` body of a group without `limit`, as its task runs it
    /// ([`spawn_unit`]): it starts at once and holds no permit, so it keeps
    /// no phase (a [`Run`] of a [`task_unit`] keeps one, for a group whose
    /// task may wait for a permit), only whether a `Cancelled` was handed
    /// to it (echo.rs). Its group is the ambient one as it is polled, and
    /// gets its error, boxed ([`Boxed`]), or its panic.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub(crate) struct SpawnUnit<F> {
        core: Ambient,
        task: Named<'static>,
        echoed: bool,
        #[pin]
        body: F,
    }
}

/// The recipe ([`unit()`]) for a `#[spawn]` body of a group without
/// `limit`: [`SpawnUnit`].
// `#[inline]`: see `Guarded::new`.
#[inline]
pub(crate) fn spawn_unit<F: Future>(
    core: Arc<Core>,
    task: Named<'static>,
    body: F,
) -> SpawnUnit<trace::Traced<F>> {
    let span = if trace::ENABLED {
        task.span(core.span())
    } else {
        trace::none()
    };
    SpawnUnit {
        core: Ambient(core),
        task,
        echoed: false,
        body: trace::instrument(span, body),
    }
}

impl<F, T, E> Future for SpawnUnit<F>
where
    F: Future<Output = Result<T, E>>,
    E: Send + 'static,
{
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.project();
        poll_spawned(this.core, this.task, this.echoed, this.body, cx)
    }
}

/// [`SpawnUnit`]'s poll, not generic over the body (see [`Head::run`]).
// `#[inline]`: see [`Head::run`].
#[inline]
fn poll_spawned<T, E: Send + 'static>(
    core: &Ambient,
    task: &Named<'static>,
    echoed: &mut bool,
    body: Pin<&mut dyn Future<Output = Result<T, E>>>,
    cx: &mut Context<'_>,
) -> Poll<Option<T>> {
    match poll_guarded(core, &Boxed, task, echoed, &mut None::<()>, || {
        body.poll(cx)
    }) {
        Poll::Ready((value, _)) => Poll::Ready(value),
        Poll::Pending => Poll::Pending,
    }
}

/// [`unit()`] for a `#[blocking]` body, `job`: its span is entered on the
/// blocking thread, around the call.
pub(crate) fn blocking_unit<S, J, R>(
    record: S,
    core: Arc<Core>,
    task: TaskName,
    job: J,
    start: Start,
) -> RunBlocking<S, impl FnOnce() -> R + Send + 'static, R>
where
    J: FnOnce() -> R + Send + 'static,
{
    let span = task.span(core.span());
    let job = move || {
        let _span = trace::enter(&span);
        job()
    };
    RunBlocking::new(record, core, task, job, start)
}

/// The recipe for a `#[blocking] for` item, called on its blocking thread:
/// `job` inside its span, its panic caught, and completed there, its error
/// recorded in the core (cancelling the group) before its value is handed
/// on; so the group is not woken to complete each item (fanout.rs's `Jobs`).
pub(crate) fn blocking_item<J, T, E>(core: &Arc<Core>, task: &TaskName, job: J) -> Option<T>
where
    J: FnOnce() -> Result<T, E>,
    E: Send + 'static,
{
    let span = task.span(core.span());
    let _span = trace::enter(&span);
    let (output, echoed) = caught(job);
    match output {
        Ok(output) => complete(&Boxed, core, task, output, &mut None::<()>, echoed).0,
        Err(payload) => {
            core.panicked(task.clone(), payload);
            None
        }
    }
}

pin_project! {
    /// A branch: `Some(value)` on `Ok`; its error is recorded by `S`.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub(crate) struct Run<S, F, C = Arc<Core>, N = TaskName> {
        record: S,
        #[pin]
        inner: Guarded<F, C, N>,
    }
}

impl<S, F, C, N: Who> std::fmt::Debug for Run<S, F, C, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl<S, F, C, N> Run<S, F, C, N> {
    pub(crate) fn new(record: S, inner: Guarded<F, C, N>) -> Self {
        Run { record, inner }
    }

    /// Its record: what a [`Kept`] keeps, once it has ended.
    pub(crate) fn record(&self) -> &S {
        &self.record
    }
}

/// A branch future that hands its `limit` permit back when it ends, for a
/// fan-out to start its next item with, instead of dropping it.
pub(crate) trait Item {
    /// The branch's value.
    type Value;
    /// Its value if it gave one, and the permit it held.
    fn poll_item(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<(Option<Self::Value>, Option<Permit>)>;
}

impl<S, F, C, N, T, E> Item for Run<S, F, C, N>
where
    S: Record<E>,
    F: Future<Output = Result<T, E>>,
    C: Owner,
    N: Who,
{
    type Value = T;

    fn poll_item(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(Option<T>, Option<Permit>)> {
        let this = self.project();
        let inner = this.inner.project();
        inner.head.run(this.record, inner.body, cx)
    }
}

impl<C: Owner, N: Who> Head<C, N> {
    /// [`Run`]'s poll, with the body behind a `dyn` pointer: compiled once
    /// per output type, where each body is a type of its own and what is
    /// generic over it is compiled again for every branch of every group
    /// (benches/compile-time.sh). Its phase around [`poll_guarded`]: a
    /// queued unit waits for its permit first; a refused or ended one is
    /// not polled.
    // `#[inline]`: an optimized build inlines it where the body's type is
    // known, and calls the body directly; unoptimized, it is compiled once
    // all the same.
    #[inline]
    fn run<T, E>(
        &mut self,
        record: &impl Record<E>,
        mut body: Pin<&mut dyn Future<Output = Result<T, E>>>,
        cx: &mut Context<'_>,
    ) -> Poll<(Option<T>, Option<Permit>)> {
        let Head { core, task, phase } = self;
        if let Phase::Queued(admit) = phase {
            *phase = match ready!(admit.as_mut().poll(cx)) {
                Some(permit) => Phase::Running(Some(permit), false),
                None => Phase::Done,
            };
        }
        let Phase::Running(permit, echoed) = phase else {
            return Poll::Ready((None, None));
        };
        let done = ready!(poll_guarded(&*core, record, &*task, echoed, permit, || {
            body.as_mut().poll(cx)
        }));
        *phase = Phase::Done;
        Poll::Ready(done)
    }
}

impl<S, F, C, N, T, E> Future for Run<S, F, C, N>
where
    S: Record<E>,
    F: Future<Output = Result<T, E>>,
    C: Owner,
    N: Who,
{
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        // Not `Poll::map`: a closure per body (see [`Head::run`]).
        match self.poll_item(cx) {
            Poll::Ready((value, _permit)) => Poll::Ready(value),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S, F, C, N: Who> Stop for Run<S, F, C, N> {
    fn stop(self: Pin<&mut Self>) -> AfterGrace {
        AfterGrace::Drop
    }

    fn running(&self, census: &mut Census) {
        self.inner.head.running(census);
    }
}

pin_project! {
    /// A `#[spawn]` branch run in the group's own task (`Spawn::inline`):
    /// dropped where it stands when `grace` expires, and a panic of its
    /// destructors then is the group's, as that of an aborted task is
    /// (resumed once every branch has returned), not one let out of the
    /// group's poll while its other branches still run.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub(crate) struct Inline<R, C = Arc<Core>> {
        #[pin]
        run: Option<R>,
        core: C,
        task: Named<'static>,
    }
    impl<R, C> PinnedDrop for Inline<R, C> {
        fn drop(this: Pin<&mut Self>) {
            // The group's future is dropped: a task it aborts would panic
            // into its join handle, dropped with it, so this panic goes
            // nowhere either.
            let mut run = this.project().run;
            let _ = catch_unwind(AssertUnwindSafe(|| run.set(None)));
        }
    }
}

impl<R, C> std::fmt::Debug for Inline<R, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inline")
            .field("task", &self.task)
            .finish_non_exhaustive()
    }
}

impl<R, C> Inline<R, C> {
    /// `core`: the scope's, borrowed (the branch lives in the group's
    /// future), as its run's is: no reference count taken and given back.
    pub(crate) fn new(core: C, task: Named<'static>, run: R) -> Self {
        Inline {
            run: Some(run),
            core,
            task,
        }
    }
}

impl<R: Future, C> Future for Inline<R, C> {
    type Output = R::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R::Output> {
        let run = self.project().run.as_pin_mut();
        run.map_or(Poll::Pending, |run| run.poll(cx))
    }
}

impl<R: Stop, C: Owner> Stop for Inline<R, C> {
    fn stop(self: Pin<&mut Self>) -> AfterGrace {
        let this = self.project();
        let mut run = this.run;
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| run.set(None))) {
            this.core.panicked(this.task.name(), payload);
        }
        AfterGrace::Drop
    }

    fn running(&self, census: &mut Census) {
        if let Some(run) = &self.run {
            run.running(census);
        }
    }
}

pin_project! {
    /// A `#[spawn]` branch run where [`Spawn::inline`](crate::__private::Spawn::inline)
    /// placed it: in the group's task, or as a task of its own.
    #[project = PlacedProj]
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    #[derive(Debug)]
    pub(crate) enum Placed<I, S> {
        Inline { #[pin] run: I },
        Spawned { #[pin] run: S },
    }
}

impl<I, S, T> Future for Placed<I, S>
where
    I: Future<Output = Option<T>>,
    S: Future<Output = Option<T>>,
{
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        match self.project() {
            PlacedProj::Inline { run } => run.poll(cx),
            PlacedProj::Spawned { run } => run.poll(cx),
        }
    }
}

impl<I: Stop, S: Stop> Stop for Placed<I, S> {
    fn stop(self: Pin<&mut Self>) -> AfterGrace {
        match self.project() {
            PlacedProj::Inline { run } => run.stop(),
            PlacedProj::Spawned { run } => run.stop(),
        }
    }

    fn running(&self, census: &mut Census) {
        match self {
            Placed::Inline { run } => run.running(census),
            Placed::Spawned { run } => run.running(census),
        }
    }
}

pin_project! {
    /// An [`Item`] as a future whose output carries the permit back.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    #[derive(Debug)]
    pub(crate) struct Keep<R> {
        #[pin]
        item: R,
    }
}

impl<R> Keep<R> {
    pub(crate) fn new(item: R) -> Self {
        Keep { item }
    }
}

impl<R: Item> Future for Keep<R> {
    type Output = (Option<R::Value>, Option<Permit>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().item.poll_item(cx)
    }
}

pin_project! {
    /// `on_error = continue`: the body's result is the branch's value, so
    /// its error cancels nothing. An adapter on the body: every kind of
    /// branch supervises the same way.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    #[derive(Debug)]
    pub(crate) struct Supervise<F> {
        #[pin]
        body: F,
    }
}

impl<F> Supervise<F> {
    pub(crate) fn new(body: F) -> Self {
        Supervise { body }
    }
}

impl<F, T, E> Future for Supervise<F>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<Result<T, E>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().body.poll(cx).map(Ok)
    }
}

pin_project! {
    /// A `#[spawn]` branch: its body as a tokio task. Stopped by the
    /// shutdown rule of tasks.rs: aborted, then still awaited. Its group:
    /// the scope's core, borrowed (the branch lives in the group's future;
    /// its task holds a reference of its own).
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    #[derive(Debug)]
    pub(crate) struct Spawned<T, C = Arc<Core>> {
        task: Task<Option<T>>,
        name: Named<'static>,
        core: C,
    }
}

impl<T: Send + 'static, C> Spawned<T, C> {
    pub(crate) fn new<F>(core: C, name: Named<'static>, run: F) -> Self
    where
        F: Future<Output = Option<T>> + Send + 'static,
    {
        // A `TaskName` only where a task shows one (tokio-console): made
        // and dropped for nothing, it was a call per task.
        Spawned {
            task: Task::spawn(&trace::name_with(|| name.name()), run),
            name,
            core,
        }
    }
}

impl<T, C: Owner> Future for Spawned<T, C> {
    type Output = Option<T>;

    // `#[inline]`: see `Task::poll_join`.
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.project();
        Poll::Ready(match ready!(this.task.poll_join(cx)) {
            Joined::Done(value) => value,
            // A name is made only for a task that did not end on its own.
            joined => this.core.core().joined(&this.name.name(), joined).flatten(),
        })
    }
}

impl<T, C> Stop for Spawned<T, C> {
    fn stop(self: Pin<&mut Self>) -> AfterGrace {
        self.task.abort();
        AfterGrace::Wait
    }

    fn running(&self, census: &mut Census) {
        census.add(&self.name.name(), None);
    }
}

/// Where a blocking body is in its life.
enum Blocking<F, R> {
    Queued(Pin<Box<dyn Future<Output = Option<Permit>> + Send>>, F),
    Ready(F, Option<Permit>),
    // With whether a `Cancelled` was handed to the body (echo.rs).
    Running(Task<(std::thread::Result<R>, bool)>, Option<Permit>),
    Done,
}

/// A `#[blocking]` body on tokio's blocking pool: its value and the
/// `limit` permit it held (see [`Item`]). It cannot be aborted, so `grace`
/// waits for it; if it is dropped, the job runs to its end on its own, with
/// its ctx cancelled.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub(crate) struct RunBlocking<S, F, R> {
    record: S,
    core: Arc<Core>,
    task: TaskName,
    state: Blocking<F, R>,
}

impl<S, F, R> std::fmt::Debug for RunBlocking<S, F, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunBlocking")
            .field("task", &self.task)
            .finish_non_exhaustive()
    }
}

// Nothing in it is pinned: the body is moved out to start, the job is a
// join handle.
impl<S, F, R> Unpin for RunBlocking<S, F, R> {}

impl<S, F, R> RunBlocking<S, F, R> {
    fn new(record: S, core: Arc<Core>, task: TaskName, body: F, start: Start) -> Self {
        let state = match start {
            Start::Refused => Blocking::Done,
            Start::Now(permit) => Blocking::Ready(body, permit),
            Start::Queued => Blocking::Queued(Box::pin(admit(Arc::clone(&core))), body),
        };
        RunBlocking {
            record,
            core,
            task,
            state,
        }
    }
}

impl<S, F, T, E> Item for RunBlocking<S, F, Result<T, E>>
where
    S: Record<E>,
    F: FnOnce() -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    type Value = T;

    fn poll_item(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(Option<T>, Option<Permit>)> {
        let this = self.get_mut();
        loop {
            match std::mem::replace(&mut this.state, Blocking::Done) {
                Blocking::Queued(mut admit, body) => match admit.as_mut().poll(cx) {
                    Poll::Ready(Some(permit)) => this.state = Blocking::Ready(body, Some(permit)),
                    Poll::Ready(None) => return Poll::Ready((None, None)),
                    Poll::Pending => {
                        this.state = Blocking::Queued(admit, body);
                        return Poll::Pending;
                    }
                },
                Blocking::Ready(body, permit) => {
                    let job = Task::spawn_blocking(&trace::name(&this.task), move || caught(body));
                    this.state = Blocking::Running(job, permit);
                }
                Blocking::Running(mut job, permit) => {
                    let Poll::Ready(joined) = job.poll_join(cx) else {
                        this.state = Blocking::Running(job, permit);
                        return Poll::Pending;
                    };
                    let (core, task) = (&this.core, &this.task);
                    return Poll::Ready(match core.joined(task, joined) {
                        Some((Ok(output), echoed)) => {
                            complete(&this.record, core, task, output, &mut { permit }, echoed)
                        }
                        Some((Err(payload), _)) => {
                            core.panicked(task.clone(), payload);
                            (None, permit)
                        }
                        None => (None, permit),
                    });
                }
                Blocking::Done => return Poll::Ready((None, None)),
            }
        }
    }
}

impl<S, F, T, E> Future for RunBlocking<S, F, Result<T, E>>
where
    S: Record<E>,
    F: FnOnce() -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.poll_item(cx).map(|(value, _permit)| value)
    }
}

impl<S, F, R> Stop for RunBlocking<S, F, R> {
    fn stop(self: Pin<&mut Self>) -> AfterGrace {
        AfterGrace::Wait
    }

    fn running(&self, census: &mut Census) {
        if !matches!(self.state, Blocking::Done) {
            census.add(&self.task, None);
        }
    }
}

/// A `ctx.spawn` task of the group's task set, from [`task_unit`]: whether
/// it returned `Ok`.
pub(crate) fn task_job<F, E>(
    core: Arc<Core>,
    task: TaskName,
    body: F,
    start: Start,
) -> impl Future<Output = bool> + Send + 'static
where
    F: Future<Output = Result<(), E>> + Send + 'static,
    E: Send + 'static,
{
    let running = core.running_guard(&task);
    let run = Run::new(Boxed, task_unit(core, task, body, start));
    async move {
        let ok = run.await.is_some();
        // A `Group`, which has no driver until `wait`, frees the tasks that
        // ended before this one now, not at a next spawn that may not come.
        // (Under loom the set polls its tasks under its lock, and frees
        // nothing before the driver polls it.)
        #[cfg(not(loom))]
        running.core().reap_tasks();
        drop(running);
        ok
    }
}

#[cfg(all(test, not(loom)))]
mod permit_tests {
    //! A unit's permit is handed back only once its failure or panic is
    //! recorded: the unit that takes the permit is woken by its hand-back,
    //! maybe on another thread, and must find the group cancelled then.
    //! The waiting unit's waker is the witness: it notes, as it is woken,
    //! whether the group was cancelled by then.

    use std::future::Future;
    use std::pin::pin;
    use std::sync::Mutex;
    use std::task::{Context, Poll, Wake, Waker};

    use super::{Boxed, ItemName, Run, item_unit, task_unit};
    use crate::error::TaskName;
    use crate::limit::Start;
    use crate::state::{Core, Settings};
    use crate::sync::Arc;

    /// Notes, at each wake, whether its group was cancelled then.
    struct Witness {
        core: Arc<Core>,
        seen: Mutex<Vec<bool>>,
    }

    impl Wake for Witness {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            let cancelled = self.core.is_cancelled();
            self.seen.lock().unwrap().push(cancelled);
        }
    }

    /// A group with `limit = 1` and the one permit, taken.
    fn limited() -> (Arc<Core>, Start) {
        let core = Core::new(Settings {
            limit: Some(1),
            ..Settings::default()
        });
        let start = core.start_written();
        assert!(matches!(start, Start::Now(Some(_))));
        (core, start)
    }

    /// A failing body: `Err`, or a panic.
    #[allow(clippy::unused_async, reason = "a unit's body is a future")]
    async fn fails(panics: bool) -> Result<(), &'static str> {
        assert!(!panics, "the unit's panic");
        Err("boom")
    }

    /// Runs `end` (which ends the unit holding the permit) while a second
    /// unit waits for the permit, and says what the waiting unit's waker
    /// saw; the waiting unit then never starts.
    fn seen_by_the_next_unit(core: &Arc<Core>, end: impl FnOnce()) -> Vec<bool> {
        let started = std::sync::atomic::AtomicBool::new(false);
        let next = task_unit(
            Arc::clone(core),
            TaskName::new("next"),
            async {
                started.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok::<(), &str>(())
            },
            core.start_written(),
        );
        let mut next = pin!(Run::new(Boxed, next));
        let witness = Arc::new(Witness {
            core: Arc::clone(core),
            seen: Mutex::new(Vec::new()),
        });
        let waker = Waker::from(Arc::clone(&witness));
        let mut cx = Context::from_waker(&waker);
        assert!(
            next.as_mut().poll(&mut cx).is_pending(),
            "it waits for the permit"
        );
        end();
        assert_eq!(next.as_mut().poll(&mut cx), Poll::Ready(None));
        assert!(!started.load(std::sync::atomic::Ordering::SeqCst));
        let seen = witness.seen.lock().unwrap().clone();
        assert!(!seen.is_empty(), "the waiting unit was woken");
        seen
    }

    /// A unit that may wait for a permit ([`Run`]): a `Group`'s,
    /// `ctx.spawn`'s or a `#[spawn]` branch's task under `limit`.
    fn run_ends(core: &Arc<Core>, start: Start, panics: bool) {
        let unit = task_unit(
            Arc::clone(core),
            TaskName::new("fails"),
            fails(panics),
            start,
        );
        let mut unit = pin!(Run::new(Boxed, unit));
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(unit.as_mut().poll(&mut cx), Poll::Ready(None));
    }

    /// A fan-out item ([`super::Bare`]), its permit handed to its poll.
    fn item_ends(core: &Arc<Core>, start: Start, panics: bool) {
        let Start::Now(mut permit) = start else {
            unreachable!()
        };
        let task = ItemName {
            name: "items",
            index: 0,
        };
        let mut item = pin!(item_unit(core, task, fails(panics)));
        let mut cx = Context::from_waker(Waker::noop());
        let polled = item
            .as_mut()
            .poll_as(&Boxed, core, &task, &mut permit, &mut false, &mut cx);
        let Poll::Ready((None, permit)) = polled else {
            panic!("the item ended without a value");
        };
        drop(permit);
    }

    #[test]
    fn a_failed_unit_gives_its_permit_back_once_the_group_is_cancelled() {
        let (core, start) = limited();
        let seen = seen_by_the_next_unit(&core, || run_ends(&core, start, false));
        assert!(seen.iter().all(|&cancelled| cancelled), "{seen:?}");
    }

    #[test]
    fn a_failed_item_gives_its_permit_back_once_the_group_is_cancelled() {
        let (core, start) = limited();
        let seen = seen_by_the_next_unit(&core, || item_ends(&core, start, false));
        assert!(seen.iter().all(|&cancelled| cancelled), "{seen:?}");
    }

    #[test]
    fn a_panicked_unit_gives_its_permit_back_once_the_group_is_cancelled() {
        let (core, start) = limited();
        let seen = seen_by_the_next_unit(&core, || run_ends(&core, start, true));
        assert!(seen.iter().all(|&cancelled| cancelled), "{seen:?}");
    }

    #[test]
    fn a_panicked_item_gives_its_permit_back_once_the_group_is_cancelled() {
        let (core, start) = limited();
        let seen = seen_by_the_next_unit(&core, || item_ends(&core, start, true));
        assert!(seen.iter().all(|&cancelled| cancelled), "{seen:?}");
    }
}
