//! What a group tells `tracing`, behind the `tracing` cargo feature: a span
//! per group (its call site, its branch count, limit and deadline) and per
//! branch, fan-out item and task, named as in errors (`fetch`, `items[3]`);
//! events where users debug (a branch failed, the group was cancelled and
//! why, a panic, grace expired).
//!
//! Without the feature every item here is a zero-sized stand-in and every
//! function an empty inline one: the default build carries no span, no
//! allocation and no dependency for it (tests/allocations.rs).

use std::panic::Location;

use crate::error::{Cause, TaskName};

#[cfg(feature = "tracing")]
mod on {
    use std::future::Future;
    use std::panic::Location;
    use std::time::Duration;

    use tokio::time::Instant;

    use crate::error::{Cause, StillRunning, TaskName};

    /// Whether events are told: callers skip the work of building them.
    pub(crate) const ENABLED: bool = true;

    pub(crate) type Span = tracing::Span;

    /// The span of a group that has none (never so with the feature: see `Place` in state.rs).
    pub(crate) fn none() -> Span {
        tracing::Span::none()
    }
    pub(crate) type Traced<F> = tracing::instrument::Instrumented<F>;
    pub(crate) type Entered<'a> = tracing::span::Entered<'a>;

    pub(crate) fn group(
        site: Option<&'static Location<'static>>,
        limit: Option<usize>,
        deadline: Option<Instant>,
    ) -> Span {
        // Formatted by the subscriber, if one wants the span: a group no
        // subscriber listens to allocates nothing for it.
        let site = Site(site);
        let span = tracing::info_span!(
            "errgroup",
            site = %site,
            branches = tracing::field::Empty,
            limit = tracing::field::Empty,
            timeout = tracing::field::Empty,
        );
        if let Some(limit) = limit {
            span.record("limit", limit);
        }
        if let Some(at) = deadline {
            let left = at.saturating_duration_since(Instant::now());
            // To the millisecond: the nanoseconds since `timeout` was read are noise.
            let left = Duration::from_millis(
                u64::try_from(left.as_micros().div_ceil(1000)).unwrap_or(u64::MAX),
            );
            span.record("timeout", tracing::field::debug(left));
        }
        span
    }

    /// Where a group was written, `file:line`, or `?`.
    struct Site(Option<&'static Location<'static>>);

    impl std::fmt::Display for Site {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self.0 {
                Some(s) => write!(f, "{}:{}", s.file(), s.line()),
                None => f.write_str("?"),
            }
        }
    }

    pub(crate) fn branches(group: &Span, n: usize) {
        group.record("branches", n);
    }

    pub(crate) fn branch(group: &Span, task: &TaskName) -> Span {
        tracing::info_span!(parent: group, "branch", name = %task)
    }

    pub(crate) fn instrument<F: Future>(span: Span, fut: F) -> Traced<F> {
        tracing::Instrument::instrument(fut, span)
    }

    pub(crate) fn enter(span: &Span) -> Entered<'_> {
        span.enter()
    }

    /// A task's name, kept for an event after the task moved into a cause.
    pub(crate) type Name = TaskName;

    pub(crate) fn name(task: &TaskName) -> Name {
        task.clone()
    }

    /// [`name`] of a name made only if it is shown.
    pub(crate) fn name_with(task: impl FnOnce() -> TaskName) -> Name {
        task()
    }

    pub(crate) fn failed(group: &Span, task: &Name, first: bool) {
        if first {
            tracing::warn!(parent: group, task = %task, first, "branch failed; cancelling the group");
        } else {
            tracing::info!(parent: group, task = %task, first, "branch failed after the cancellation");
        }
    }

    pub(crate) fn cancelled(group: &Span, cause: &Cause) {
        if *cause == Cause::Finished {
            tracing::debug!(parent: group, cause = %cause, "group finished");
        } else {
            tracing::info!(parent: group, cause = %cause, "group cancelled");
        }
    }

    pub(crate) fn panicked(group: &Span, task: &TaskName) {
        tracing::error!(parent: group, task = %task, "branch panicked; resumed once the others return");
    }

    pub(crate) fn supervised(group: &Span, task: &TaskName, failure: &dyn std::fmt::Display) {
        tracing::warn!(parent: group, task = %task, "supervised task {failure}");
    }

    pub(crate) fn grace_expired(group: &Span, grace: Duration, report: &StillRunning) {
        let still_running = report
            .tasks()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        tracing::warn!(parent: group, grace = ?grace, still_running = %still_running, "grace expired: dropping or aborting what still runs");
    }
}

#[cfg(feature = "tracing")]
pub(crate) use on::*;

#[cfg(not(feature = "tracing"))]
mod off {
    use std::future::Future;
    use std::panic::Location;
    use std::time::Duration;

    use tokio::time::Instant;

    use crate::error::{Cause, StillRunning, TaskName};

    /// Whether events are told: callers skip the work of building them.
    pub(crate) const ENABLED: bool = false;

    /// Nothing: the `tracing` feature is off.
    #[derive(Clone, Debug, Default)]
    pub(crate) struct Span;

    pub(crate) fn none() -> Span {
        Span
    }

    pub(crate) type Traced<F> = F;
    pub(crate) type Entered<'a> = &'a Span;

    #[inline]
    pub(crate) fn group(
        _: Option<&'static Location<'static>>,
        _: Option<usize>,
        _: Option<Instant>,
    ) -> Span {
        Span
    }

    #[inline]
    pub(crate) fn branches(_: &Span, _: usize) {}

    #[inline]
    pub(crate) fn branch(_: &Span, _: &TaskName) -> Span {
        Span
    }

    #[inline]
    pub(crate) fn instrument<F: Future>(_: Span, fut: F) -> Traced<F> {
        fut
    }

    #[inline]
    pub(crate) fn enter(span: &Span) -> Entered<'_> {
        span
    }

    /// Nothing: the `tracing` feature is off.
    pub(crate) struct Name;

    #[inline]
    pub(crate) fn name(_: &TaskName) -> Name {
        Name
    }

    #[inline]
    pub(crate) fn name_with(_: impl FnOnce() -> TaskName) -> Name {
        Name
    }

    #[inline]
    pub(crate) fn failed(_: &Span, _: &Name, _: bool) {}

    #[inline]
    pub(crate) fn cancelled(_: &Span, _: &Cause) {}

    #[inline]
    pub(crate) fn panicked(_: &Span, _: &TaskName) {}

    #[inline]
    pub(crate) fn supervised(_: &Span, _: &TaskName, _: &dyn std::fmt::Display) {}

    #[inline]
    pub(crate) fn grace_expired(_: &Span, _: Duration, _: &StillRunning) {}
}

#[cfg(not(feature = "tracing"))]
pub(crate) use off::*;

// Both halves must offer the same items; these uses fail to compile if one
// drifts.
#[allow(dead_code, reason = "a compile-time check of the two halves")]
fn _same_shape(site: &'static Location<'static>, task: &TaskName, cause: &Cause) {
    let span = group(Some(site), None, None);
    branches(&span, 0);
    let _ = branch(&span, task);
    failed(&span, &name(task), true);
    cancelled(&span, cause);
    panicked(&span, task);
    supervised(&span, task, &"failed");
}
