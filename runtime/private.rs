//! What `errgroup!` expands into. Not public API: no stability promise.
//!
//! An expansion is: a [`Config`] from the headers, a [`Scope`], the channel
//! headers, one constructor call per branch ([`InTask`], [`Spawn`] or
//! [`Blocking`], each with `branch` for one body and `fan_out` for a `for`
//! branch; [`supervise`] wraps a body under `on_error = continue`), and one
//! `scope.run((branches..)).await`. The loop is engine.rs's.
//!
//! Generated code names only `::errgroup::__private::*`, so users shadowing
//! `Option`, `Result`, `tokio`, ... cannot break it.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

pub use core::clone::Clone;
pub use core::convert::Infallible;
pub use core::mem::drop;
pub use core::pin::pin;
pub use core::result::Result;

#[path = "lints.rs"]
pub mod lints;

use crate::branch::{
    Boxed, Head, Inline, ItemName, Keep, Named, Placed, Run, Spawned, Supervise, Who,
    blocking_item, blocking_unit, item_unit, spawn_unit, task_unit, unit,
};
use crate::channel::{self, Receiver, Sender};
use crate::ctx::{BranchCtx, Ctx, IntoParent, ParentKind};
pub use crate::engine::{Branch, IntoBranches, Scope};
use crate::engine::{FreeLeaf, InTaskLeaf, InlineLeaf, Leaf, Stage};
use crate::error::{Error, TaskName};
use crate::fanout::{FanOut, InTask as InTaskPool, Job, Jobs};
use crate::limit::Start;
use crate::state::{Core, Settings, State};
use crate::sync::Arc;
use crate::trace;
use crate::workers::Workers;

/// The group's header values, evaluated in the order written.
#[derive(Debug)]
pub struct Config {
    settings: Settings,
    grace: Option<Duration>,
}

impl Config {
    /// Nested groups inherit the ambient branch's ctx (semantic 6); the
    /// caller's location is where the group was written (its span's site).
    #[must_use]
    #[track_caller]
    #[inline]
    pub fn new() -> Self {
        Config {
            settings: Settings {
                parent: crate::state::ambient(),
                site: Some(std::panic::Location::caller()),
                ..Settings::default()
            },
            grace: None,
        }
    }

    #[must_use]
    pub fn timeout(mut self, duration: Duration) -> Self {
        self.settings.deadline = Some(Instant::now() + duration);
        self
    }

    #[must_use]
    pub fn deadline(mut self, at: Instant) -> Self {
        self.settings.deadline = Some(at);
        self
    }

    #[must_use]
    pub fn parent(mut self, parent: impl IntoParent) -> Self {
        match parent.into_parent().0 {
            ParentKind::Group(core) => {
                self.settings.parent = Some(core);
                self.settings.token = None;
            }
            ParentKind::Token(token) => {
                self.settings.parent = None;
                self.settings.token = Some(token);
            }
        }
        self
    }

    #[must_use]
    pub fn limit(mut self, n: usize) -> Self {
        self.settings.limit = Some(n);
        self
    }

    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = Some(grace);
        self
    }

    /// The group has a `#[spawn]` or `#[blocking]` branch, a fan-out or a
    /// channel header, each of which needs the group's core: it gets one
    /// at birth.
    #[must_use]
    pub fn with_core(mut self) -> Self {
        self.settings.core = true;
        self
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}

impl<E: 'static> Scope<E> {
    #[must_use]
    // `always`: inlined where the group is written, its state is written
    // in place; called, it was built on the stack and copied (a memcpy),
    // and `#[inline]` alone left it called (682 Ir per trivial group
    // against 611, benches/instructions.sh).
    #[allow(clippy::inline_always, reason = "measured: see the comment above")]
    #[inline(always)]
    pub fn new(config: Config) -> Self {
        let token = config.settings.token.clone();
        Scope::with_state(State::new(config.settings), config.grace, token)
    }
}

