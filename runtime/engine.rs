//! The scheduling loop of an `errgroup!` group: its lifecycle (deadline,
//! token parent, `shutdown_on`, grace: lifecycle.rs, shared with `Group`),
//! every branch polled, the group's tasks awaited, then the result. The
//! macro builds the branches (private.rs) and hands them here as a tuple;
//! this module owns everything that happens after.
//!
//! # Poll order
//!
//! Every poll of the group: its lifecycle (the deadline, the token, the
//! signal, then grace, which stops what still runs), each
//! branch in the order written, then the group's tasks (`ctx.spawn`). The
//! group is done when no branch and no task is running; the last poll of
//! the tasks closes the set in the same critical section (`Core::poll_tasks`).
//!
//! When the group has tasks or is watched (`state::flags`), the poll keeps
//! its waker in the core and answers the questions of `Watch` handles with
//! a walk of the branch tree (`Branch::running`): nothing is kept per branch
//! for it, and a group that is never asked reads one word per poll. The
//! walk is also the report taken when the deadline passes or grace expires.
//!
//! The in-task branches are polled with the group lent as the ambient group
//! (`state::lend`), which a group created in a branch takes as its
//! parent: one thread-local swap per poll of the group serves every branch,
//! where a wrapper per branch paid it per branch per poll. Spawned bodies
//! set their own, in their task.

use std::future::Future;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::branch::{AfterGrace, Guarded, Head, Named, Spawned, Stop, Who, poll_in_task};
use crate::cold::Cold;
use crate::error::{Census, Error};
use crate::lifecycle::Lifecycle;
use crate::state::lend;
use crate::state::{Core, State};
use crate::sync::Arc;
use crate::trace::{self, Traced};

/// One branch, or a tuple of them nested in another, as the tuple around
/// it drives it.
pub trait Branch<E> {
    /// What the branch gives when it succeeds (a tuple for a tuple).
    type Value;
    /// `Ready` once the branch (every branch of a tuple) has ended; its
    /// value, if it gave one, is then in `out`. `scope`: the group's, which
    /// a branch need not keep to record its error (`FreeLeaf`). The values
    /// are kept by the tuple around the branches, not by each branch: what
    /// takes them out is then compiled once per tuple of value types, where
    /// each branch's body is a type of its own (benches/compile-time.sh).
    fn poll_branch(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        scope: &Scope<E>,
        out: &mut Option<Self::Value>,
    ) -> Poll<()>;
    /// `grace` expired: drops or aborts what still runs (see branch.rs's `Stop`).
    fn stop(self: Pin<&mut Self>);
    /// Adds what still runs of it to `census`, in the order written.
    #[doc(hidden)]
    fn running(&self, census: &mut Census);
}

/// A group's branches as its loop drives them: a tuple of them (`Join2`
/// ..), which keeps their values until the group's result takes them.
pub trait Branches<E> {
    /// The values of every branch, in the order written.
    type Value;
    /// `Ready` once every branch has ended.
    fn poll_all(self: Pin<&mut Self>, cx: &mut Context<'_>, scope: &Scope<E>) -> Poll<()>;
    /// `grace` expired: see [`Branch::stop`].
    fn stop_all(self: Pin<&mut Self>);
    /// Every value, once ended, if every branch gave one.
    fn take(self: Pin<&mut Self>) -> Option<Self::Value>;
    /// See [`Branch::running`].
    #[doc(hidden)]
    fn running_all(&self, census: &mut Census);
}

pin_project! {
    /// One branch's future, dropped as soon as it ends, freeing what it
    /// held (its value goes to its join).
    #[derive(Debug)]
    pub(crate) struct Leaf<F> {
        #[pin]
        fut: Option<F>,
    }
}

impl<F> Leaf<F> {
    pub(crate) fn new(fut: F) -> Self {
        Leaf { fut: Some(fut) }
    }
}

impl<E, F, V> Branch<E> for Leaf<F>
where
    F: Future<Output = Option<V>> + Stop,
{
    type Value = V;

    fn poll_branch(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        _: &Scope<E>,
        out: &mut Option<V>,
    ) -> Poll<()> {
        let mut this = self.project();
        let Some(fut) = this.fut.as_mut().as_pin_mut() else {
            return Poll::Ready(());
        };
        *out = ready!(fut.poll(cx));
        this.fut.set(None);
        Poll::Ready(())
    }

    fn stop(self: Pin<&mut Self>) {
        let mut this = self.project();
        if let Some(fut) = this.fut.as_mut().as_pin_mut() {
            if fut.stop() == AfterGrace::Drop {
                this.fut.set(None);
            }
        }
    }

    fn running(&self, census: &mut Census) {
        if let Some(fut) = &self.fut {
            fut.running(census);
        }
    }
}

pin_project! {
    /// An in-task branch: a [`Leaf`] of a `Run` (branch.rs) as one type,
    /// whose methods are a few lines each: its body is a type of its own,
    /// so everything generic over it is compiled again for every branch of
    /// every group (benches/compile-time.sh). The rest is `Head`'s.
    pub(crate) struct InTaskLeaf<'s, E, F> {
        #[pin]
        unit: Option<Guarded<Traced<F>, &'s State<E>, Named<'s>>>,
    }
}

