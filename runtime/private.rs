//! What `errgroup!` expands into. Not public API: no stability promise.
//!
//! Generated code names only `::errgroup::__private::*`, so users shadowing
//! `Option`, `Result`, `tokio`, ... cannot break it.

use std::future::Future;
use std::panic::resume_unwind;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};

pub use core::clone::Clone;
pub use core::convert::Infallible;
pub use core::future::poll_fn;
pub use core::mem::drop;
pub use core::option::Option;
pub use core::pin::pin;
pub use core::result::Result;
pub use core::task::Poll as PollState;

use pin_project_lite::pin_project;

#[path = "lints.rs"]
pub mod lints;

use crate::branch::{Boxed, Guarded, Keep, Run, Supervised, run_blocking, run_blocking_item};
use crate::channel::{self, Receiver, Sender};
use crate::ctx::Ctx;
use crate::error::{Cause, Error, TaskName};
use crate::fanout::{InTask, Tasks, fan_out};
use crate::shared::{self, Cancellation, Settings, Start, State};
use crate::sync::{Arc, AtomicBool, Mutex, Ordering};

/// The group's header values, evaluated in the order written.
#[derive(Debug)]
pub struct Config {
    parent: Option<Ctx>,
    deadline: Option<Instant>,
    limit: Option<usize>,
    grace: Option<Duration>,
}

impl Config {
    /// Nested groups inherit the ambient branch's ctx (semantic 6).
    #[must_use]
    pub fn new() -> Self {
        Config {
            parent: shared::ambient(),
            deadline: None,
            limit: None,
            grace: None,
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

    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = Some(grace);
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
    /// Inline: the in-task branches borrow it, and `#[spawn]` ones record
    /// their error in the core ([`Boxed`]), so it needs no `Arc` of its own.
    state: State<E>,
    grace: Option<Duration>,
    finished: AtomicBool,
}

impl<E: 'static> Scope<E> {
    #[must_use]
    pub fn new(config: Config) -> Self {
        Scope {
            state: State::new(Settings {
                parent: config.parent,
                deadline: config.deadline,
                limit: config.limit,
            }),
            grace: config.grace,
            finished: AtomicBool::new(false),
        }
    }

    /// The group's result once every branch and task has returned; `values`
    /// is `Some` when every branch gave one.
    pub fn finish<T>(&self, values: Option<T>) -> Result<T, Error<E>> {
        self.finished.store(true, Ordering::Relaxed);
        self.state.finish(values)
    }
}

impl<E> Scope<E> {
    #[must_use]
    pub fn ctx(&self, name: &'static str) -> Ctx {
        self.state.ctx(TaskName::new(name))
    }

    /// A `let (tx, rx) = channel(cap);` header.
    #[must_use]
    pub fn channel<T: Send + 'static>(&self, capacity: usize) -> (Sender<T>, Receiver<T>) {
        channel::bound(&self.state.core, Some(capacity))
    }

