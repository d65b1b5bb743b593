//! The state one group shares between its driver, its branches and every
//! `Ctx` handed out: the one implementation under both `errgroup!` and
//! [`Group`](crate::Group).
//!
//! # Invariants
//!
//! - A group is cancelled at most once: [`Core::cancel`] sets the cause and
//!   only then cancels the token, and refuses once either is done. So a
//!   cancelled token with no cause of its own means a parent cancelled it.
//! - The first error is the one whose `cancel(Failed)` won; a branch error
//!   that loses (because the group was already cancelled) is dropped. The
//!   slot is read only after every branch has returned, so no reader races
//!   a writer.
//! - Whether a branch may start is decided when the group creates it
//!   ([`State::start`]), not when it is first polled: every branch created
//!   before the cancellation starts, whatever order the driver polls them
//!   in (semantic 1), and none created after it does (semantic 9). A branch
//!   queued behind `limit` starts only if the group is still running when
//!   its permit arrives.
//! - A failing branch records its error (cancelling the group) before it
//!   gives its `limit` permit back, so the branch that takes the permit
//!   sees the cancellation, as in Go.
//! - A panic is caught in the branch, recorded (the first one wins), cancels
//!   the group, and is resumed by [`State::finish`] after every branch returned.

use std::any::Any;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::Poll;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::ctx::Ctx;
use crate::error::{Cancelled, Cause, Error, TaskName};

tokio::task_local! {
    /// The ctx of the branch being polled, so that a group created inside it
    /// becomes its child without `parent = ctx;` (semantic 6).
    static CURRENT: Ctx;
}

/// The ctx of the branch whose code is running now, if any.
pub(crate) fn ambient() -> Option<Ctx> {
    CURRENT.try_with(Ctx::clone).ok()
}

/// Cancellation state of one group; every `Ctx` of the group points here.
#[derive(Debug)]
pub(crate) struct Core {
    token: CancellationToken,
    cause: OnceLock<Cause>,
    /// This group's own deadline, from `timeout`/`deadline`.
    deadline: Option<Instant>,
    /// The earliest deadline of this group and its ancestors.
    effective_deadline: Option<Instant>,
    parent: Option<Arc<Core>>,
}

