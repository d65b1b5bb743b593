//! The life of a group around its work, written once for both drivers (the
//! macro's `engine::Driver` and [`Group`](crate::Group)): what may end it
//! from outside (its deadline, a `CancellationToken` parent, a
//! `shutdown_on` signal), its `grace` after the cancellation, the report of
//! what still runs (when the deadline passes, when grace expires, when a
//! `Watch` asks) and the teardown of a group dropped before it finished.
//!
//! A driver holds one [`Lifecycle`] and polls it before its work; what its
//! work is (a tuple of branches, a set of tasks) it tells through a census
//! closure, and, when [`Lifecycle::poll`] says grace expired, it stops that
//! work itself (drops in-task branches, aborts its tasks). The `Group`, which
//! nobody polls until `wait`, runs the outside triggers in a watcher task
//! ([`Lifecycle::watch`]) and its grace in `wait`.
//!
//! Everything here happens at most once per group: each timer or signal is
//! dropped once it has fired, and a cancellation that loses (the group was
//! already cancelled) changes nothing (cancel.rs).

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::cancel::Cancellation;
use crate::cold::Cold;
use crate::error::{Cause, Census, Moment, TaskName};
use crate::state::{Core, Look, token_cause};
use crate::trace;

pin_project! {
    /// The `grace` timer of a group: idle until the group is cancelled.
    pub(crate) struct Grace<'a> {
        cancelled: Cancellation<'a>,
        #[pin]
        sleep: Option<Sleep>,
        period: Duration,
    }
}

impl std::fmt::Debug for Grace<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grace")
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

impl<'a> Grace<'a> {
    /// A grace period of `period` after `cancelled` completes.
    pub(crate) fn new(cancelled: Cancellation<'a>, period: Duration) -> Self {
        Grace {
            cancelled,
            sleep: None,
            period,
        }
    }

    /// Whether the grace period after the cancellation is over.
    pub(crate) fn poll_expired(self: Pin<&mut Self>, cx: &mut Context<'_>) -> bool {
        let mut this = self.project();
        if this.sleep.is_none() {
            if Pin::new(&mut *this.cancelled).poll(cx).is_pending() {
                return false;
            }
            this.sleep.set(Some(tokio::time::sleep(*this.period)));
        }
        this.sleep
            .as_pin_mut()
            .is_some_and(|sleep| sleep.poll(cx).is_ready())
    }
}

pin_project! {
    /// The timers a group may have: its deadline, its `grace`, a
    /// `CancellationToken` parent. Boxed, and only when one is set: together
    /// they are most of a driver's size, which every `.await` of a group
    /// would otherwise copy, timers or not.
    #[derive(Debug)]
    struct Timers<'c> {
        // When the group started, for how long its branches have run.
        since: Instant,
        #[pin]
        deadline: Option<Sleep>,
        #[pin]
        grace: Option<Grace<'c>>,
        #[pin]
        token: Option<WaitForCancellationFutureOwned>,
    }
}

pin_project! {
    /// One group's deadline, token parent, `shutdown_on` signal and grace:
    /// see the module docs.
    #[derive(Debug)]
    pub(crate) struct Lifecycle<'c, S> {
        timers: Cold<Pin<Box<Timers<'c>>>>,
        #[pin]
        signal: Option<S>,
    }
}

impl<'c, S> Lifecycle<'c, S> {
    /// The life of `core`'s group: its own deadline, `grace` after its
    /// cancellation, `token` and `signal` (each cancels it when it fires).
    // Most groups have none of them: building an empty life moved an
    // empty grace and timers around (~80 instructions per `#[spawn]`
    // group, benches/instructions.sh).
    pub(crate) fn new(
        core: &'c Core,
        grace: Option<Duration>,
        token: Option<CancellationToken>,
        signal: Option<S>,
    ) -> Self {
        let deadline = core.own_deadline();
        if deadline.is_none() && grace.is_none() && token.is_none() {
            return Lifecycle {
                timers: Cold::new(None),
                signal,
            };
        }
        let grace = grace.map(|period| Grace::new(core.cancellation(), period));
        Lifecycle::build(core, deadline, grace, token, signal)
    }

    /// No deadline, grace, token or signal: the life of a group without a
    /// core (`Place`, state.rs).
    #[inline]
    pub(crate) fn idle() -> Self {
        Lifecycle {
            timers: Cold::new(None),
            signal: None,
        }
    }

    /// `grace` alone: the part of a `Group`'s life that its `wait` drives
    /// (the rest is [`Lifecycle::watch`]'s).
    pub(crate) fn grace(core: &'c Core, grace: Option<Duration>) -> Self {
        let grace = grace.map(|period| Grace::new(core.cancellation(), period));
        Lifecycle::build(core, None, grace, None, None)
    }