impl<E> Scope<E> {
    /// The ctx of the branch `name`, typed by the group's error type.
    #[must_use]
    #[inline]
    pub fn ctx(&self, name: &'static str) -> BranchCtx<'_, E> {
        BranchCtx::lent(&self.state.place, name)
    }

    /// The ctx of the `#[spawn]` branch `name`, whose body is `'static`:
    /// it owns the group, which gets its `Arc` now (`Place`, state.rs).
    #[must_use]
    pub fn owned_ctx(&self, name: &'static str) -> BranchCtx<'static, E> {
        BranchCtx::new(Arc::clone(self.born_core()), TaskName::new(name))
    }

    /// The group's core, for code the macro gave one at birth
    /// (`Config::with_core`: `#[spawn]`, `#[blocking]`, a fan-out): read
    /// here, where promoting is a call out of line (a call per branch and
    /// per ctx, ~20 instructions each), not inlined in `Place::promote`,
    /// where it made the in-task branches' code too large to inline.
    #[inline]
    fn born_core(&self) -> &Arc<Core> {
        match self.state.place.core() {
            Some(core) => core,
            None => self.state.core(),
        }
    }

    /// A `let (tx, rx) = channel(cap);` header.
    #[must_use]
    pub fn channel<T: Send + 'static>(&self, capacity: usize) -> (Sender<T>, Receiver<T>) {
        channel::bound(self.state.core().node(), Some(capacity))
    }

    /// A `let (tx, rx) = unbounded();` header.
    #[must_use]
    pub fn unbounded<T: Send + 'static>(&self) -> (Sender<T>, Receiver<T>) {
        channel::bound(self.state.core().node(), None)
    }
}

/// A body the macro read as never yielding `Ok` (it ends in `Err(..)`,
/// `return Err(..)` or a `loop` no `break` leaves): its `Ok` type is
/// `Infallible`, which its `Err(..)` and `?` infer with. Its value type as
/// a branch is `T`, which the expansion's `|never| match never {}` makes a
/// diverging type: fixed by whatever the code around the group needs, and
/// by the never-type fallback when nothing does (`()`, or `!` under edition
/// 2024), so no branch needs `Err::<(), _>`.
pub async fn never_ok<F, E, T>(body: F, value: impl FnOnce(Infallible) -> T) -> Result<T, E>
where
    F: Future<Output = Result<Infallible, E>>,
{
    body.await.map(value)
}

/// The value of a never-`Ok` branch outside `on_error = continue`: `()`,
/// a value that never exists, but whose type is `Default`, so that the
/// group's `.allow_shutdown()` compiles in every edition (a type left to
/// the never-type fallback is `!` under 2024, and trips the fallback's lint
/// under 2018 and 2021).
pub fn never_unit(never: Infallible) {
    match never {}
}