    /// A `let (tx, rx) = unbounded();` header.
    #[must_use]
    pub fn unbounded<T: Send + 'static>(&self) -> (Sender<T>, Receiver<T>) {
        channel::bound(&self.state.core, None)
    }

    fn guarded<F: Future>(&self, ctx: Ctx, body: F) -> Guarded<F> {
        Guarded::new(
            Arc::clone(&self.state.core),
            ctx,
            body,
            self.state.core.start(),
        )
    }

    /// An in-task branch whose error cancels the group.
    pub fn branch<T, F>(&self, ctx: Ctx, body: F) -> impl Future<Output = Option<T>>
    where
        F: Future<Output = Result<T, E>>,
    {
        Run::new(&self.state, self.guarded(ctx, body))
    }

    /// An in-task branch under `on_error = continue`: its result is its value.
    pub fn supervised<T, F>(&self, ctx: Ctx, body: F) -> impl Future<Output = Option<Result<T, E>>>
    where
        F: Future<Output = Result<T, E>>,
    {
        Supervised::new(self.guarded(ctx, body))
    }

    /// A `#[spawn]` branch: a tokio task, aborted if the group is dropped.
    pub fn spawn<T, F>(&self, ctx: Ctx, body: F) -> Spawned<T>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        Spawned(tokio::spawn(Run::new(Boxed, self.guarded(ctx, body))))
    }

    /// A `#[spawn]` branch under `on_error = continue`.
    pub fn spawn_supervised<T, F>(&self, ctx: Ctx, body: F) -> Spawned<Result<T, E>>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        Spawned(tokio::spawn(Supervised::new(self.guarded(ctx, body))))
    }

    /// A `#[blocking]` branch on tokio's blocking pool.
    pub fn blocking<T, F>(&self, ctx: Ctx, body: F) -> impl Future<Output = Option<T>>
    where
        F: FnOnce(&Ctx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        run_blocking(&self.state, ctx, body, self.state.core.start())
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
        let body = move |ctx: &Ctx| Ok(body(ctx));
        run_blocking(&self.state, ctx, body, self.state.core.start())
    }

    /// A fan-out branch whose items run in the calling task.
    pub fn fan_out<I, T, F, Fut>(
        &self,
        name: &'static str,
        items: I,
        mut body: F,
    ) -> impl Future<Output = Option<Vec<T>>>
    where
        I: IntoIterator,
        F: FnMut(I::Item, Ctx) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let state = &self.state;
        fan_out(
            &state.core,
            name,
            items.into_iter(),
            InTask::new(),
            move |item, ctx, permit| {
                let core = Arc::clone(&state.core);
                Keep::new(Run::new(
                    state,
                    Guarded::new(core, ctx.clone(), body(item, ctx), Start::Now(permit)),
                ))
            },
        )
    }

    /// A fan-out branch under `on_error = continue`.
    pub fn fan_out_supervised<I, T, F, Fut>(
        &self,
        name: &'static str,
        items: I,
        mut body: F,
    ) -> impl Future<Output = Option<Vec<Result<T, E>>>>
    where
        I: IntoIterator,
        F: FnMut(I::Item, Ctx) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let core = &self.state.core;
        fan_out(
            core,
            name,
            items.into_iter(),
            InTask::new(),
            move |item, ctx, permit| {
                Keep::new(Supervised::new(Guarded::new(
                    Arc::clone(core),
                    ctx.clone(),
                    body(item, ctx),
                    Start::Now(permit),
                )))
            },
        )
    }

    /// A `#[spawn]` fan-out branch: one tokio task per item.
    pub fn fan_out_spawn<I, T, F, Fut>(
        &self,
        name: &'static str,
        items: I,
        mut body: F,
    ) -> impl Future<Output = Option<Vec<T>>>
    where
        I: IntoIterator,
        F: FnMut(I::Item, Ctx) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let state = &self.state;
        fan_out(
            &state.core,
            name,
            items.into_iter(),
            Tasks::new(),
            move |item, ctx, permit| {
                let core = Arc::clone(&state.core);
                let task = Guarded::new(core, ctx.clone(), body(item, ctx), Start::Now(permit));
                Keep::new(Run::new(Boxed, task))
            },
        )
    }

    /// A `#[spawn]` fan-out branch under `on_error = continue`.
    pub fn fan_out_spawn_supervised<I, T, F, Fut>(
        &self,
        name: &'static str,
        items: I,
        mut body: F,
    ) -> impl Future<Output = Option<Vec<Result<T, E>>>>
    where
        I: IntoIterator,
        F: FnMut(I::Item, Ctx) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let core = &self.state.core;
        fan_out(
            core,
            name,
            items.into_iter(),
            Tasks::new(),
            move |item, ctx, permit| {
                let task = Guarded::new(
                    Arc::clone(core),
                    ctx.clone(),
                    body(item, ctx),
                    Start::Now(permit),
                );
                Keep::new(Supervised::new(task))
            },
        )
    }

    /// A `#[blocking]` fan-out branch: one blocking-pool job per item.
    pub fn fan_out_blocking<I, T, F, G>(
        &self,
        name: &'static str,
        items: I,
        mut body: F,
    ) -> impl Future<Output = Option<Vec<T>>>
    where
        I: IntoIterator,
        F: FnMut(I::Item) -> G,
        G: FnOnce(&Ctx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let state = &self.state;
        fan_out(
            &state.core,
            name,
            items.into_iter(),
            InTask::new(),
            move |item, ctx, permit| run_blocking_item(state, ctx, body(item), Start::Now(permit)),
        )
    }

    /// A `#[blocking]` fan-out branch under `on_error = continue`.
    pub fn fan_out_blocking_supervised<I, T, F, G>(
        &self,
        name: &'static str,
        items: I,
        mut body: F,
    ) -> impl Future<Output = Option<Vec<Result<T, E>>>>
    where
        I: IntoIterator,
        F: FnMut(I::Item) -> G,
        G: FnOnce(&Ctx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let state = &self.state;
        fan_out(
            &state.core,
            name,
            items.into_iter(),
            InTask::new(),
            move |item, ctx, permit| {
                let body = body(item);
                run_blocking_item(
                    state,
                    ctx,
                    move |ctx: &Ctx| Ok(body(ctx)),
                    Start::Now(permit),
                )
            },
        )
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

    /// The `grace` timer, armed when the group is cancelled.
    #[must_use]
    pub fn grace(&self) -> Option<Grace<'_>> {
        self.grace.map(|grace| Grace {
            cancelled: self.state.core.cancellation(),
            sleep: None,
            period: grace,
        })
    }

    /// Whether the grace period after the cancellation is over: then the
    /// driver drops what still runs, and the group's tasks are aborted.
    pub fn poll_grace(&self, grace: Pin<&mut Option<Grace<'_>>>, cx: &mut Context<'_>) -> bool {
        let Some(grace) = grace.as_pin_mut() else {
            return false;
        };
        let mut grace = grace.project();
        if grace.sleep.is_none() {
            if Pin::new(&mut *grace.cancelled).poll(cx).is_pending() {
                return false;
            }
            grace.sleep.set(Some(tokio::time::sleep(*grace.period)));
        }
        let expired = grace
            .sleep
            .as_pin_mut()
            .is_some_and(|sleep| sleep.poll(cx).is_ready());
        if expired {
            self.state.core.close_tasks();
        }
        expired
    }

    /// Whether the group is still running: `branches_pending`, or tasks
    /// started with `ctx.spawn` still running. Once the branches are done,
    /// the poll that finds no task closes the group to new ones.
    pub fn poll_tasks(&self, branches_pending: bool, cx: &mut Context<'_>) -> bool {
        let tasks = self.state.core.poll_tasks(cx, !branches_pending);
        branches_pending || tasks.is_pending()
    }
}

