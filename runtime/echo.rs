//! How a group tells an echo of its cancellation from a failure of a
//! branch's own (`Error::suppressed`).
//!
//! The rule: an `Err` a branch returns after its group was cancelled is an
//! echo when, during that branch's run, the group handed it a `Cancelled`:
//! from its ctx (`check`, `sleep`, `run`, a refused `spawn`), from a group
//! channel, or as the `Err` of a group nested in it that its parent's
//! cancellation stopped. Any other `Err` is a failure of its own, kept.
//!
//! Per branch without a word of state per branch in the group: a body runs
//! on one thread for the length of each poll, so a flag on that thread,
//! raised where a `Cancelled` is handed out and collected around each poll
//! of the body ([`Collect`]), says which body it was handed to. Around a
//! poll the flag is saved and restored, so a branch of a group nested in
//! the body collects its own and the body sees only what reached it
//! directly (a nested group's own `Err`).

use std::cell::Cell;

std::thread_local! {
    static HANDED: Cell<bool> = const { Cell::new(false) };
}

/// A `Cancelled` is handed to the code running now.
#[inline]
pub(crate) fn handed() {
    HANDED.with(|h| h.set(true));
}

/// Around one poll (or one run) of a body: [`Collect::start`] before it,
/// [`Collect::finish`] after, which says whether a `Cancelled` was handed
/// to the body meanwhile.
#[derive(Debug)]
#[must_use]
pub(crate) struct Collect(bool);

impl Collect {
    #[inline]
    pub(crate) fn start() -> Self {
        Collect(HANDED.with(|h| h.replace(false)))
    }

    #[inline]
    pub(crate) fn finish(self) -> bool {
        HANDED.with(|h| h.replace(self.0))
    }
}
