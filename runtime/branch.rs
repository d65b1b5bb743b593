//! The future that runs one branch body: waits for its start, polls the body
//! with its ctx as the ambient one, catches a panic, records an error.
//!
//! Hand-written rather than `async fn`s so that the body's state is stored
//! once: nested `async fn`s that take a future and await it keep a copy of
//! it per level, and a group future grew to five times its bodies.

use std::future::Future;
use std::ops::Deref;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;

use crate::ctx::Ctx;
use crate::error::TaskName;
use crate::shared::{Core, Permit, Start, State, with_ambient};

/// Where a failing branch's error goes: the typed slot of the group's
/// driver, or, for a branch that is its own tokio task and so cannot borrow
/// the driver, boxed into the core ([`Boxed`]).
pub(crate) trait Record<E> {
    fn fail(&self, core: &Core, task: TaskName, error: E);
}

impl<E> Record<E> for &State<E> {
    fn fail(&self, _core: &Core, task: TaskName, error: E) {
        State::fail(self, task, error);
    }
}

/// Records a `#[spawn]` branch's error in its core: no `Arc` around the
/// driver's typed slot just for the branches that run as tasks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Boxed;

impl<E: Send + 'static> Record<E> for Boxed {
    fn fail(&self, core: &Core, task: TaskName, error: E) {
        core.fail_boxed(task, error);
    }
}

/// Where a branch is in its life.
enum Phase {
    /// Waiting for a `limit` permit, or for the cancellation, whichever first.
    Queued(Pin<Box<dyn Future<Output = Option<Permit>> + Send>>),
    Running(Option<Permit>),
    Done,
}

pin_project! {
    /// Runs `body` as its start allows. `None` when it never ran or
    /// panicked; else its output and the `limit` permit it held.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub(crate) struct Guarded<F> {
        core: Arc<Core>,
        task: TaskName,
        phase: Phase,
        #[pin]
        body: TaskLocalFuture<Ctx, F>,
    }
}

impl<F: Future> Guarded<F> {
    pub(crate) fn new(core: Arc<Core>, ctx: Ctx, body: F, start: Start) -> Self {
        let task = ctx.task().clone();
        let phase = match start {
            Start::Refused => Phase::Done,
            Start::Now(permit) => Phase::Running(permit),
            Start::Queued => Phase::Queued(Box::pin(admit(Arc::clone(&core)))),
        };
        Guarded {
            core,
            task,
            phase,
            body: with_ambient(ctx, body),
        }
    }

    pub(crate) fn task(&self) -> &TaskName {
        &self.task
    }

    pub(crate) fn core(&self) -> &Core {
        &self.core
    }
}

/// A permit once one is free, `None` if the group is cancelled first.
async fn admit(core: Arc<Core>) -> Option<Permit> {
    let limit = core.limit_semaphore()?;
    let mut cancelled = core.cancellation();
    let mut waiter = core.limit_waiter();
    waiter.set(true);
    let acquire = limit.acquire_owned();
    let mut acquire = std::pin::pin!(acquire);
    let permit = std::future::poll_fn(|cx| {
        if let Poll::Ready(permit) = acquire.as_mut().poll(cx) {
            return Poll::Ready(permit.ok());
        }
        Pin::new(&mut cancelled).poll(cx).map(|()| None)
    })
    .await?;
    drop(waiter);
    // Cancelled just as the permit arrived: do not start.
    (!core.is_cancelled()).then_some(permit)
}

impl<F: Future> Future for Guarded<F> {
    type Output = Option<(F::Output, Option<Permit>)>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Phase::Queued(admit) = this.phase {
            *this.phase = match ready!(admit.as_mut().poll(cx)) {
                Some(permit) => Phase::Running(Some(permit)),
                None => Phase::Done,
            };
        }
        if matches!(this.phase, Phase::Done) {
            return Poll::Ready(None);
        }
        let body = this.body.as_mut();
        match catch_unwind(AssertUnwindSafe(|| body.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => match std::mem::replace(this.phase, Phase::Done) {
                Phase::Running(permit) => Poll::Ready(Some((output, permit))),
                _ => Poll::Ready(Some((output, None))),
            },
            Err(payload) => {
                *this.phase = Phase::Done;
                this.core.panicked(this.task.clone(), payload);
                Poll::Ready(None)
            }
        }
    }
}

