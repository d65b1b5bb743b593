//! What `errgroup!` expands into. Not public API: no stability promise.
//!
//! Generated code names only `::errgroup::__private::*`, so users shadowing
//! `Option`, `Result`, `tokio`, ... cannot break it.

use std::future::Future;
use std::panic::resume_unwind;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};

pub use core::convert::Infallible;
pub use core::future::poll_fn;
pub use core::option::Option;
pub use core::pin::pin;
pub use core::result::Result;
pub use core::task::Poll as PollState;

use crate::ctx::Ctx;
use crate::error::{Cause, Error, TaskName};
use crate::shared::{self, Core, State};

/// The group's header values, evaluated in the order written.
#[derive(Debug)]
pub struct Config {
    parent: Option<Ctx>,
    deadline: Option<Instant>,
    limit: Option<usize>,
}

impl Config {
    /// Nested groups inherit the ambient branch's ctx (semantic 6).
    #[must_use]
    pub fn new() -> Self {
        Config {
            parent: shared::ambient(),
            deadline: None,
            limit: None,
        }
    }

    #[must_use]
    pub fn timeout(mut self, duration: Duration) -> Self {
        self.deadline = Some(Instant::now() + duration);
        self
    }

    #[must_use]
    pub fn deadline(mut self, at: Instant) -> Self {
        self.deadline = Some(at);
        self
    }

    #[must_use]
    pub fn parent(mut self, parent: &Ctx) -> Self {
        self.parent = Some(parent.clone());
        self
    }

    #[must_use]
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}

/// One `errgroup!` evaluation.
#[derive(Debug)]
pub struct Scope<E> {
    state: Arc<State<E>>,
    finished: AtomicBool,
}

impl<E> Scope<E> {
    #[must_use]
    pub fn new(config: Config) -> Self {
        let Config {
            parent,
            deadline,
            limit,
        } = config;
        let core = Core::new(parent.as_ref(), deadline);
        Scope {
            state: Arc::new(State::new(core, limit)),
            finished: AtomicBool::new(false),
        }
    }

    #[must_use]
    pub fn ctx(&self, name: &'static str) -> Ctx {
        self.state.ctx(TaskName::new(name))
    }

    /// An in-task branch whose error cancels the group.
    pub fn branch<T, F>(&self, ctx: Ctx, body: F) -> impl Future<Output = Option<T>>
    where
        F: Future<Output = Result<T, E>>,
    {
        self.state.run(ctx, body, self.state.start())
    }

    /// An in-task branch under `on_error = continue`: its result is its value.
    pub fn supervised<T, F>(&self, ctx: Ctx, body: F) -> impl Future<Output = Option<Result<T, E>>>
    where
        F: Future<Output = Result<T, E>>,
    {
        self.state.guarded(ctx, body, self.state.start())
    }

    /// A `#[spawn]` branch: a tokio task, aborted if the group is dropped.
    pub fn spawn<T, F>(&self, ctx: Ctx, body: F) -> Spawned<T>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let state = Arc::clone(&self.state);
        let start = state.start();
        Spawned(tokio::spawn(
            async move { state.run(ctx, body, start).await },
        ))
    }

    /// A `#[spawn]` branch under `on_error = continue`.
    pub fn spawn_supervised<T, F>(&self, ctx: Ctx, body: F) -> Spawned<Result<T, E>>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let state = Arc::clone(&self.state);
        let start = state.start();
        Spawned(tokio::spawn(async move {
            state.guarded(ctx, body, start).await
        }))
    }

    /// A `#[blocking]` branch on tokio's blocking pool.
    pub fn blocking<T, F>(&self, ctx: Ctx, body: F) -> impl Future<Output = Option<T>>
    where
        F: FnOnce(&Ctx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        self.state.run_blocking(ctx, body, self.state.start())
    }

    /// A `#[blocking]` branch under `on_error = continue`.
    pub fn blocking_supervised<T, F>(
        &self,
        ctx: Ctx,
        body: F,
    ) -> impl Future<Output = Option<Result<T, E>>>
    where
        F: FnOnce(&Ctx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        self.state
            .run_blocking(ctx, move |ctx: &Ctx| Ok(body(ctx)), self.state.start())
    }

    /// The timer of the group's own deadline, polled by the driver.
    #[must_use]
    pub fn timer(&self) -> Option<Sleep> {
        self.state.core.own_deadline().map(tokio::time::sleep_until)
    }

    /// Cancels the group when its deadline passes.
    pub fn poll_timer(&self, mut timer: Pin<&mut Option<Sleep>>, cx: &mut Context<'_>) {
        if let Some(sleep) = timer.as_mut().as_pin_mut() {
            if sleep.poll(cx).is_ready() {
                self.state.core.cancel(Cause::DeadlineExceeded);
                timer.set(None);
            }
        }
    }

    /// The group's result once every branch has returned; `values` is
    /// `Some` when every branch gave one.
    pub fn finish<T>(&self, values: Option<T>) -> Result<T, Error<E>> {
        self.finished.store(true, Ordering::Relaxed);
        self.state.finish(values)
    }
}

impl<E> Drop for Scope<E> {
    fn drop(&mut self) {
        if !self.finished.load(Ordering::Relaxed) {
            self.state.core.cancel(Cause::Dropped);
        }
    }
}

/// Where the driver keeps a branch's outcome.
#[derive(Debug)]
pub enum Slot<T> {
    Running,
    Done(Option<T>),
}

impl<T> Slot<T> {
    #[must_use]
    pub fn new() -> Self {
        Slot::Running
    }

    pub fn take(&mut self) -> Option<T> {
        match std::mem::replace(self, Slot::Done(None)) {
            Slot::Done(value) => value,
            Slot::Running => None,
        }
    }
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot::new()
    }
}

/// Polls a branch that is still running; `true` while it is.
pub fn poll_branch<T, F>(branch: Pin<&mut F>, slot: &mut Slot<T>, cx: &mut Context<'_>) -> bool
where
    F: Future<Output = Option<T>>,
{
    if !matches!(slot, Slot::Running) {
        return false;
    }
    match branch.poll(cx) {
        Poll::Ready(value) => {
            *slot = Slot::Done(value);
            false
        }
        Poll::Pending => true,
    }
}

/// A `#[spawn]` branch's task; dropping it aborts the task.
#[derive(Debug)]
pub struct Spawned<T>(JoinHandle<Option<T>>);

impl<T> Future for Spawned<T> {
    type Output = Option<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        Pin::new(&mut self.0).poll(cx).map(|joined| match joined {
            Ok(value) => value,
            Err(e) if e.is_panic() => resume_unwind(e.into_panic()),
            // Aborted only by our own drop, or by the runtime shutting down.
            Err(_) => None,
        })
    }
}

impl<T> Drop for Spawned<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The value of an `errgroup!` whose input had errors: its type fits any use,
/// so the user sees the `compile_error!`, not a cascade.
pub fn fallback<T, E>() -> Result<T, Error<E>> {
    unreachable!("errgroup!: this input did not compile")
}