impl<'s, E, F: Future> InTaskLeaf<'s, E, F> {
    /// `body` with the head made for it (`Head::in_task`, the recipe's
    /// first half, which is not generic over the body).
    // `#[inline]`: once per branch, where the call and the moves of the
    // body into and out of it cost more than its body.
    #[inline]
    pub(crate) fn new((head, span): (Head<&'s State<E>, Named<'s>>, trace::Span), body: F) -> Self {
        InTaskLeaf {
            unit: Some(Guarded::with_head(head, span, body)),
        }
    }
}

impl<E, F, T> Branch<E> for InTaskLeaf<'_, E, F>
where
    F: Future<Output = Result<T, E>>,
{
    type Value = T;

    fn poll_branch(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        _: &Scope<E>,
        out: &mut Option<T>,
    ) -> Poll<()> {
        let mut this = self.project();
        let Some(unit) = this.unit.as_mut().as_pin_mut() else {
            return Poll::Ready(());
        };
        *out = ready!(unit.in_task_value(cx));
        this.unit.set(None);
        Poll::Ready(())
    }

    // Dropped where it stands when `grace` expires.
    fn stop(self: Pin<&mut Self>) {
        self.project().unit.set(None);
    }

    fn running(&self, census: &mut Census) {
        if let Some(unit) = &self.unit {
            unit.head().running(census);
        }
    }
}

pin_project! {
    /// An in-task branch of a group without `limit`, which starts at once
    /// and never holds a permit: [`InTaskLeaf`] without a phase (`Head`'s),
    /// only whether a `Cancelled` was handed to its body. Nothing of it but
    /// its body and its name needs dropping, where a phase's out-of-line
    /// drop was a call per branch; its value goes to its join, so that
    /// what takes it out is not compiled for every branch of every group
    /// (its body is a type of its own: benches/compile-time.sh).
    // Built by `InTask::branch` itself: a function less per branch.
    pub(crate) struct FreeLeaf<'s, F> {
        #[pin]
        pub(crate) stage: Stage<Traced<F>>,
        // Outside the stage: ending the body then drops nothing else (a
        // name's drop is a test).
        pub(crate) task: Named<'s>,
        pub(crate) echoed: bool,
    }
}

pin_project! {
    /// A [`FreeLeaf`]'s body, until it ends.
    #[project = StageProj]
    pub(crate) enum Stage<F> {
        Running { #[pin] body: F },
        Gone,
    }
}

impl<F> Stage<F> {
    /// Drops the body where it stands: one function per body for the two
    /// callers below (unoptimized, `Pin::set` is inlined in each caller).
    fn end(mut self: Pin<&mut Self>) {
        self.set(Stage::Gone);
    }
}

impl<E, F, T> Branch<E> for FreeLeaf<'_, F>
where
    F: Future<Output = Result<T, E>>,
{
    type Value = T;

    // `#[inline]`: see `Join2::poll_all`.
    #[inline]
    fn poll_branch(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        scope: &Scope<E>,
        out: &mut Option<T>,
    ) -> Poll<()> {
        let mut this = self.project();
        let StageProj::Running { body } = this.stage.as_mut().project() else {
            return Poll::Ready(());
        };
        *out = ready!(poll_in_task(&scope.state, this.task, this.echoed, body, cx));
        this.stage.end();
        Poll::Ready(())
    }

    // Dropped where it stands when `grace` expires.
    fn stop(self: Pin<&mut Self>) {
        self.project().stage.end();
    }

    fn running(&self, census: &mut Census) {
        if let Stage::Running { .. } = self.stage {
            add_running(&self.task, census);
        }
    }
}

/// A leaf's [`Branch::running`], out of it (not generic over its body).
fn add_running(task: &Named<'_>, census: &mut Census) {
    census.add(&task.name(), None);
}

/// Branches pinned where the caller keeps them (the expansion's
/// `pin!(join(..))`): the group's future holds a pointer to them, so
/// awaiting it moves a few words, not every branch.
impl<E, B: Branches<E> + ?Sized> Branches<E> for Pin<&mut B> {
    type Value = B::Value;

    // Optimized, always inlined: the driver's call of its pinned tuple,
    // whose poll (`#[inline]`) then goes where the group is awaited with
    // the driver's (248 -> 233 Ir per trivial group,
    // benches/instructions.sh). Unoptimized: see `drive`.
    #[cfg_attr(
        not(debug_assertions),
        allow(clippy::inline_always, reason = "measured: see above")
    )]
    #[cfg_attr(not(debug_assertions), inline(always))]
    #[cfg_attr(debug_assertions, inline)]
    fn poll_all(self: Pin<&mut Self>, cx: &mut Context<'_>, scope: &Scope<E>) -> Poll<()> {
        self.get_mut().as_mut().poll_all(cx, scope)
    }

    fn stop_all(self: Pin<&mut Self>) {
        self.get_mut().as_mut().stop_all();
    }

    #[inline]
    fn take(self: Pin<&mut Self>) -> Option<B::Value> {
        self.get_mut().as_mut().take()
    }

    fn running_all(&self, census: &mut Census) {
        (**self).running_all(census);
    }
}