pin_project! {
    /// A branch whose error cancels the group: `Some(value)` on `Ok`.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub(crate) struct Run<S, F> {
        record: S,
        #[pin]
        inner: Guarded<F>,
    }
}

impl<S, F> Run<S, F> {
    pub(crate) fn new(record: S, inner: Guarded<F>) -> Self {
        Run { record, inner }
    }
}

/// A branch future that can hand its `limit` permit back when it ends,
/// for a fan-out to start its next item with, instead of dropping it.
pub(crate) trait Item {
    type Value;
    fn poll_item(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<(Option<Self::Value>, Option<Permit>)>;
}

impl<S, F, T, E> Item for Run<S, F>
where
    S: Record<E>,
    F: Future<Output = Result<T, E>>,
{
    type Value = T;

    fn poll_item(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(Option<T>, Option<Permit>)> {
        let mut this = self.project();
        Poll::Ready(match ready!(this.inner.as_mut().poll(cx)) {
            Some((Ok(value), permit)) => (Some(value), permit),
            Some((Err(error), permit)) => {
                // Recorded before the permit is given back: see shared.rs.
                let inner = this.inner.as_ref();
                this.record.fail(inner.core(), inner.task().clone(), error);
                (None, permit)
            }
            None => (None, None),
        })
    }
}

impl<S, F, T, E> Future for Run<S, F>
where
    S: Record<E>,
    F: Future<Output = Result<T, E>>,
{
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.poll_item(cx).map(|(value, _permit)| value)
    }
}

pin_project! {
    /// An [`Item`] as a future whose output carries the permit back.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
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
    /// A branch under `on_error = continue`: its result is its value.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub(crate) struct Supervised<F> {
        #[pin]
        inner: Guarded<F>,
    }
}

impl<F> Supervised<F> {
    pub(crate) fn new(inner: Guarded<F>) -> Self {
        Supervised { inner }
    }
}

impl<F: Future> Item for Supervised<F> {
    type Value = F::Output;

    fn poll_item(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<(Option<F::Output>, Option<Permit>)> {
        self.project().inner.poll(cx).map(|done| match done {
            Some((output, permit)) => (Some(output), permit),
            None => (None, None),
        })
    }
}

impl<F: Future> Future for Supervised<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        self.poll_item(cx).map(|(output, _permit)| output)
    }
}

/// Runs a synchronous branch body on tokio's blocking pool.
pub(crate) async fn run_blocking<S, T, E, F>(state: S, ctx: Ctx, body: F, start: Start) -> Option<T>
where
    S: Deref<Target = State<E>>,
    F: FnOnce(&Ctx) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    run_blocking_item(state, ctx, body, start).await.0
}

/// [`run_blocking`], handing the `limit` permit back (see [`Item`]).
pub(crate) async fn run_blocking_item<S, T, E, F>(
    state: S,
    ctx: Ctx,
    body: F,
    start: Start,
) -> (Option<T>, Option<Permit>)
where
    S: Deref<Target = State<E>>,
    F: FnOnce(&Ctx) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    let permit = match start {
        Start::Refused => return (None, None),
        Start::Now(permit) => permit,
        Start::Queued => match admit(Arc::clone(&state.core)).await {
            Some(permit) => Some(permit),
            None => return (None, None),
        },
    };
    let task = ctx.task().clone();
    let job = tokio::task::spawn_blocking(move || catch_unwind(AssertUnwindSafe(|| body(&ctx))));
    // A blocking job cannot be aborted: if this future is dropped, the job
    // runs to its end on its own, with its ctx cancelled.
    match job.await {
        Ok(Ok(Ok(value))) => (Some(value), permit),
        Ok(Ok(Err(error))) => {
            // Recorded before the permit is given back: see shared.rs.
            state.fail(task, error);
            (None, permit)
        }
        Ok(Err(payload)) => {
            state.core.panicked(task, payload);
            (None, permit)
        }
        // Only when the runtime shuts down under us.
        Err(_) => (None, permit),
    }
}