impl Core {
    pub(crate) fn new(parent: Option<&Ctx>, deadline: Option<Instant>) -> Arc<Core> {
        let parent = parent.map(|p| Arc::clone(p.core()));
        let token = match &parent {
            Some(p) => p.token.child_token(),
            None => CancellationToken::new(),
        };
        let effective_deadline =
            match (deadline, parent.as_ref().and_then(|p| p.effective_deadline)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        Arc::new(Core {
            token,
            cause: OnceLock::new(),
            deadline,
            effective_deadline,
            parent,
        })
    }

    /// Cancels the group with `cause`; `false` if it was already cancelled.
    pub(crate) fn cancel(&self, cause: Cause) -> bool {
        if self.token.is_cancelled() || self.cause.set(cause).is_err() {
            return false;
        }
        self.token.cancel();
        true
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.token.is_cancelled() || self.deadline_passed()
    }

    /// Deadlines are enforced by the group's driver, but a branch that spins
    /// on `is_cancelled()` without yielding starves the driver's timer; so a
    /// passed deadline is also noticed here, and cancels the group it belongs to.
    fn deadline_passed(&self) -> bool {
        let Some(at) = self.effective_deadline else {
            return false;
        };
        if Instant::now() < at {
            return false;
        }
        let mut core = self;
        loop {
            if core.deadline.is_some_and(|d| d <= at) {
                core.cancel(Cause::DeadlineExceeded);
                return true;
            }
            match &core.parent {
                Some(p) => core = p,
                None => return true,
            }
        }
    }

    pub(crate) fn cause(&self) -> Option<Cause> {
        if let Some(cause) = self.cause.get() {
            return Some(cause.clone());
        }
        if !self.is_cancelled() {
            return None;
        }
        if let Some(cause) = self.cause.get() {
            return Some(cause.clone());
        }
        let parent = self.parent.as_ref()?;
        Some(Cause::Parent(Box::new(parent.cause()?)))
    }

    pub(crate) fn cancelled_error(&self) -> Cancelled {
        Cancelled::new(self.cause().unwrap_or(Cause::Dropped))
    }

    pub(crate) fn token(&self) -> &CancellationToken {
        &self.token
    }

    pub(crate) fn effective_deadline(&self) -> Option<Instant> {
        self.effective_deadline
    }

    pub(crate) fn own_deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Tightens the deadline; only before the core is shared.
    pub(crate) fn set_deadline(&mut self, at: Instant) {
        self.deadline = Some(self.deadline.map_or(at, |d| d.min(at)));
        self.effective_deadline = Some(self.effective_deadline.map_or(at, |d| d.min(at)));
    }
}

/// What a group collects besides its cancellation state.
#[derive(Debug)]
pub(crate) struct State<E> {
    pub(crate) core: Arc<Core>,
    error: Mutex<Option<E>>,
    panic: Mutex<Option<Payload>>,
    limit: Option<Arc<Semaphore>>,
}

/// Held while a branch body runs under `limit`.
pub(crate) type Permit = OwnedSemaphorePermit;

/// How a branch may start, decided when it is created ([`State::start`]).
#[derive(Debug)]
pub(crate) enum Start {
    /// The group was already cancelled: the body never runs.
    Refused,
    /// The body runs at once, holding this `limit` permit (`None`: no limit).
    Now(Option<Permit>),
    /// Waits for a `limit` permit; runs only if the group is still running then.
    Queued,
}

/// A panic payload; wrapped so `State` can be `Debug`.
struct Payload(Box<dyn Any + Send>);

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Payload(..)")
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned slot only means a panic elsewhere; its content is still whole.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<E> State<E> {
    pub(crate) fn new(core: Arc<Core>, limit: Option<usize>) -> Self {
        State {
            core,
            error: Mutex::new(None),
            panic: Mutex::new(None),
            limit: limit.map(|n| Arc::new(Semaphore::new(check_limit(n)))),
        }
    }

    pub(crate) fn ctx(&self, task: TaskName) -> Ctx {
        Ctx::new(Arc::clone(&self.core), task)
    }

    /// Records `error` if it is the first failure and cancels the group.
    pub(crate) fn fail(&self, task: TaskName, error: E) {
        if self.core.cancel(Cause::Failed { task }) {
            *lock(&self.error) = Some(error);
        }
    }

    fn panicked(&self, task: TaskName, payload: Box<dyn Any + Send>) {
        self.core.cancel(Cause::Panicked { task });
        lock(&self.panic).get_or_insert(Payload(payload));
    }

    /// How a branch created now may start: refused once the group is
    /// cancelled, else at once (with a `limit` permit if one is free), else
    /// queued for a permit. Called when the branch is created, so the
    /// decision does not depend on the order the branches are polled in.
    pub(crate) fn start(&self) -> Start {
        if self.core.is_cancelled() {
            return Start::Refused;
        }
        match self.try_acquire() {
            Ok(permit) => Start::Now(permit),
            Err(()) => Start::Queued,
        }
    }

    /// Waits for the permit of a queued branch; `None` if the branch must
    /// not run, `Some(permit)` (`Some(None)` without a limit) if it may.
    async fn admit(&self, start: Start) -> Option<Option<Permit>> {
        match start {
            Start::Refused => None,
            Start::Now(permit) => Some(permit),
            Start::Queued => {
                let permit = self.acquire().await?;
                // Cancelled just as the permit arrived: do not start.
                (!self.core.is_cancelled()).then_some(permit)
            }
        }
    }

    /// Polls a body with its ctx as the ambient one, catching a panic.
    async fn body<T, F>(&self, ctx: Ctx, body: F) -> Option<T>
    where
        F: Future<Output = T>,
    {
        let task = ctx.task().clone();
        match catch_unwind_future(CURRENT.scope(ctx, body)).await {
            Ok(value) => Some(value),
            Err(payload) => {
                self.panicked(task, payload);
                None
            }
        }
    }

    /// Runs one branch body as `start` allows, catching a panic. `None` when
    /// the body did not run or panicked.
    pub(crate) async fn guarded<T, F>(&self, ctx: Ctx, body: F, start: Start) -> Option<T>
    where
        F: Future<Output = T>,
    {
        let _permit = self.admit(start).await?;
        self.body(ctx, body).await
    }

    /// Runs a branch whose error cancels the group.
    pub(crate) async fn run<T, F>(&self, ctx: Ctx, body: F, start: Start) -> Option<T>
    where
        F: Future<Output = Result<T, E>>,
    {
        let task = ctx.task().clone();
        // Held until the error is recorded: see the invariants.
        let _permit = self.admit(start).await?;
        match self.body(ctx, body).await? {
            Ok(value) => Some(value),
            Err(error) => {
                self.fail(task, error);
                None
            }
        }
    }

    /// Runs a synchronous branch body on tokio's blocking pool.
    pub(crate) async fn run_blocking<T, F>(&self, ctx: Ctx, body: F, start: Start) -> Option<T>
    where
        F: FnOnce(&Ctx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let _permit = self.admit(start).await?;
        let task = ctx.task().clone();
        let job =
            tokio::task::spawn_blocking(move || catch_unwind(AssertUnwindSafe(|| body(&ctx))));
        // A blocking job cannot be aborted: if this future is dropped, the
        // job runs to its end on its own with its ctx cancelled.
        match job.await {
            Ok(Ok(Ok(value))) => Some(value),
            Ok(Ok(Err(error))) => {
                self.fail(task, error);
                None
            }
            Ok(Err(payload)) => {
                self.panicked(task, payload);
                None
            }
            // Only when the runtime shuts down under us.
            Err(_) => None,
        }
    }

    /// `Some(None)` without a limit, `Some(permit)` with one, and `None` if
    /// the group is cancelled while waiting for a permit.
    async fn acquire(&self) -> Option<Option<Permit>> {
        let Some(limit) = &self.limit else {
            return Some(None);
        };
        let mut acquire = pin!(Arc::clone(limit).acquire_owned());
        let mut cancelled = pin!(self.core.token().cancelled());
        poll_fn(|cx| {
            if let Poll::Ready(permit) = acquire.as_mut().poll(cx) {
                // The semaphore is never closed.
                return Poll::Ready(permit.ok().map(Some));
            }
            cancelled.as_mut().poll(cx).map(|()| None)
        })
        .await
    }

    /// A permit without waiting: `Err(())` when `limit` branches are running.
    pub(crate) fn try_acquire(&self) -> Result<Option<Permit>, ()> {
        match &self.limit {
            None => Ok(None),
            Some(limit) => Arc::clone(limit)
                .try_acquire_owned()
                .map(Some)
                .map_err(drop),
        }
    }

    pub(crate) fn set_limit(&mut self, n: usize) {
        self.limit = Some(Arc::new(Semaphore::new(check_limit(n))));
    }

    /// The group's result once every branch has returned: resumes a branch's
    /// panic, else `Ok(value)` if every branch gave one, else the first error,
    /// else the cancellation. Cancels the ctx with `Finished` either way.
    pub(crate) fn finish<T>(&self, value: Option<T>) -> Result<T, Error<E>> {
        self.core.cancel(Cause::Finished);
        if let Some(Payload(payload)) = lock(&self.panic).take() {
            resume_unwind(payload);
        }
        if let Some(value) = value {
            return Ok(value);
        }
        if let Some(error) = lock(&self.error).take() {
            if let Some(Cause::Failed { task }) = self.core.cause() {
                return Err(Error::Failed { task, error });
            }
        }
        Err(Error::Cancelled(self.core.cancelled_error()))
    }
}

pub(crate) fn check_limit(n: usize) -> usize {
    assert!(n > 0, "errgroup: `limit` must be at least 1, got 0");
    n.min(Semaphore::MAX_PERMITS)
}

/// Polls `fut`, turning a panic inside it into `Err(payload)`.
pub(crate) async fn catch_unwind_future<F: Future>(
    fut: F,
) -> Result<F::Output, Box<dyn Any + Send>> {
    let mut fut = pin!(fut);
    poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(payload)),
        },
    )
    .await
}