/// A tuple of branches, as the macro writes them.
pub trait IntoBranches<E> {
    /// The tuple, pinned field by field.
    type Branches: Branches<E>;
    /// How many branches it holds, nested tuples counted as one each.
    const LEN: usize;
    /// Converts the tuple.
    fn into_branches(self) -> Self::Branches;
}

/// The values of a tuple of branches as its join keeps them, one
/// `Option` each, and how they are taken: generic over the value types
/// alone, so compiled once for every group whose branches give the same.
pub(crate) trait Values {
    /// Every value, if every branch gave one.
    type Taken;
    /// Takes every value, so that those of the branches that succeeded
    /// are dropped here when another one failed.
    fn take_all(&mut self) -> Option<Self::Taken>;
}

macro_rules! join {
    ($Join:ident: $($B:ident $b:ident $V:ident $i:tt),+) => {
        pin_project! {
            /// A tuple of branches, polled in order, and their values.
            #[derive(Debug)]
            pub struct $Join<$($B,)+ V> {
                $(#[pin] $b: $B,)+
                values: V,
            }
        }

        impl<$($V),+> Values for ($(Option<$V>,)+) {
            type Taken = ($($V,)+);

            fn take_all(&mut self) -> Option<Self::Taken> {
                let values = ($(self.$i.take(),)+);
                match values {
                    ($(Some($b),)+) => Some(($($b,)+)),
                    _ => None,
                }
            }
        }

        impl<E, $($B: Branch<E, Value = $V>,)+ $($V),+> Branches<E>
            for $Join<$($B,)+ ($(Option<$V>,)+)>
        {
            type Value = ($($V,)+);

            // `#[inline]`, and `FreeLeaf`'s: a group's branches are
            // polled in one function, called directly by its driver
            // (263 -> 248 Ir per trivial group, benches/instructions.sh).
            #[inline]
            fn poll_all(self: Pin<&mut Self>, cx: &mut Context<'_>, scope: &Scope<E>) -> Poll<()> {
                let this = self.project();
                let values = this.values;
                let mut pending = false;
                $(pending |= this.$b.poll_branch(cx, scope, &mut values.$i).is_pending();)+
                if pending { Poll::Pending } else { Poll::Ready(()) }
            }

            fn stop_all(self: Pin<&mut Self>) {
                let this = self.project();
                $(this.$b.stop();)+
            }

            #[inline]
            fn take(self: Pin<&mut Self>) -> Option<Self::Value> {
                self.project().values.take_all()
            }

            fn running_all(&self, census: &mut Census) {
                $(self.$b.running(census);)+
            }
        }

        /// A tuple nested in another (the macro nests tuples longer than
        /// the runtime's longest).
        impl<E, $($B: Branch<E, Value = $V>,)+ $($V),+> Branch<E>
            for $Join<$($B,)+ ($(Option<$V>,)+)>
        {
            type Value = ($($V,)+);

            fn poll_branch(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                scope: &Scope<E>,
                out: &mut Option<Self::Value>,
            ) -> Poll<()> {
                ready!(self.as_mut().poll_all(cx, scope));
                // Once: later polls find nothing left to take.
                if let Some(values) = Branches::<E>::take(self) {
                    *out = Some(values);
                }
                Poll::Ready(())
            }

            fn stop(self: Pin<&mut Self>) {
                self.stop_all();
            }

            fn running(&self, census: &mut Census) {
                self.running_all(census);
            }
        }

        impl<E, $($B: Branch<E, Value = $V>,)+ $($V),+> IntoBranches<E> for ($($B,)+) {
            type Branches = $Join<$($B,)+ ($(Option<$V>,)+)>;
            const LEN: usize = [$(stringify!($b)),+].len();

            fn into_branches(self) -> Self::Branches {
                let ($($b,)+) = self;
                $Join { $($b,)+ values: ($(None::<$V>,)+) }
            }
        }

        impl<'p, E, $($B: Branch<E, Value = $V>,)+ $($V),+> IntoBranches<E>
            for Pin<&'p mut $Join<$($B,)+ ($(Option<$V>,)+)>>
        {
            type Branches = Self;
            const LEN: usize = [$(stringify!($b)),+].len();

            #[inline]
            fn into_branches(self) -> Self {
                self
            }
        }
    };
}

join!(Join1: A a VA 0);
join!(Join2: A a VA 0, B b VB 1);
join!(Join3: A a VA 0, B b VB 1, C c VC 2);
join!(Join4: A a VA 0, B b VB 1, C c VC 2, D d VD 3);
join!(Join5: A a VA 0, B b VB 1, C c VC 2, D d VD 3, F f VF 4);
join!(Join6: A a VA 0, B b VB 1, C c VC 2, D d VD 3, F f VF 4, G g VG 5);
join!(Join7: A a VA 0, B b VB 1, C c VC 2, D d VD 3, F f VF 4, G g VG 5, H h VH 6);
join!(Join8: A a VA 0, B b VB 1, C c VC 2, D d VD 3, F f VF 4, G g VG 5, H h VH 6, I i VI 7);

/// One `errgroup!` evaluation: the group's state and its `grace`.
#[derive(Debug)]
pub struct Scope<E> {
    /// Inline: the in-task branches borrow it, and `#[spawn]` ones record
    /// their error in the core, so it needs no `Arc` of its own. Dropped
    /// by hand, only if it holds something (see `Drop`).
    pub(crate) state: ManuallyDrop<State<E>>,
    grace: Option<Duration>,
    /// A `CancellationToken` parent, watched by the loop. A [`Cold`]: see
    /// `Drop`.
    token: Cold<CancellationToken>,
}

impl<E: 'static> Scope<E> {
    #[inline]
    pub(crate) fn with_state(
        state: State<E>,
        grace: Option<Duration>,
        token: Option<CancellationToken>,
    ) -> Self {
        if grace.is_some() {
            // Grace is a timer on the core's cancellation (`Place`, state.rs).
            state.core();
        }
        Scope {
            state: ManuallyDrop::new(state),
            grace,
            token: Cold::new(token),
        }
    }

    /// Runs `branches` (a tuple of what the branch constructors made) to
    /// the end: the group's result, values in branch order.
    #[inline]
    pub fn run<B: IntoBranches<E>>(&self, branches: B) -> Driver<'_, E, B::Branches> {
        Driver {
            scope: self,
            branches: branches.into_branches(),
            life: self.life(B::LEN),
        }
    }

    /// [`Scope::run`]'s part that is not generic over the branches (each
    /// group's tuple is a type of its own).
    // `#[inline]`: see `drive`.
    #[inline]
    fn life(&self, branches: usize) -> Lifecycle<'_, std::future::Ready<()>> {
        // A group without a core has no timer, token or grace (`Place`, state.rs).
        // Only with the feature: finding the span reads `promoted` (an
        // atomic, which is read even when nothing uses what it says).
        if trace::ENABLED {
            trace::branches(self.state.place.span(), branches);
        }
        match self.state.place.core() {
            Some(core) => Lifecycle::new(core, self.grace, self.token.clone(), None),
            None => Lifecycle::idle(),
        }
    }
}