/// [`never_ok`] for a `#[blocking]` body.
pub fn never_ok_blocking<F, E, T>(
    body: F,
    value: impl FnOnce(Infallible) -> T,
) -> impl FnOnce(&BranchCtx<'static, E>) -> Result<T, E>
where
    F: FnOnce(&BranchCtx<'static, E>) -> Result<Infallible, E>,
{
    move |ctx: &BranchCtx<'static, E>| body(ctx).map(value)
}

/// `on_error = continue` for a future body: its result becomes its value.
pub fn supervise<F, T, E>(body: F) -> impl Future<Output = Result<Result<T, E>, E>>
where
    F: Future<Output = Result<T, E>>,
{
    Supervise::new(body)
}

/// `on_error = continue` for a `#[blocking]` body.
pub fn supervise_blocking<F, T, E>(
    body: F,
) -> impl FnOnce(&BranchCtx<'static, E>) -> Result<Result<T, E>, E>
where
    F: FnOnce(&BranchCtx<'static, E>) -> Result<T, E>,
{
    move |ctx: &BranchCtx<'static, E>| Ok(body(ctx))
}

/// Branches polled in the calling task: they may borrow locals.
#[derive(Debug, Clone, Copy)]
pub struct InTask;

/// `#[spawn]` branches: tokio tasks, in parallel (`Send + 'static`).
#[derive(Debug, Clone, Copy)]
pub struct Spawn;

/// `#[blocking]` branches: synchronous bodies on tokio's blocking pool.
#[derive(Debug, Clone, Copy)]
pub struct Blocking;

/// What an in-task branch is built with: the name the expansion wrote
/// (the body borrows the ctx made with it), or a ctx, borrowed or handed
/// over. Its group is always the scope's, so the branch keeps only its
/// name (no reference count taken and given back, no name copied).
#[doc(hidden)]
#[derive(Debug)]
pub struct Lent<'s> {
    task: Named<'s>,
}

impl<'s, E> From<&'s BranchCtx<'_, E>> for Lent<'s> {
    fn from(ctx: &'s BranchCtx<'_, E>) -> Self {
        Lent { task: ctx.named() }
    }
}

impl<'s, E> From<BranchCtx<'s, E>> for Lent<'s> {
    fn from(ctx: BranchCtx<'s, E>) -> Self {
        Lent {
            task: ctx.into_named(),
        }
    }
}

impl From<&'static str> for Lent<'_> {
    #[inline]
    fn from(name: &'static str) -> Self {
        Lent {
            task: Named::Static(name),
        }
    }
}

impl From<Ctx> for Lent<'_> {
    fn from(ctx: Ctx) -> Self {
        Lent {
            task: Named::owned(ctx.into_parts().1),
        }
    }
}

impl<'s> Lent<'s> {
    /// An in-task branch's head and span (branch.rs `Head::in_task`), out
    /// of [`InTask::limited`], which is compiled once per body.
    // `#[inline]`: see [`InTask::branch`].
    #[inline]
    fn head<E>(self, state: &'s State<E>) -> (Head<&'s State<E>, Named<'s>>, trace::Span) {
        Head::in_task(state, self.task)
    }

    /// [`InTask::branch`]'s name and span, out of it: its one call before
    /// its body is in place (unoptimized, each call there has its own
    /// path that drops the body if it unwinds).
    // `#[inline]`: see [`InTask::branch`].
    #[inline]
    fn free<E>(ctx: impl Into<Self>, state: &State<E>) -> (Named<'s>, trace::Span) {
        let lent = ctx.into();
        debug_assert!(
            state.place.core().is_none_or(|core| core.limit().is_none()),
            "a branch of a group with `limit` is made by `InTask::limited`"
        );
        let span = if trace::ENABLED {
            lent.task.span(state.place.span())
        } else {
            trace::none()
        };
        (lent.task, span)
    }
}

impl InTask {
    /// An in-task branch of a group without `limit` (the macro knows from
    /// the headers): it starts at once and holds no permit, so it keeps no
    /// phase.
    // `#[inline]`: once per branch, where the call and the moves of the
    // body into and out of it cost more than its body (as `Guarded::new`).
    #[inline]
    pub fn branch<'s, E, T, F>(
        self,
        scope: &'s Scope<E>,
        ctx: impl Into<Lent<'s>>,
        body: F,
    ) -> impl Branch<E, Value = T> + 's
    where
        F: Future<Output = Result<T, E>> + 's,
        T: 's,
    {
        let (task, span) = Lent::free(ctx, &*scope.state);
        // Without the feature `Traced<F>` is `F`: unoptimized, a call and
        // a function fewer per branch.
        #[cfg(feature = "tracing")]
        let body = trace::instrument(span, body);
        #[cfg(not(feature = "tracing"))]
        let trace::Span = span;
        FreeLeaf {
            stage: Stage::Running { body },
            task,
            echoed: false,
        }
    }

    /// An in-task branch of a group with `limit`: it may wait for a
    /// permit, and holds one as it runs.
    // `#[inline]`: see [`InTask::branch`].
    #[inline]
    pub fn limited<'s, E, T, F>(
        self,
        scope: &'s Scope<E>,
        ctx: impl Into<Lent<'s>>,
        body: F,
    ) -> impl Branch<E, Value = T> + 's
    where
        F: Future<Output = Result<T, E>> + 's,
        T: 's,
    {
        InTaskLeaf::new(ctx.into().head(&*scope.state), body)
    }

    pub fn fan_out<'s, E, I, S, L, Fut, T>(
        self,
        scope: &'s Scope<E>,
        name: &'static str,
        items: I,
        ends: S,
        mut body: L,
    ) -> impl Branch<E, Value = Vec<T>> + 's
    where
        I: IntoIterator<IntoIter: 's>,
        S: Clone + 's,
        L: FnMut(I::Item, BranchCtx<'static, E>, S) -> Fut + 's,
        Fut: Future<Output = Result<T, E>> + 's,
        T: 's,
    {
        let state = &*scope.state;
        let core = state.core();
        let launch = move |item, index, permit, ends| {
            let ctx = BranchCtx::new(Arc::clone(core), TaskName::indexed(name, index));
            let task = ItemName { name, index };
            (item_unit(core, task, body(item, ctx, ends)), permit)
        };
        let pool = InTaskPool::new(state, core, name);
        Leaf::new(FanOut::new(
            core,
            name,
            items.into_iter(),
            pool,
            ends,
            launch,
        ))
    }
}