    fn build(
        core: &Core,
        deadline: Option<Instant>,
        grace: Option<Grace<'c>>,
        token: Option<CancellationToken>,
        signal: Option<S>,
    ) -> Self {
        let timers = (deadline.is_some() || grace.is_some() || token.is_some()).then(|| {
            // A deadline or grace will report what still runs, and for how long.
            core.want_durations();
            Box::pin(Timers {
                since: Instant::now(),
                deadline: deadline.map(tokio::time::sleep_until),
                grace,
                token: token.map(CancellationToken::cancelled_owned),
            })
        });
        Lifecycle {
            timers: Cold::new(timers),
            signal,
        }
    }

    /// The same life, with `signal` as its `shutdown_on` signal.
    pub(crate) fn with_signal<T>(self, signal: Option<T>) -> Lifecycle<'c, T> {
        Lifecycle {
            timers: self.timers,
            signal,
        }
    }

    /// When the group's work started, if a timer is set.
    pub(crate) fn since(&self) -> Option<Instant> {
        self.timers.as_ref().map(|t| t.since)
    }
}

impl<S: Future> Lifecycle<'_, S> {
    /// Fires what has fired, in order: the deadline, the token, the signal,
    /// then grace. `true` when grace has just expired: the report is kept
    /// and the group closed to new tasks (those running aborted), and the
    /// caller stops what else it runs. `census(since)` is what runs now.
    // `#[inline]`: a group without timers or signal pays one branch per poll.
    #[inline]
    pub(crate) fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        core: &Core,
        census: impl Fn(Option<Instant>) -> Census,
    ) -> bool {
        let this = self.project();
        if this.timers.is_none() && this.signal.is_none() {
            return false;
        }
        Self::poll_all(this.timers, this.signal, cx, core, &census)
    }

    fn poll_all(
        timers: &mut Option<Pin<Box<Timers<'_>>>>,
        mut signal: Pin<&mut Option<S>>,
        cx: &mut Context<'_>,
        core: &Core,
        census: &dyn Fn(Option<Instant>) -> Census,
    ) -> bool {
        let mut timers = timers.as_mut().map(|t| t.as_mut().project());
        if let Some(timers) = timers.as_mut() {
            if let Some(deadline) = timers.deadline.as_mut().as_pin_mut() {
                if deadline.poll(cx).is_ready() {
                    timers.deadline.set(None);
                    core.deadline_passed(|| census(Some(*timers.since)));
                }
            }
            if let Some(token) = timers.token.as_mut().as_pin_mut() {
                if token.poll(cx).is_ready() {
                    timers.token.set(None);
                    core.cancel(token_cause());
                }
            }
        }
        if let Some(fired) = signal.as_mut().as_pin_mut() {
            if fired.poll(cx).is_ready() {
                signal.set(None);
                core.cancel(Cause::Shutdown {
                    by: TaskName::new("shutdown_on"),
                });
            }
        }
        let Some(mut timers) = timers else {
            return false;
        };
        let Some(mut grace) = timers.grace.as_mut().as_pin_mut() else {
            return false;
        };
        if !grace.as_mut().poll_expired(cx) {
            return false;
        }
        let period = grace.period;
        let report = census(Some(*timers.since)).report(Moment::GraceExpired);
        trace::grace_expired(core.span(), period, &report);
        timers.grace.set(None);
        // The report kept, and the shutdown rule (tasks.rs): abort, then
        // await until empty.
        core.grace_expired(report);
        true
    }

    /// [`Core::answer`], the census counted from when the life's timers
    /// started: the driver's waker is kept if it `sleeps` (returns
    /// `Pending`) after this; `look` is what the driver read.
    #[inline]
    pub(crate) fn answer(
        &self,
        cx: &mut Context<'_>,
        core: &Core,
        look: Look,
        sleeps: bool,
        census: impl Fn(Option<Instant>) -> Census,
    ) {
        core.answer(look, sleeps.then(|| cx.waker()), || census(self.since()));
    }
}

impl<S: Future + Send + 'static> Lifecycle<'static, S> {
    /// Runs the outside triggers (deadline, token, signal) of a group that
    /// no driver polls until it is awaited (a `Group`): a task of its own
    /// until they have fired or the group is cancelled. `None` when there is
    /// nothing to watch.
    pub(crate) fn watch(
        core: crate::sync::Arc<Core>,
        token: Option<CancellationToken>,
        signal: Option<S>,
    ) -> Option<impl Future<Output = ()> + Send + 'static> {
        let life = Lifecycle::build(&core, core.own_deadline(), None, token, signal);
        if life.timers.is_none() && life.signal.is_none() {
            return None;
        }
        Some(async move {
            let mut life = std::pin::pin!(life);
            let mut cancelled = std::pin::pin!(core.cancellation());
            std::future::poll_fn(|cx| {
                life.as_mut().poll(cx, &core, |_| core.task_census());
                cancelled.as_mut().poll(cx)
            })
            .await;
        })
    }
}