impl<E> Drop for Scope<E> {
    // `#[inline]`: a trivial group's drop is then a test or two where it
    // is written, not a call.
    #[inline]
    fn drop(&mut self) {
        // A state that holds nothing is left undropped (it has no core to
        // shut down either).
        if !self.state.holds_nothing() {
            drop_state(self);
        }
    }
}

/// [`Scope`]'s drop of a state that holds something.
#[cold]
#[inline(never)]
fn drop_state<E>(scope: &mut Scope<E>) {
    // Nothing if the group finished (its driver returned its result), or
    // never had a core: then nothing outlives it (`Place`, state.rs).
    if let Some(core) = scope.state.place.core() {
        core.shut_down();
    }
    let state = std::mem::replace(&mut scope.state, ManuallyDrop::new(State::empty()));
    drop(ManuallyDrop::into_inner(state));
}

pin_project! {
    /// The future of one group: see the module docs for what each poll does.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    #[derive(Debug)]
    pub struct Driver<'s, E, B, S = std::future::Ready<()>> {
        scope: &'s Scope<E>,
        #[pin]
        branches: B,
        #[pin]
        life: Lifecycle<'s, S>,
    }
}

impl<'s, E, B> Driver<'s, E, B> {
    /// `shutdown_on = signal;`: the group is shut down on purpose
    /// ([`Cause::Shutdown`](crate::Cause::Shutdown) by `"shutdown_on"`) when
    /// `signal` completes; its output is ignored.
    pub fn shutdown_on<F: std::future::IntoFuture>(
        self,
        signal: F,
    ) -> Driver<'s, E, B, F::IntoFuture> {
        let Driver {
            scope,
            branches,
            life,
        } = self;
        // The signal cancels the group through its core.
        scope.state.core();
        Driver {
            scope,
            branches,
            life: life.with_signal(Some(signal.into_future())),
        }
    }
}