/// The name of a `#[spawn]` branch, which is all the runtime needs of its
/// ctx (the group is the scope's): the expansion hands over the name, not
/// a clone of the ctx the body moves.
/// Kept compact (`Named`, 24 bytes where a `TaskName` takes 48): it is in
/// the task's future, which tokio moves several times as it spawns it and
/// copies with a call past 128 bytes.
#[doc(hidden)]
#[derive(Debug)]
pub struct SpawnName(Named<'static>);

impl From<&'static str> for SpawnName {
    fn from(name: &'static str) -> Self {
        SpawnName(Named::Static(name))
    }
}

impl<E> From<BranchCtx<'_, E>> for SpawnName {
    fn from(ctx: BranchCtx<'_, E>) -> Self {
        SpawnName(Named::owned(ctx.task()))
    }
}

/// A `#[spawn]` body as a tokio task of `scope`'s group, which has no
/// `limit`: [`Spawn::branch`], and [`Spawn::inline`] outside a tokio task.
// `#[inline]`: once per branch, where the call and the moves of the body
// into and out of it cost more than its body (as `Guarded::new`).
#[inline]
fn spawned<'s, E, T, F>(
    scope: &'s Scope<E>,
    task: Named<'static>,
    body: F,
) -> Spawned<T, &'s Arc<Core>>
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    let core = scope.born_core();
    debug_assert!(
        core.limit().is_none(),
        "a #[spawn] branch of a group with `limit` is made by `Spawn::limited`"
    );
    core.off_driver();
    let run = spawn_unit(Arc::clone(core), task.clone(), body);
    Spawned::new(core, task, run)
}

/// [`spawned`] for a group with `limit`, whose task may wait for a permit:
/// [`Spawn::limited`], and [`Spawn::inline_limited`] outside a tokio task.
fn spawned_limited<'s, E, T, F>(
    scope: &'s Scope<E>,
    task: Named<'static>,
    body: F,
) -> Spawned<T, &'s Arc<Core>>
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    let core = scope.born_core();
    core.off_driver();
    let start = core.start_written();
    let run = Run::new(
        Boxed,
        task_unit(Arc::clone(core), task.clone(), body, start),
    );
    Spawned::new(core, task, run)
}

impl Spawn {
    /// A `#[spawn]` branch of a group without `limit` (the macro knows
    /// from the headers): its task starts its body at once and keeps no
    /// phase (branch.rs `SpawnUnit`).
    // `#[inline]`: see [`InTask::branch`].
    #[inline]
    pub fn branch<E, T, F>(
        self,
        scope: &Scope<E>,
        name: impl Into<SpawnName>,
        body: F,
    ) -> impl Branch<E, Value = T>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        Leaf::new(spawned(scope, name.into().0, body))
    }

    /// A `#[spawn]` branch of a group with `limit`: its task may wait for
    /// a permit, and holds one as it runs.
    pub fn limited<E, T, F>(
        self,
        scope: &Scope<E>,
        name: impl Into<SpawnName>,
        body: F,
    ) -> impl Branch<E, Value = T>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        Leaf::new(spawned_limited(scope, name.into().0, body))
    }

    /// A `#[spawn]` branch run in the group's own task (as rayon's `join`
    /// runs one half inline). Which branch is the macro's decision
    /// (`Input::inline_branch`, macros/src/ast.rs), made once; this only
    /// checks what the macro cannot know, below. The bounds are
    /// [`Spawn::branch`]'s, so which branch is last changes nothing but the
    /// task it runs in (its `tokio::task::id()`, the task-locals it sees;
    /// README): the body still sees its group as the ambient one (the
    /// driver's, set around its branches) and runs in its own span, its
    /// panic is caught by its guard, and when `grace` expires it is dropped
    /// where it stands, as an aborted task stops at its next yield.
    // `#[inline]`: see [`InTask::branch`].
    #[inline]
    pub fn inline<E, T, F>(
        self,
        scope: &Scope<E>,
        name: impl Into<SpawnName>,
        body: F,
    ) -> impl Branch<E, Value = T> + '_
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let task = name.into().0;
        let core = scope.born_core();
        debug_assert!(
            core.limit().is_none(),
            "a #[spawn] branch of a group with `limit` is made by `Spawn::inline_limited`"
        );
        // Only inside a tokio task, whose thread is a runtime worker. A
        // group awaited in `block_on` (the body of `#[tokio::main]`) runs
        // on a thread that is not one: a branch there would talk to the
        // others across threads (a channel between two `#[spawn]` branches
        // ran 1.75x slower), so it is spawned like the rest.
        if tokio::task::try_id().is_some() {
            InlineLeaf::inline(core, task, body)
        } else {
            InlineLeaf::spawned(core, task.clone(), spawned(scope, task, body))
        }
    }

    /// [`Spawn::inline`] for a group with `limit`: run inline, it may wait
    /// for a permit, and holds one as it runs.
    pub fn inline_limited<E, T, F>(
        self,
        scope: &Scope<E>,
        name: impl Into<SpawnName>,
        body: F,
    ) -> impl Branch<E, Value = T> + '_
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let task = name.into().0;
        // Only inside a tokio task: see `Spawn::inline`.
        if tokio::task::try_id().is_some() {
            let core = scope.born_core();
            let start = core.start_written();
            let unit = unit(core, task.clone(), body, start);
            let run = Run::new(&*scope.state, unit);
            Leaf::new(Placed::Inline {
                run: Inline::new(core, task, run),
            })
        } else {
            Leaf::new(Placed::Spawned {
                run: spawned_limited(scope, task, body),
            })
        }
    }

    pub fn fan_out<'s, E, I, S, L, Fut, T>(
        self,
        scope: &'s Scope<E>,
        name: &'static str,
        items: I,
        ends: S,
        mut body: L,
    ) -> impl Branch<E, Value = Vec<T>> + 's
    where
        I: IntoIterator<IntoIter: 's>,
        S: Clone + 's,
        L: FnMut(I::Item, BranchCtx<'static, E>, S) -> Fut + 's,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let core = scope.born_core();
        let launch = move |item, index, permit, ends| {
            let ctx = BranchCtx::new(Arc::clone(core), TaskName::indexed(name, index));
            let body = body(item, ctx, ends);
            let start = Start::Now(permit);
            // A compact name: a smaller future in every item (workers.rs
            // queues and holds them by value).
            let task = ItemName { name, index };
            Keep::new(Run::new(
                Boxed,
                task_unit(Arc::clone(core), task, body, start),
            ))
        };
        core.off_driver();
        let pool = Workers::new(Arc::clone(core), name);
        Leaf::new(FanOut::new(
            core,
            name,
            items.into_iter(),
            pool,
            ends,
            launch,
        ))
    }
}

