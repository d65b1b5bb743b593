//! Where an `errgroup!` group's state lives: in the group's own future
//! until something needs an owned, `'static` handle on it, then in an
//! `Arc<Core>` (issue 22, item 4).
//!
//! A root group whose branches are all in-task, with no `limit`, deadline,
//! `grace`, token or `shutdown_on` and without the `tracing` feature, keeps
//! here what its code reads and writes: its cancellation cause, its first
//! panic, and how many later failures it ranked. Its branches' ctxs borrow
//! it (`BranchCtx<'_, E>`), so such a group allocates nothing.
//!
//! # Promotion
//!
//! Whatever needs a `'static` handle (`ctx.clone()`, a `&Ctx` made by
//! deref, `ctx.spawn`, a channel, a watch, a token, a `#[spawn]` or
//! `#[blocking]` branch, a fan-out, a group nested in one of its branches,
//! a waiter on the cancellation) calls [`Place::promote`], which builds
//! the group's [`Core`] the first time, moves what the inline state knows
//! into it, and from then on every operation here forwards to it (one
//! load). A group that needs a core anyway ([`needs_core`]) has one from
//! birth.
//!
//! # Invariants
//!
//! - One cancellation record: before promotion, `slow.cause`; after, the
//!   core's. The core is published under the `slow` lock, and an inline
//!   cancellation takes that lock and forwards if the core is there: a
//!   cancellation racing a promotion (a `&BranchCtx` lent to a scoped
//!   thread) is never lost, and the first cause wins either way.
//! - `cancelled` is set only with `slow.cause`, under the lock: the hot
//!   read (`is_cancelled`) is one or two loads and takes no lock.
//! - Only a promoted group can be seen after it finished (every borrow of
//!   the inline state ends with the group's future), so `Finished` is set
//!   on promoted groups only, and an unpromoted group has nothing to tear
//!   down when its future is dropped.
//! - Nothing waits on the inline state: a waiter on the cancellation
//!   promotes first, so a cancellation while unpromoted wakes no one.

use std::any::Any;
use std::panic::Location;
use std::sync::OnceLock;

use crate::echo;
use crate::error::{Cancelled, Cause, TaskName};
use crate::state::{Core, Settings};
use crate::sync::{Arc, AtomicBool, AtomicUsize, Mutex, Ordering, lock};
use crate::trace;

scoped_tls::scoped_thread_local! {
    /// The unpromoted group whose in-task branches are being polled: a
    /// group created in one of them promotes it, to be its parent.
    static LENT: Place
}

/// `f()` with `place` lent as the ambient group (an unpromoted driver's
/// poll of its branches). An ambient group set inside `f` (a nested
/// group's driver, a task-local scope) is newer and wins: `under` says
/// which task-local ambient group this lend was made under.
pub(crate) fn lend<R>(place: &Place, f: impl FnOnce() -> R) -> R {
    place.under.store(
        address(crate::state::ambient_raw().as_ref()),
        Ordering::Relaxed,
    );
    LENT.set(place, f)
}

/// The ambient group: the innermost of the lent inline one (promoted
/// now) and the task-local one.
pub(crate) fn ambient() -> Option<Arc<Core>> {
    let task_local = crate::state::ambient_raw();
    if LENT.is_set() {
        return LENT.with(|place| {
            if place.under.load(Ordering::Relaxed) == address(task_local.as_ref()) {
                Some(Arc::clone(place.promote()))
            } else {
                task_local
            }
        });
    }
    task_local
}

/// Which group, for comparing: both are alive while compared, so an
/// address is not reused meanwhile.
fn address(core: Option<&Arc<Core>>) -> usize {
    core.map_or(0, |core| Arc::as_ptr(core).addr())
}

/// Whether a group built from `settings` needs its `Arc<Core>` from birth:
/// a parent (its cancellation reaches the group through the core's hook),
/// a timer or a `limit` (driven through the core), or the `tracing`
/// feature (the group's span lives in the core).
pub(crate) fn needs_core(settings: &Settings) -> bool {
    trace::ENABLED
        || settings.parent.is_some()
        || settings.token.is_some()
        || settings.deadline.is_some()
        || settings.limit.is_some()
}

/// A group's state, inline until promoted: see the module docs.
pub(crate) struct Place {
    /// `slow.cause` is set; read without the lock.
    cancelled: AtomicBool,
    slow: Mutex<Slow>,
    /// The promoted group; set once, under `slow`'s lock.
    core: OnceLock<Arc<Core>>,
    /// Where the group was written, for the core made on promotion.
    site: Option<&'static Location<'static>>,
    /// The span of a group that has no core: none (without the `tracing`
    /// feature every group may start inline, and spans are zero-sized).
    span: trace::Span,
    /// The task-local ambient group when this one was last lent ([`lend`]).
    under: AtomicUsize,
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
            .field("core", &self.core.get())
            .finish_non_exhaustive()
    }
}