impl<E: Send + Sync + 'static, B: Branches<E>, S: Future> Future for Driver<'_, E, B, S> {
    type Output = Result<B::Value, Error<E>>;

    // `#[inline]`: into the block that awaits the group, with `drive`'s
    // fast path (281 -> 263 Ir per trivial group, benches/instructions.sh).
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let ended = ready!(drive(this.scope, this.branches.as_mut(), this.life, cx));
        // Taken here, where the branches' type is known: through the `dyn`
        // pointer, the values came back in a slot the driver then read as
        // one 16-byte word over the 8-byte writes just made, a load the CPU
        // waits out (benches/README.md).
        finish(this.scope, ended, this.branches.take())
    }
}

/// The group's result, once [`drive`] said how it ended: not generic over
/// the branches, as `drive` is not.
// `always` in optimized builds, as `drive`: with `#[inline]` alone it was
// left called in `instructions`'s binary (339 instructions against 313).
#[allow(clippy::inline_always, reason = "measured: see the comment above")]
#[cfg_attr(debug_assertions, inline)]
#[cfg_attr(not(debug_assertions), inline(always))]
fn finish<E: Send + Sync + 'static, V>(
    scope: &Scope<E>,
    ended: Ended,
    value: Option<V>,
) -> Poll<Result<V, Error<E>>> {
    match ended {
        Ended::Inline => scope.state.finish_inline(value),
        Ended::Closed { tasks_ok } => Poll::Ready(scope.state.finish_closed(value, tasks_ok)),
    }
}

/// How [`drive`] found the group ended: still without a core, or closed
/// (its tasks awaited: `tasks_ok`, none failed or panicked).
#[derive(Clone, Copy)]
enum Ended {
    Inline,
    Closed { tasks_ok: bool },
}

/// [`Driver`]'s poll, with the branches behind a `dyn` pointer: compiled
/// once per value type, where each group's tuple of branches is a type of
/// its own and what is generic over it is compiled again for every group
/// (benches/compile-time.sh). What only a group with a core does is out of
/// line ([`poll_life`], [`after_branches`]).
// Optimized, always inlined in its group's `Driver::poll`: a call and a
// frame fewer per poll, and the branches' calls are direct (295 -> 281 Ir
// per trivial group, benches/instructions.sh); with `#[inline]` alone,
// LLVM left it called in one bench binary and not in another.
// Unoptimized (debug assertions: the dev profile, where compile time is
// measured), a plain `#[inline]`: compiled once all the same.
#[allow(clippy::inline_always, reason = "measured: see the comment above")]
#[cfg_attr(debug_assertions, inline)]
#[cfg_attr(not(debug_assertions), inline(always))]
fn drive<E: Send + Sync + 'static, V, S: Future>(
    scope: &Scope<E>,
    mut branches: Pin<&mut dyn Branches<E, Value = V>>,
    mut life: Pin<&mut Lifecycle<'_, S>>,
    cx: &mut Context<'_>,
) -> Poll<Ended> {
    let place = &scope.state.place;
    if let Some(core) = place.core() {
        poll_life(core, branches.as_mut(), life.as_mut(), cx);
    }
    // Without a core: no timer, token, signal, task or watcher, only
    // the branches (`Place`, state.rs).
    let polled = lend(place, || branches.as_mut().poll_all(cx, scope));
    if let Some(core) = place.core() {
        return after_branches(core, &*branches, &life, cx, polled);
    }
    // Still without a core: no task to await, no question to answer.
    polled.map(|()| Ended::Inline)
}