impl Blocking {
    pub fn branch<E, T, F>(
        self,
        scope: &Scope<E>,
        ctx: BranchCtx<'_, E>,
        body: F,
    ) -> impl Branch<E, Value = T>
    where
        F: FnOnce(&BranchCtx<'static, E>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let core = Arc::clone(scope.born_core());
        core.off_driver();
        let start = core.start_written();
        let ctx = ctx.into_owned();
        let task = ctx.task();
        let job = move || body(&ctx);
        Leaf::new(blocking_unit(&*scope.state, core, task, job, start))
    }

    pub fn fan_out<'s, E, I, S, L, G, T>(
        self,
        scope: &'s Scope<E>,
        name: &'static str,
        items: I,
        ends: S,
        mut body: L,
    ) -> impl Branch<E, Value = Vec<T>> + 's
    where
        I: IntoIterator<IntoIter: 's>,
        S: Clone + 's,
        L: FnMut(I::Item, S) -> G + 's,
        G: FnOnce(&BranchCtx<'static, E>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let core = scope.born_core();
        let launch = move |item, _index, permit, ends| {
            let body = body(item, ends);
            let run = move |core: &Arc<Core>, task| {
                let ctx = BranchCtx::new(Arc::clone(core), task);
                blocking_item(core, Ctx::task(&ctx), || body(&ctx))
            };
            Job { permit, run }
        };
        core.off_driver();
        let pool = Jobs::new(Arc::clone(core), name);
        Leaf::new(FanOut::new(
            core,
            name,
            items.into_iter(),
            pool,
            ends,
            launch,
        ))
    }
}

/// A tuple of branches as one branch: the macro nests tuples longer than
/// the runtime's longest.
pub fn join<E, B: IntoBranches<E>>(branches: B) -> B::Branches {
    branches.into_branches()
}

/// Keeps a non-`Copy` wrapper around a fan-out item so that the item's async
/// block takes it by value even when the item itself is `Copy`.
#[derive(Debug)]
pub struct Moved<T>(pub T);

impl<T> Moved<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// The value of an `errgroup!` whose input had errors: its type fits any use,
/// so the user sees the `compile_error!`, not a cascade.
pub fn fallback<T, E>() -> Result<T, Error<E>> {
    unreachable!("errgroup!: this input did not compile")
}