impl Place {
    /// The state of a group built from `settings`: a core from birth if
    /// it needs one ([`needs_core`]).
    pub(crate) fn new(settings: Settings) -> Self {
        let site = settings.site;
        let core = OnceLock::new();
        if needs_core(&settings) {
            // Fresh: nothing else can have set it.
            let _ = core.set(Core::new(settings));
        }
        Place {
            cancelled: AtomicBool::new(false),
            slow: Mutex::new(Slow::default()),
            core,
            site,
            span: trace::none(),
            under: AtomicUsize::new(0),
        }
    }

    /// The group's core, if it has one yet.
    #[inline]
    pub(crate) fn core(&self) -> Option<&Arc<Core>> {
        self.core.get()
    }

    /// The group's core, made now if it has none: what the inline state
    /// knows (cause, panic, ranks) moves into it.
    pub(crate) fn promote(&self) -> &Arc<Core> {
        if let Some(core) = self.core.get() {
            return core;
        }
        let mut slow = lock(&self.slow);
        if let Some(core) = self.core.get() {
            return core;
        }
        let core = Core::new(Settings {
            site: self.site,
            ..Settings::default()
        });
        // A fresh core has no waiter, child or hook to call out to, so
        // this runs under the lock without calling into other code.
        core.adopt(slow.cause.take(), slow.panic.take(), slow.ranked);
        let core = self.core.get_or_init(|| core);
        drop(slow);
        core
    }

    /// The group's span: its core's, or none.
    pub(crate) fn span(&self) -> &trace::Span {
        match self.core.get() {
            Some(core) => core.span(),
            None => &self.span,
        }
    }

    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        match self.core.get() {
            Some(core) => core.is_cancelled(),
            None => self.cancelled.load(Ordering::Acquire),
        }
    }

    pub(crate) fn cause(&self) -> Option<Cause> {
        if let Some(core) = self.core.get() {
            return core.cause();
        }
        if !self.cancelled.load(Ordering::Acquire) {
            return None;
        }
        // Promoted meanwhile: the cause moved into the core.
        let inline = lock(&self.slow).cause.clone();
        inline.or_else(|| self.core.get()?.cause())
    }

    /// The `Cancelled` handed to code of the group that asks now (an
    /// echo: see echo.rs).
    pub(crate) fn cancelled_error(&self) -> Cancelled {
        echo::handed();
        Cancelled::new(self.cause().unwrap_or(Cause::Dropped))
    }

    /// Cancels the group with `cause`; `false` if it was already cancelled.
    pub(crate) fn cancel(&self, cause: Cause) -> bool {
        if let Some(core) = self.core.get() {
            return core.cancel(cause);
        }
        let mut slow = lock(&self.slow);
        if let Some(core) = self.core.get() {
            drop(slow);
            return core.cancel(cause);
        }
        if slow.cause.is_some() {
            return false;
        }
        slow.cause = Some(cause);
        self.cancelled.store(true, Ordering::Release);
        true
    }

    /// Cancels the group because `task` failed; `true` if it is the first
    /// failure (the caller keeps its error).
    pub(crate) fn cancel_failed(&self, task: TaskName) -> bool {
        match self.core.get() {
            Some(core) => core.cancel_failed(task),
            None => self.cancel(Cause::Failed { task }),
        }
    }

    /// `task` panicked: the first panic is kept, to be resumed when the
    /// group finishes.
    pub(crate) fn panicked(&self, task: TaskName, payload: Box<dyn Any + Send>) {
        if let Some(core) = self.core.get() {
            return core.panicked(task, payload);
        }
        self.cancel(Cause::Panicked { task });
        let mut slow = lock(&self.slow);
        match self.core.get() {
            Some(core) => {
                drop(slow);
                core.adopt(None, Some(payload), 0);
            }
            None => {
                slow.panic.get_or_insert(payload);
            }
        }
    }

    /// The rank of a later failure kept now.
    pub(crate) fn later_rank(&self) -> usize {
        if let Some(core) = self.core.get() {
            return core.later_rank();
        }
        let mut slow = lock(&self.slow);
        match self.core.get() {
            Some(core) => {
                drop(slow);
                core.later_rank()
            }
            None => {
                slow.ranked += 1;
                slow.ranked - 1
            }
        }
    }

    /// The panic of an unpromoted group, taken once it has finished.
    pub(crate) fn take_panic(&self) -> Option<Box<dyn Any + Send>> {
        lock(&self.slow).panic.take()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Place;
    use crate::error::{Cause, TaskName};
    use crate::state::Settings;

    fn root() -> Place {
        Place::new(Settings::default())
    }

    #[test]
    fn a_root_group_starts_without_a_core_and_keeps_its_first_cause() {
        let inline = root();
        assert_eq!(inline.core().is_some(), crate::trace::ENABLED);
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