/// The lifecycle of a group with a core, polled before its branches: when
/// grace expires, what still runs of them is stopped.
#[inline(never)]
fn poll_life<E, V, S: Future>(
    core: &Core,
    branches: Pin<&mut dyn Branches<E, Value = V>>,
    life: Pin<&mut Lifecycle<'_, S>>,
    cx: &mut Context<'_>,
) {
    let branches_now = &*branches;
    let expired = life.poll(cx, core, |since| census(core, since, branches_now));
    if expired {
        branches.stop_all();
    }
}

/// The poll of a group with a core once its branches were polled
/// (`polled`): its tasks, the questions of its watchers, its end.
#[inline(never)]
fn after_branches<E, V, S: Future>(
    core: &Core,
    branches: &dyn Branches<E, Value = V>,
    life: &Lifecycle<'_, S>,
    cx: &mut Context<'_>,
    polled: Poll<()>,
) -> Poll<Ended> {
    // One read of the flags serves the tasks and the watchers: nothing
    // more for a group that has neither.
    let look = core.look();
    let tasks = core.poll_tasks(look, cx, polled.is_ready());
    let done = match tasks {
        Poll::Ready(tasks_ok) if polled.is_ready() => Some(tasks_ok),
        _ => None,
    };
    // After the tasks: a poll that finishes the group keeps no waker (no
    // question can wait for a driver that has returned).
    life.answer(cx, core, look, done.is_none(), |since| {
        census(core, since, branches)
    });
    match done {
        Some(tasks_ok) => Poll::Ready(Ended::Closed { tasks_ok }),
        None => Poll::Pending,
    }
}

/// What runs now: the branches in the order written, then the tasks.
fn census<E, B: Branches<E> + ?Sized>(core: &Core, since: Option<Instant>, branches: &B) -> Census {
    core.census(since, |census| branches.running_all(census))
}

pin_project! {
    /// A `#[spawn]` branch of a group without `limit` run in the group's
    /// own task (`Spawn::inline`), or, outside a tokio task, spawned as the
    /// others are. Run inline, it is polled as an in-task branch of a group
    /// without `limit` is ([`FreeLeaf`]: no phase, its value in place of
    /// its body), but stopped as a task is: when `grace` expires it is
    /// dropped where it stands, and a panic of its destructors then is
    /// the group's (resumed once every branch has returned), as that of an
    /// aborted task is, not one let out of the group's poll while its
    /// other branches still run.
    pub(crate) struct InlineLeaf<'s, E, F, T> {
        #[pin]
        stage: Placed<'s, F, T>,
        task: Named<'static>,
        // The scope's (the branch lives in the group's future): where a
        // panic of its destructors goes when `grace` expires.
        core: &'s Arc<Core>,
        echoed: bool,
        error: PhantomData<fn() -> E>,
    }
    impl<'s, E, F, T> PinnedDrop for InlineLeaf<'s, E, F, T> {
        fn drop(this: Pin<&mut Self>) {
            // The group's future is dropped: a task it aborts would panic
            // into its join handle, dropped with it, so this panic goes
            // nowhere either.
            let mut stage = this.project().stage;
            if let PlacedProj::Inline { .. } = stage.as_mut().project() {
                let _ = catch_unwind(AssertUnwindSafe(|| stage.set(Placed::Gone)));
            }
        }
    }
}