impl<E> Drop for Scope<E> {
    fn drop(&mut self) {
        if !self.finished.load(Ordering::Relaxed) {
            self.state.core.cancel(Cause::Dropped);
            self.state.core.close_tasks();
        }
    }
}

pin_project! {
    /// The `grace` timer of a group: idle until the group is cancelled.
    pub struct Grace<'a> {
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

/// Polls a branch that is still running; `true` while it is. A finished
/// branch's future is dropped at once, freeing what it held.
pub fn poll_branch<T, F>(
    branch: Pin<&mut Option<F>>,
    slot: &mut Slot<T>,
    cx: &mut Context<'_>,
) -> bool
where
    F: Future<Output = Option<T>>,
{
    match shared::poll_option(branch, cx) {
        Poll::Ready(Some(value)) => {
            *slot = Slot::Done(value);
            false
        }
        Poll::Ready(None) => false,
        Poll::Pending => true,
    }
}

/// Drops a branch still running when the grace period is over.
pub fn drop_branch<T, F>(mut branch: Pin<&mut Option<F>>, slot: &mut Slot<T>) {
    branch.set(None);
    if matches!(slot, Slot::Running) {
        *slot = Slot::Done(None);
    }
}

/// Aborts a `#[spawn]` branch's task when the grace period is over. The
/// driver keeps polling its handle, so the group returns only once the task
/// has really stopped (dropping the handle would not wait for that).
pub fn abort_branch<T>(branch: Pin<&mut Option<Spawned<T>>>) {
    if let Some(spawned) = branch.get_mut() {
        spawned.0.abort();
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

/// The channel ends a fan-out branch names, lent to each item as clones
/// and dropped as soon as the branch ends (its closure may outlive it).
#[derive(Debug)]
pub struct Lender<S>(Mutex<Option<S>>);

impl<S: Clone> Lender<S> {
    pub fn new(ends: S) -> Self {
        Lender(Mutex::new(Some(ends)))
    }

    /// Clones of the ends for one item.
    pub fn lend(&self) -> S {
        shared::lock(&self.0)
            .clone()
            .expect("errgroup: no item starts after its fan-out branch ended")
    }

    /// `fut`, after which the ends are dropped.
    pub async fn release<F: Future>(&self, fut: F) -> F::Output {
        let out = fut.await;
        drop(shared::lock(&self.0).take());
        out
    }
}