pin_project! {
    /// Where an [`InlineLeaf`] runs (its value goes to its join).
    #[project = PlacedProj]
    enum Placed<'s, F, T> {
        Inline { #[pin] body: F },
        Spawned { #[pin] run: Spawned<T, &'s Arc<Core>> },
        Gone,
    }
}

impl<'s, E, F: Future, T> InlineLeaf<'s, E, Traced<F>, T> {
    /// `body`, run in the group's task.
    #[inline]
    pub(crate) fn inline(core: &'s Arc<Core>, task: Named<'static>, body: F) -> Self {
        let span = if trace::ENABLED {
            task.span(core.span())
        } else {
            trace::none()
        };
        InlineLeaf::placed(
            core,
            task,
            Placed::Inline {
                body: trace::instrument(span, body),
            },
        )
    }

    /// A body already spawned as `run`.
    pub(crate) fn spawned(
        core: &'s Arc<Core>,
        task: Named<'static>,
        run: Spawned<T, &'s Arc<Core>>,
    ) -> Self {
        InlineLeaf::placed(core, task, Placed::Spawned { run })
    }

    #[inline]
    fn placed(core: &'s Arc<Core>, task: Named<'static>, stage: Placed<'s, Traced<F>, T>) -> Self {
        InlineLeaf {
            stage,
            task,
            core,
            echoed: false,
            error: PhantomData,
        }
    }
}

impl<E, F, T> Branch<E> for InlineLeaf<'_, E, F, T>
where
    F: Future<Output = Result<T, E>>,
{
    type Value = T;

    fn poll_branch(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        scope: &Scope<E>,
        out: &mut Option<T>,
    ) -> Poll<()> {
        let mut this = self.project();
        *out = match this.stage.as_mut().project() {
            PlacedProj::Inline { body } => {
                ready!(poll_in_task(&scope.state, this.task, this.echoed, body, cx))
            }
            PlacedProj::Spawned { run } => ready!(run.poll(cx)),
            PlacedProj::Gone => return Poll::Ready(()),
        };
        this.stage.set(Placed::Gone);
        Poll::Ready(())
    }

    fn stop(self: Pin<&mut Self>) {
        let this = self.project();
        let mut stage = this.stage;
        match stage.as_mut().project() {
            PlacedProj::Inline { .. } => {
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| stage.set(Placed::Gone))) {
                    this.core.panicked(this.task.name(), payload);
                }
            }
            // Aborted, and still awaited.
            PlacedProj::Spawned { run } => {
                run.stop();
            }
            PlacedProj::Gone => {}
        }
    }

    fn running(&self, census: &mut Census) {
        if let Placed::Inline { .. } | Placed::Spawned { .. } = self.stage {
            add_running(&self.task, census);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::cell::RefCell;
    use std::future::{Future, pending, poll_fn};
    use std::pin::pin;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::time::Duration;

    use tokio::time::Instant;

    use crate::__private::{Blocking, Config, InTask, Scope, Spawn, join};
    use crate::{Cause, Error};

    /// Sets its flag when dropped.
    struct Dropped<'a>(&'a AtomicBool);

    impl Drop for Dropped<'_> {
        fn drop(&mut self) {
            self.0.store(true, SeqCst);
        }
    }

    #[tokio::test]
    async fn values_come_back_in_branch_order_through_nested_tuples() {
        let scope = Scope::<()>::new(Config::new());
        let b = |i: u32| InTask.branch(&scope, scope.ctx("b"), async move { Ok(i) });
        let inner = join((b(7), b(8), b(9), b(10), b(11), b(12), b(13), b(14)));
        let values = scope
            .run((b(0), b(1), b(2), b(3), b(4), b(5), b(6), inner))
            .await
            .unwrap();
        assert_eq!(values.0, 0);
        assert_eq!(values.6, 6);
        assert_eq!(values.7, (7, 8, 9, 10, 11, 12, 13, 14));
    }

    /// Each poll of the group polls its branches in the order written, and
    /// a branch that ends is not polled again.
    #[tokio::test]
    async fn branches_are_polled_in_order_and_not_after_they_end() {
        let log = RefCell::new(Vec::new());
        let scope = Scope::<()>::new(Config::new());
        let branch = |name: &'static str, polls: usize| {
            let log = &log;
            let mut left = polls;
            InTask.branch(
                &scope,
                scope.ctx(name),
                poll_fn(move |cx| {
                    log.borrow_mut().push(name);
                    if left == 0 {
                        return std::task::Poll::Ready(Ok(()));
                    }
                    left -= 1;
                    cx.waker().wake_by_ref();
                    std::task::Poll::Pending
                }),
            )
        };
        scope
            .run((branch("a", 0), branch("b", 2), branch("c", 1)))
            .await
            .unwrap();
        assert_eq!(*log.borrow(), ["a", "b", "c", "b", "c", "b"]);
    }

    #[tokio::test]
    async fn the_first_error_cancels_the_others_and_is_the_result() {
        let scope = Scope::<&str>::new(Config::new());
        let waiting = scope.ctx("waiting");
        let result = scope
            .run((
                InTask.branch(&scope, waiting.clone(), async {
                    waiting.cancelled().await;
                    Ok(waiting.cause())
                }),
                InTask.branch(&scope, scope.ctx("failing"), async { Err::<(), _>("boom") }),
            ))
            .await;
        match result {
            Err(Error::Failed { task, error }) => {
                assert_eq!(task, "failing");
                assert_eq!(error, "boom");
            }
            other => panic!("{other:?}"),
        }
    }

    /// The deadline timer is the loop's: it cancels the group.
    #[tokio::test(start_paused = true)]
    async fn the_deadline_cancels_the_group_at_its_instant() {
        let start = Instant::now();
        let scope = Scope::<()>::new(Config::new().timeout(Duration::from_secs(2)));
        let ctx = scope.ctx("a");
        let result = scope
            .run((InTask.branch(&scope, ctx.clone(), async {
                ctx.cancelled().await;
                Ok(())
            }),))
            .await;
        assert!(result.is_ok(), "every branch still returned Ok");
        assert_eq!(Instant::now() - start, Duration::from_secs(2));
        assert_eq!(ctx.cause(), Some(Cause::DeadlineExceeded));
    }

    /// When grace expires an in-task branch is dropped where it stands, a
    /// blocking one is waited for.
    #[tokio::test(start_paused = true)]
    async fn grace_drops_in_task_branches_and_waits_for_blocking_ones() {
        let dropped = AtomicBool::new(false);
        let blocking_done = std::sync::Arc::new(AtomicBool::new(false));
        let scope = Scope::<&str>::new(Config::new().grace(Duration::from_secs(1)));
        let done = std::sync::Arc::clone(&blocking_done);
        let result = scope
            .run((
                InTask.branch(&scope, scope.ctx("stubborn"), async {
                    let _guard = Dropped(&dropped);
                    pending::<()>().await;
                    Ok(())
                }),
                Blocking.branch(
                    &scope,
                    scope.ctx("blocking"),
                    move |ctx: &crate::BranchCtx<_>| {
                        while !ctx.is_cancelled() {
                            std::thread::yield_now();
                        }
                        done.store(true, SeqCst);
                        Ok(())
                    },
                ),
                InTask.branch(&scope, scope.ctx("failing"), async { Err::<(), _>("boom") }),
            ))
            .await;
        assert_eq!(result.unwrap_err().task().unwrap(), "failing");
        assert!(dropped.load(SeqCst));
        assert!(blocking_done.load(SeqCst));
    }

    /// A `#[spawn]` branch is a tokio task: the group is not done until it
    /// is, and a value comes back through it.
    #[tokio::test]
    async fn a_spawned_branch_gives_its_value_through_its_task() {
        let scope = Scope::<()>::new(Config::new());
        let (value,) = scope
            .run((Spawn.branch(&scope, scope.ctx("s"), async {
                tokio::task::yield_now().await;
                Ok(5)
            }),))
            .await
            .unwrap();
        assert_eq!(value, 5);
    }

    /// The loop waits for the group's `ctx.spawn` tasks after its branches.
    #[tokio::test]
    async fn the_group_waits_for_its_tasks_after_its_branches() {
        let ran = std::sync::Arc::new(AtomicBool::new(false));
        let scope = Scope::<()>::new(Config::new());
        let ctx = scope.ctx("spawner");
        let flag = std::sync::Arc::clone(&ran);
        let (value,) = scope
            .run((InTask.branch(&scope, ctx.clone(), async {
                ctx.spawn("late", async move {
                    tokio::task::yield_now().await;
                    flag.store(true, SeqCst);
                    Ok::<(), ()>(())
                })
                .unwrap();
                Ok(1)
            }),))
            .await
            .unwrap();
        assert_eq!(value, 1);
        assert!(ran.load(SeqCst));
    }

    /// `shutdown_on`: when the signal completes, the group is shut down on
    /// purpose, and returns `Ok` if its branches still do.
    #[tokio::test(start_paused = true)]
    async fn a_signal_shuts_the_group_down_when_it_completes() {
        let start = Instant::now();
        let scope = Scope::<()>::new(Config::new());
        let ctx = scope.ctx("server");
        let branch = InTask.branch(&scope, ctx.clone(), async {
            ctx.cancelled().await;
            Ok(())
        });
        let signal = tokio::time::sleep(Duration::from_secs(3));
        scope.run((branch,)).shutdown_on(signal).await.unwrap();
        assert_eq!(Instant::now() - start, Duration::from_secs(3));
        assert!(ctx.cause().unwrap().is_shutdown());
    }

    /// Dropping the group's future cancels it with `Dropped`.
    #[tokio::test]
    async fn a_dropped_group_is_cancelled_with_dropped() {
        let scope = Scope::<()>::new(Config::new());
        // A `Ctx` to keep past the group: a branch's own borrows it.
        let ctx = scope.ctx("a").clone();
        {
            let branch = InTask.branch(&scope, ctx.clone(), pending::<Result<(), ()>>());
            let mut run = pin!(scope.run((branch,)));
            poll_fn(|cx| {
                assert!(run.as_mut().poll(cx).is_pending());
                std::task::Poll::Ready(())
            })
            .await;
        }
        drop(scope);
        assert_eq!(ctx.cause(), Some(Cause::Dropped));
    }
}
