//! Fan-out branches (`name => for x in items { .. }`): the items' loop,
//! whoever runs them (in-task here, `#[spawn]` ones in workers.rs).
//!
//! # Invariants
//!
//! - Items are pulled from the iterator one at a time, and only once a
//!   `limit` permit is in hand: with `limit = n`, at most `n` item bodies
//!   (and `n` pulled items) exist at once, however long the iterator.
//! - No item is pulled once the group is cancelled.
//! - An item that ends hands its `limit` permit back to the fan-out, which
//!   starts the next item with it (after checking the group is still
//!   running) rather than giving it back to the semaphore and taking it
//!   again: the bound is the same, and a fan-out's steady state costs no
//!   semaphore operation per item. It keeps a permit only while nobody else
//!   waits for one, so `limit` stays first come, first served.
//! - Results land at their item's index, so the `Vec` is in iteration order
//!   whatever order the items finish in.
//! - The channel ends the branch names are held by the fan-out, cloned for
//!   each item, and dropped as soon as no item will start again.
//! - When `grace` expires, in-task items are dropped; spawned items are
//!   aborted and still awaited (workers.rs, tasks.rs), blocking ones awaited.
//! - An in-task item is polled when it starts and then only when its own
//!   waker was woken (a slot's, [`InTask`]), and what it holds is dropped
//!   as soon as it ends, before its result is handed on (its body, an
//!   `async` block, drops it as it returns; its span is closed then).
//! - A `#[blocking]` item completes on its blocking thread ([`Jobs`]): its
//!   error is recorded, cancelling the group, before its result is handed
//!   on; the fan-out is woken by the last item to end, by a failure, and by
//!   every end only while it still has items to start.

use std::collections::VecDeque;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures_util::task::{ArcWake, waker_ref};
use pin_project_lite::pin_project;
use tokio::task::coop;
use tokio::time::Instant;
use tokio_util::sync::PollSemaphore;

use crate::branch::{AfterGrace, Bare, ItemName, Stop};
use crate::cancel::Cancellation;
use crate::error::{Cause, Census, TaskName};
use crate::limit::{Permit, Waiting};
use crate::state::{Core, State};
use crate::sync::{Arc, AtomicBool, AtomicUsize, Mutex, Ordering, lock};
use crate::tasks::spawn_blocking_detached;
use crate::trace;
use crate::workers::{Done, Workers};

/// tokio's coop budget: what a task may take from its resources per poll.
const BUDGET: usize = 128;

/// Where the running items of a fan-out live.
pub(crate) trait Pool<Fut> {
    /// An item's value.
    type Value;
    /// Starts `task`, the item at `index`.
    fn push(&mut self, index: usize, task: Fut);
    /// The next finished item: its index, its value if it gave one, and
    /// the `limit` permit it held.
    #[allow(clippy::type_complexity, reason = "a triple, named in the doc")]
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<(usize, Option<Self::Value>, Option<Permit>)>>;
    /// `grace` expired.
    fn stop(&mut self) -> AfterGrace;
    /// The indices of the items still running, in any order.
    fn live(&self, out: &mut Vec<usize>);
    /// No item will be pushed again: only the end of the last one, or a
    /// failure, needs to be told at once.
    fn all_started(&mut self) {}
}

/// In-task items: polled in the calling task.
///
/// Each item's future is only its body ([`Bare`]): what all of them share
/// (the group, where errors go, the branch's name) is kept here once, an
/// item is named from it and its index only when it fails or panics, and
/// the `limit` permits are kept by slot, only in a group that has a limit.
///
/// A slot per item running at once, reused by the items that come after
/// it: its future's box and its waker are made once per slot, not per item
/// (with `limit = 64`, 64 of each for any number of items), where
/// `FuturesUnordered` allocates a node per item and moves the item's future
/// into it three times. A woken item is queued by its slot's own waker, so a
/// wake polls only the items that were woken.
pub(crate) struct InTask<'s, E, Fut> {
    state: &'s State<E>,
    core: &'s Arc<Core>,
    name: &'static str,
    slots: Vec<Slot<Fut>>,
    /// The `limit` permit of the item in each slot, as long as the last
    /// slot pushed with one: empty without a limit.
    permits: Vec<Option<Permit>>,
    /// The first slot whose item has ended, for the next item: a list
    /// through the empty slots' `index` (in their wakers), so that a fan-out whose items all
    /// end at once (when the group stops) grows nothing as they do.
    free: Option<usize>,
    /// Slots to poll: new items, and the woken ones taken from `woken`. As
    /// runs of consecutive slots: the items a fan-out without a `limit`
    /// starts at once fill new slots one after the other, and take one run.
    due: VecDeque<Range<usize>>,
    /// The buffer `woken.slots` is swapped with.
    taken: Vec<Range<u32>>,
    woken: Arc<Woken>,
    /// Items started and not yet ended.
    running: usize,
}

struct Slot<Fut> {
    /// Boxed, as a running future must not move when `slots` grows; set
    /// in place (`Pin::set`) for each item. Kept once its item has ended,
    /// holding nothing then ([`Bare`]), until the next item replaces it.
    future: Pin<Box<Bare<Fut>>>,
    /// Lent to each poll as a `Waker` (`waker_ref`): no reference count
    /// taken per poll, and 16 bytes less per slot than a `Waker` kept.
    waker: Arc<SlotWaker>,
}

impl<Fut> Slot<Fut> {
    /// The index of the item in it; when it is empty, the next empty slot
    /// (`usize::MAX` for none).
    fn index(&self) -> usize {
        self.waker.index.load(Ordering::Relaxed)
    }

    fn set_index(&self, index: usize) {
        self.waker.index.store(index, Ordering::Relaxed);
    }

    fn running(&self) -> bool {
        self.waker.running.load(Ordering::Relaxed)
    }
}

/// Drops the items still running (a group dropped, or `grace` expired)
/// inside their spans, as an `Instrumented` body is dropped.
impl<E, Fut> Drop for InTask<'_, E, Fut> {
    fn drop(&mut self) {
        if trace::ENABLED {
            for slot in self.slots.drain(..).filter(Slot::running) {
                let span = slot.future.span().clone();
                let _span = trace::enter(&span);
                drop(slot);
            }
        }
    }
}

/// The slots woken since the fan-out last took them, and whom to tell.
struct Woken {
    inner: Mutex<WokenInner>,
}

struct WokenInner {
    /// As runs of consecutive slots, like `InTask::due`: when the group is
    /// cancelled, its waiters are woken in the order they waited, which is
    /// the items' order, and a fan-out's worth of blocked items takes a run.
    slots: Vec<Range<u32>>,
    /// The fan-out's waker while it waits; taken by the first wake.
    driver: Option<Waker>,
}

/// A slot's waker, and of the slot's item its index and whether it was
/// handed a `Cancelled` (echo.rs): in the allocation the waker needs
/// anyway (its `u32` slot leaves room for them), not in the slot, 8 bytes
/// more per slot, nor in the item's future. Only the fan-out reads and
/// writes `index` and `echoed`.
struct SlotWaker {
    woken: Arc<Woken>,
    index: AtomicUsize,
    slot: u32,
    /// Queued in `woken` and not yet taken: a second wake adds nothing.
    queued: AtomicBool,
    echoed: AtomicBool,
    /// The slot's item is running: its future may be polled.
    running: AtomicBool,
}

impl ArcWake for SlotWaker {
    fn wake_by_ref(this: &Arc<Self>) {
        if this.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let driver = {
            let mut woken = lock(&this.woken.inner);
            match woken.slots.last_mut() {
                Some(run) if run.end == this.slot => run.end += 1,
                _ => woken.slots.push(this.slot..this.slot + 1),
            }
            woken.driver.take()
        };
        if let Some(driver) = driver {
            driver.wake();
        }
    }
}

impl<E, Fut> std::fmt::Debug for InTask<'_, E, Fut> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InTask")
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

impl<'s, E, Fut> InTask<'s, E, Fut> {
    /// The pool of the fan-out `name` of the group whose state is `state`
    /// and whose core is `core`.
    pub(crate) fn new(state: &'s State<E>, core: &'s Arc<Core>, name: &'static str) -> Self {
        InTask {
            state,
            core,
            name,
            slots: Vec::new(),
            permits: Vec::new(),
            free: None,
            due: VecDeque::new(),
            taken: Vec::new(),
            woken: Arc::new(Woken {
                inner: Mutex::new(WokenInner {
                    slots: Vec::new(),
                    driver: None,
                }),
            }),
            running: 0,
        }
    }
}

impl<E, Fut> InTask<'_, E, Fut> {
    /// Queues the slots of `slots` to be polled.
    fn schedule(&mut self, slots: Range<usize>) {
        match self.due.back_mut() {
            Some(run) if run.end == slots.start => run.end = slots.end,
            _ => self.due.push_back(slots),
        }
    }

    /// The next slot to poll.
    fn next_due(&mut self) -> Option<usize> {
        let run = self.due.front_mut()?;
        let slot = run.start;
        run.start += 1;
        if run.start == run.end {
            self.due.pop_front();
        }
        Some(slot)
    }
}

impl<T, E, Fut> Pool<(Bare<Fut>, Option<Permit>)> for InTask<'_, E, Fut>
where
    Fut: Future<Output = Result<T, E>>,
{
    type Value = T;

    fn push(&mut self, index: usize, (task, permit): (Bare<Fut>, Option<Permit>)) {
        let slot = if let Some(slot) = self.free {
            let place = &mut self.slots[slot];
            self.free = Some(place.index()).filter(|&next| next != usize::MAX);
            place.set_index(index);
            place.waker.echoed.store(false, Ordering::Relaxed);
            place.waker.running.store(true, Ordering::Relaxed);
            place.future.set(task);
            slot
        } else {
            let slot = self.slots.len();
            self.slots.push(Slot {
                future: Box::pin(task),
                waker: Arc::new(SlotWaker {
                    woken: Arc::clone(&self.woken),
                    index: AtomicUsize::new(index),
                    // `slot + 1` too: a run of woken slots ends after it.
                    slot: u32::try_from(slot + 1).expect("errgroup: under 2^32 items at once") - 1,
                    queued: AtomicBool::new(false),
                    echoed: AtomicBool::new(false),
                    running: AtomicBool::new(true),
                }),
            });
            slot
        };
        if permit.is_some() {
            if self.permits.len() <= slot {
                self.permits.resize_with(slot + 1, || None);
            }
            self.permits[slot] = permit;
        }
        self.running += 1;
        self.schedule(slot..slot + 1);
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<(usize, Option<T>, Option<Permit>)>> {
        // The woken slots are taken once per call: an item that wakes
        // itself as it is polled is polled again by the next call, after
        // the task has yielded, not in a loop here.
        let mut taken = false;
        loop {
            let Some(slot) = self.next_due() else {
                if self.running == 0 {
                    return Poll::Ready(None);
                }
                let mut woken = lock(&self.woken.inner);
                if woken.slots.is_empty() {
                    keep_driver(&mut woken.driver, cx.waker());
                    return Poll::Pending;
                }
                if taken {
                    drop(woken);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                taken = true;
                // Swapped with an empty one, and given back empty by the next
                // take: no buffer allocated per take.
                let mut slots = std::mem::take(&mut self.taken);
                std::mem::swap(&mut woken.slots, &mut slots);
                drop(woken);
                for run in &slots {
                    self.schedule(run.start as usize..run.end as usize);
                }
                slots.clear();
                self.taken = slots;
                continue;
            };
            let place = &mut self.slots[slot];
            // Cleared before the poll: a wake during it queues the slot again.
            place.waker.queued.store(false, Ordering::Release);
            // A slot woken after its item ended, or twice: nothing to poll.
            if !place.waker.running.load(Ordering::Relaxed) {
                continue;
            }
            let waker = waker_ref(&place.waker);
            let task = ItemName {
                name: self.name,
                index: place.waker.index.load(Ordering::Relaxed),
            };
            let cx = &mut Context::from_waker(&waker);
            let mut none = None;
            let permit = self.permits.get_mut(slot).unwrap_or(&mut none);
            let mut echoed = place.waker.echoed.load(Ordering::Relaxed);
            let future = place.future.as_mut();
            let polled = future.poll_as(&self.state, self.core, &task, permit, &mut echoed, cx);
            place.waker.echoed.store(echoed, Ordering::Relaxed);
            let Poll::Ready((value, permit)) = polled else {
                continue;
            };
            // What it held was dropped as it ended, before its result is
            // handed on, as a finished task's.
            place.waker.running.store(false, Ordering::Relaxed);
            let index = place.index();
            place.set_index(self.free.unwrap_or(usize::MAX));
            self.free = Some(slot);
            self.running -= 1;
            return Poll::Ready(Some((index, value, permit)));
        }
    }

    fn stop(&mut self) -> AfterGrace {
        AfterGrace::Drop
    }

    fn live(&self, out: &mut Vec<usize>) {
        let running = self.slots.iter().filter(|slot| slot.running());
        out.extend(running.map(Slot::index));
    }
}

/// A `#[blocking] for` item as the fan-out launches it: its `limit`
/// permit, and its run, called on the blocking thread with its group and
/// its name (`branch::blocking_item`). Built there, not captured: tokio
/// moves a blocking job several times as it runs it, each a copy of it.
pub(crate) struct Job<R> {
    pub(crate) permit: Option<Permit>,
    pub(crate) run: R,
}

/// `#[blocking] for` items: each runs to its end on the blocking pool and
/// hands its result to the fan-out there, as Go's `WaitGroup` counts its
/// goroutines down: the fan-out is woken by the last item to end, by a
/// failure, or, while it still starts items (under `limit`), by each end;
/// not by every item, as it was when it polled a join handle per item.
pub(crate) struct Jobs<T, R> {
    shared: Arc<JobsShared<T>>,
    name: &'static str,
    /// Results taken from `shared`, not yet given to the fan-out.
    ready: Vec<(usize, Done<T>)>,
    /// A bit per item, set from its push until its result is taken.
    live: Vec<u64>,
    /// Items pushed and not yet spawned: they start when the pool is
    /// polled, once the fan-out has pulled every item it may pull now,
    /// as a future would (an item spawned as it is pushed could cancel the
    /// group before the fan-out has seen that the iterator was exhausted,
    /// and leave it incomplete).
    queued: Vec<(usize, Job<R>)>,
}

struct JobsShared<T> {
    core: Arc<Core>,
    /// Items pushed and not yet ended: counted up without the lock, so that
    /// the fan-out, as it starts thousands of items, never holds a lock the
    /// items that end meanwhile need (were it preempted holding it, they
    /// would wait for it). Counted down under the lock.
    running: AtomicUsize,
    inner: Mutex<JobsInner<T>>,
}

struct JobsInner<T> {
    /// Ended items' results, handed over in batches.
    done: Vec<(usize, Done<T>)>,
    /// The fan-out still starts items: it is told of every end.
    each: bool,
    /// The fan-out's waker while it waits; taken by the wake.
    driver: Option<Waker>,
}

impl<T, R> std::fmt::Debug for Jobs<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<T, R> Jobs<T, R> {
    pub(crate) fn new(core: Arc<Core>, name: &'static str) -> Self {
        Jobs {
            shared: Arc::new(JobsShared {
                core,
                running: AtomicUsize::new(0),
                inner: Mutex::new(JobsInner {
                    done: Vec::new(),
                    each: true,
                    driver: None,
                }),
            }),
            name,
            ready: Vec::new(),
            live: Vec::new(),
            queued: Vec::new(),
        }
    }
}

/// One item's place in [`Jobs`], carried by its job: hands its result over
/// when the job ends, or, if the runtime drops the job unrun (shutting
/// down), cancels the group as an aborted task would, and hands over none.
struct Ticket<T> {
    shared: Arc<JobsShared<T>>,
    index: usize,
    permit: Option<Permit>,
    ended: bool,
}

impl<T> Ticket<T> {
    fn end(&mut self, value: Option<T>) {
        self.ended = true;
        let failed = value.is_none();
        let driver = {
            let mut inner = lock(&self.shared.inner);
            inner.done.push((self.index, (value, self.permit.take())));
            let last = self.shared.running.fetch_sub(1, Ordering::AcqRel) == 1;
            if failed || last || inner.each {
                inner.driver.take()
            } else {
                None
            }
        };
        if let Some(driver) = driver {
            driver.wake();
        }
    }
}

impl<T> Drop for Ticket<T> {
    fn drop(&mut self) {
        if !self.ended {
            self.shared.core.cancel(Cause::Dropped);
            self.end(None);
        }
    }
}

impl<T, R> Jobs<T, R>
where
    R: FnOnce(&Arc<Core>, TaskName) -> Option<T> + Send + 'static,
    T: Send + 'static,
{
    /// Starts the queued items.
    fn spawn_queued(&mut self) {
        let mut queued = std::mem::take(&mut self.queued);
        let name = self.name;
        for (index, job) in queued.drain(..) {
            let mut ticket = Ticket {
                shared: Arc::clone(&self.shared),
                index,
                permit: job.permit,
                ended: false,
            };
            let run = job.run;
            // Never joined: its ticket says when it ends.
            spawn_blocking_detached(&trace::name(&TaskName::indexed(name, index)), move || {
                let value = run(&ticket.shared.core, TaskName::indexed(name, index));
                ticket.end(value);
            });
        }
        // Its buffer, for the next items.
        self.queued = queued;
    }
}

impl<T, R> Pool<Job<R>> for Jobs<T, R>
where
    R: FnOnce(&Arc<Core>, TaskName) -> Option<T> + Send + 'static,
    T: Send + 'static,
{
    type Value = T;

    fn push(&mut self, index: usize, job: Job<R>) {
        let word = index / 64;
        if word >= self.live.len() {
            self.live.resize(word + 1, 0);
        }
        self.live[word] |= 1 << (index % 64);
        self.shared.running.fetch_add(1, Ordering::Relaxed);
        self.queued.push((index, job));
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<(usize, Option<T>, Option<Permit>)>> {
        self.spawn_queued();
        loop {
            if let Some((index, (value, permit))) = self.ready.pop() {
                self.live[index / 64] &= !(1 << (index % 64));
                return Poll::Ready(Some((index, value, permit)));
            }
            let mut inner = lock(&self.shared.inner);
            if !inner.done.is_empty() {
                std::mem::swap(&mut inner.done, &mut self.ready);
                continue;
            }
            // Every end counts down under the lock after handing over its
            // result: none is running, and every result has been taken.
            if self.shared.running.load(Ordering::Acquire) == 0 {
                return Poll::Ready(None);
            }
            keep_driver(&mut inner.driver, cx.waker());
            return Poll::Pending;
        }
    }

    fn stop(&mut self) -> AfterGrace {
        // A blocking job cannot be stopped: it is awaited.
        AfterGrace::Wait
    }

    fn live(&self, out: &mut Vec<usize>) {
        let mut live = self.live.clone();
        for (index, _) in &lock(&self.shared.inner).done {
            live[index / 64] &= !(1 << (index % 64));
        }
        for (word, bits) in live.iter().enumerate() {
            let mut bits = *bits;
            while bits != 0 {
                out.push(word * 64 + bits.trailing_zeros() as usize);
                bits &= bits - 1;
            }
        }
    }

    fn all_started(&mut self) {
        lock(&self.shared.inner).each = false;
    }
}

/// `#[spawn] for` items: run by a few worker tasks (workers.rs).
impl<Fut, T> Pool<Fut> for Workers<Fut, T>
where
    Fut: Future<Output = Done<T>> + Send + 'static,
    T: Send + 'static,
{
    type Value = T;

    fn push(&mut self, index: usize, task: Fut) {
        Workers::push(self, index, task);
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<(usize, Option<T>, Option<Permit>)>> {
        Workers::poll_next(self, cx)
    }

    fn stop(&mut self) -> AfterGrace {
        Workers::stop(self)
    }

    fn live(&self, out: &mut Vec<usize>) {
        Workers::live(self, out);
    }
}

pin_project! {
    /// One fan-out branch: starts an item per element of `items`, each made
    /// by `launch(item, index, permit, ends)` and run in `pool`;
    /// `Some(values)` when every item gave a value.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    #[project = FanOutProj]
    pub(crate) struct FanOut<'a, I, L, P, T, S> {
        core: &'a Arc<Core>,
        name: &'static str,
        // From which item on, since when, items were launched: one entry
        // per poll, once the group is `TIMED` (it has a deadline or grace,
        // or is watched); nothing per item, nothing for a group that is neither.
        launches: Vec<(usize, Instant)>,
        items: Option<I>,
        launch: L,
        pool: P,
        results: Vec<Option<T>>,
        // Items that have ended: `results.len()` minus this are running.
        ended: usize,
        complete: bool,
        permits: Option<PollSemaphore>,
        // The permit of the item that just ended, for the next one.
        spare: Option<Permit>,
        // Counted while the fan-out waits for a permit, so that another
        // fan-out of the group gives its permits back instead of keeping them.
        waiting: Option<Waiting<'a>>,
        cancelled: Cancellation<'a>,
        ends: Option<S>,
    }
}

impl<I, L, P, T, S> std::fmt::Debug for FanOut<'_, I, L, P, T, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FanOut")
            .field("started", &self.results.len())
            .finish_non_exhaustive()
    }
}

impl<'a, I: Iterator, L, P, T, S> FanOut<'a, I, L, P, T, S> {
    pub(crate) fn new<Fut>(
        core: &'a Arc<Core>,
        name: &'static str,
        items: I,
        pool: P,
        ends: S,
        launch: L,
    ) -> Self
    where
        L: FnMut(I::Item, usize, Option<Permit>, S) -> Fut,
        P: Pool<Fut, Value = T>,
    {
        FanOut {
            core,
            name,
            launches: Vec::new(),
            items: Some(items),
            launch,
            pool,
            results: Vec::new(),
            ended: 0,
            complete: true,
            permits: core
                .limit()
                .map(|l| PollSemaphore::new(Arc::clone(l.semaphore()))),
            spare: None,
            waiting: core.limit().map(Waiting::new),
            cancelled: core.cancellation(),
            ends: Some(ends),
        }
    }
}

impl<I, L, P, T, S, Fut> Future for FanOut<'_, I, L, P, T, S>
where
    I: Iterator,
    L: FnMut(I::Item, usize, Option<Permit>, S) -> Fut,
    P: Pool<Fut, Value = T>,
    S: Clone,
{
    type Output = Option<Vec<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<T>>> {
        let mut this = self.project();
        if this.core.is_timed() && this.items.is_some() {
            // Every item this poll launches starts now, from this index on.
            let first = this.results.len();
            let now = Instant::now();
            match this.launches.last_mut() {
                Some(last) if last.0 == first => last.1 = now,
                _ => this.launches.push((first, now)),
            }
        }
        // An item was taken by this poll.
        let mut took = false;
        loop {
            start_items(&mut this, cx);
            // Spent, the budget refuses every item that waits on tokio (a
            // join handle, a channel) and has it woken again after this
            // poll; the pool would poll every woken item in one
            // call, each refused: with C woken, C polls per 128 taken, C²/128
            // in all (as a `#[blocking] for` did when its items were join
            // handles that finished while its task was off the CPU).
            // Yielding polls each once. The first
            // call is always made: a sibling branch that spends the budget
            // on every poll must not starve the items that need none. With
            // at most a budget's worth running (`limit = 64`), a refused
            // call costs no more than the poll did: no check, nothing paid
            // per item.
            if took && this.results.len() - *this.ended > BUDGET && !coop::has_budget_remaining() {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            match this.pool.poll_next(cx) {
                Poll::Ready(Some((index, value, permit))) => {
                    match value {
                        Some(value) => this.results[index] = Some(value),
                        None => *this.complete = false,
                    }
                    *this.spare = permit;
                    *this.ended += 1;
                    took = true;
                }
                Poll::Ready(None) if this.items.is_none() => {
                    let results = std::mem::take(this.results);
                    return Poll::Ready(if *this.complete {
                        results.into_iter().collect()
                    } else {
                        None
                    });
                }
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Starts every item that may start now.
fn start_items<I, L, P, T, S, Fut>(
    this: &mut FanOutProj<'_, '_, I, L, P, T, S>,
    cx: &mut Context<'_>,
) where
    I: Iterator,
    L: FnMut(I::Item, usize, Option<Permit>, S) -> Fut,
    P: Pool<Fut, Value = T>,
    S: Clone,
{
    let mut reused = false;
    while let Some(iter) = this.items.as_mut() {
        if this.core.is_cancelled() {
            end_items(this, false);
            break;
        }
        // Someone else waits for a permit: this one goes back to the
        // semaphore, which hands it out first come, first served.
        let others = this.waiting.as_ref().is_some_and(Waiting::others);
        let permit = match this.spare.take().filter(|_| !others) {
            Some(permit) => {
                reused = true;
                Some(permit)
            }
            // The item just started will wake this loop when it ends, with
            // the current waker: asking the semaphore again now, on every
            // item, is what the reuse saves.
            None if reused => break,
            None => match this.permits.as_mut().map(|p| p.poll_acquire(cx)) {
                None => None,
                Some(Poll::Ready(Some(permit))) => {
                    if let Some(waiting) = this.waiting.as_mut() {
                        waiting.set(false);
                    }
                    // A failing item cancels the group before it gives its
                    // permit back: the permit may be the failure's.
                    if this.core.is_cancelled() {
                        end_items(this, false);
                        break;
                    }
                    Some(permit)
                }
                // The group's semaphore is never closed; stop if it were.
                Some(Poll::Ready(None)) => {
                    end_items(this, false);
                    break;
                }
                Some(Poll::Pending) => {
                    if let Some(waiting) = this.waiting.as_mut() {
                        waiting.set(true);
                    }
                    // Woken by a freed permit, or here by the cancellation.
                    if Pin::new(&mut *this.cancelled).poll(cx).is_ready() {
                        continue;
                    }
                    break;
                }
            },
        };
        let Some(item) = iter.next() else {
            end_items(this, true);
            break;
        };
        let index = this.results.len();
        this.results.push(None);
        let ends = this.ends.as_ref().map(S::clone);
        let ends = ends.unwrap_or_else(|| unreachable!("errgroup: ends outlive the items"));
        let task = (this.launch)(item, index, permit, ends);
        this.pool.push(index, task);
    }
}

/// Nothing more starts: the permits go back to the semaphore for the
/// others, and the branch's channel ends are dropped.
fn end_items<I, L, P, T, S, Fut>(this: &mut FanOutProj<'_, '_, I, L, P, T, S>, exhausted: bool)
where
    P: Pool<Fut>,
{
    *this.items = None;
    *this.complete &= exhausted;
    *this.spare = None;
    // A pending acquire would stay queued in the semaphore and be handed the
    // next free permit, which nobody would then take: dropped, it hands
    // that permit on to the next waiter.
    *this.permits = None;
    *this.ends = None;
    if let Some(waiting) = this.waiting.as_mut() {
        waiting.set(false);
    }
    this.pool.all_started();
}

impl<I, L, P, T, S, Fut> Stop for FanOut<'_, I, L, P, T, S>
where
    I: Iterator,
    L: FnMut(I::Item, usize, Option<Permit>, S) -> Fut,
    P: Pool<Fut, Value = T>,
{
    fn stop(self: Pin<&mut Self>) -> AfterGrace {
        let mut this = self.project();
        end_items(&mut this, false);
        this.pool.stop()
    }

    fn running(&self, census: &mut Census) {
        let mut live = Vec::new();
        self.pool.live(&mut live);
        live.sort_unstable();
        for index in live {
            // Launched by the last poll that launched an item at or before it.
            let at = self.launches.partition_point(|&(first, _)| first <= index);
            let launched = at.checked_sub(1).map(|at| self.launches[at].1);
            census.add(&TaskName::indexed(self.name, index), launched);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::cell::Cell;
    use std::sync::Arc;
    use std::time::Duration;

    use crate::__private::{Config, InTask, Scope, Spawn};

    /// `limit = 2` over 50 items: at most two pulled and unfinished at once,
    /// every item runs, values in iteration order.
    #[tokio::test]
    async fn items_are_pulled_lazily_under_the_limit() {
        let (pulled, finished, peak) = (Cell::new(0), Cell::new(0), Cell::new(0));
        let items = (0..50u32).inspect(|_| {
            pulled.set(pulled.get() + 1);
            peak.set(peak.get().max(pulled.get() - finished.get()));
        });
        let scope = Scope::<()>::new(Config::new().limit(2));
        let (values,) = scope
            .run((InTask.fan_out(&scope, "items", items, (), |i, _ctx, ()| {
                let finished = &finished;
                async move {
                    tokio::task::yield_now().await;
                    finished.set(finished.get() + 1);
                    Ok(i * 2)
                }
            }),))
            .await
            .unwrap();
        assert_eq!(values, (0..50).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(peak.get(), 2);
    }

    /// A wake polls only the item that was woken: each of 8 waiting items
    /// is polled once to start and once when its own sender fires, not
    /// again at every other item's wake.
    #[tokio::test]
    async fn a_wake_polls_only_the_woken_item() {
        use std::future::{Future, poll_fn};
        use std::pin::Pin;

        let polls: Vec<Cell<u32>> = (0..8).map(|_| Cell::new(0)).collect();
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..8)
            .map(|_| tokio::sync::oneshot::channel::<()>())
            .unzip();
        let scope = Scope::<()>::new(Config::new());
        let polls = &polls;
        let items = receivers.into_iter().enumerate();
        scope
            .run((
                InTask.fan_out(
                    &scope,
                    "items",
                    items,
                    (),
                    |(i, mut rx), _ctx, ()| async move {
                        poll_fn(|cx| {
                            polls[i].set(polls[i].get() + 1);
                            Pin::new(&mut rx).poll(cx)
                        })
                        .await
                        .unwrap();
                        Ok(())
                    },
                ),
                InTask.branch(&scope, scope.ctx("sender"), async {
                    tokio::task::yield_now().await;
                    for tx in senders {
                        tx.send(()).unwrap();
                        tokio::task::yield_now().await;
                    }
                    Ok(())
                }),
            ))
            .await
            .unwrap();
        let polls: Vec<u32> = polls.iter().map(Cell::get).collect();
        assert_eq!(polls, [2; 8]);
    }

    /// An item lets go of what it held as it ends, while its fan-out still
    /// runs: its future is kept by its slot until the next item takes it,
    /// holding nothing.
    #[tokio::test]
    async fn an_ended_item_holds_nothing() {
        let held = Arc::new(7);
        let seen = Cell::new(None);
        let scope = Scope::<()>::new(Config::new());
        scope
            .run((InTask.fan_out(&scope, "items", 0..2, (), |i, _ctx, ()| {
                let (mine, held, seen) = (Arc::clone(&held), &held, &seen);
                async move {
                    if i == 1 {
                        tokio::task::yield_now().await;
                        // Ours and the test's: item 0's went as it ended.
                        seen.set(Some(Arc::strong_count(held)));
                    }
                    // Held to the end, dropped with the block.
                    Ok(*mine)
                }
            }),))
            .await
            .unwrap();
        assert_eq!(seen.get(), Some(2));
    }

    /// A `#[blocking] for` wakes its group when its last item ends, not at
    /// each item's end: 20 items run one after the other on one blocking
    /// thread, and the group is polled to start them and once more.
    #[test]
    fn blocking_items_wake_the_group_once_the_last_has_ended() {
        use std::future::{Future, poll_fn};
        use std::pin::pin;

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(1)
            .build()
            .unwrap();
        let polls = runtime.block_on(async {
            let mut polls = 0;
            let mut group = pin!(async {
                crate::errgroup! {
                    #[blocking] items => for i in 0..20u32 {
                        std::thread::sleep(Duration::from_millis(1));
                        Ok::<_, ()>(i)
                    },
                }
            });
            let (values,) = poll_fn(|cx| {
                polls += 1;
                group.as_mut().poll(cx)
            })
            .await
            .unwrap();
            assert_eq!(values, (0..20).collect::<Vec<_>>());
            polls
        });
        assert_eq!(polls, 2);
    }

    /// On a runtime that has shut down, every blocking job is dropped
    /// unrun as it is spawned: its ticket ends it, so the fan-out ends with
    /// the group cancelled, as it did when it joined a handle per item,
    /// instead of waiting for ever for jobs that will not run.
    #[test]
    fn a_blocking_fan_out_on_a_runtime_that_has_shut_down_ends() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let handle = runtime.handle().clone();
        drop(runtime);
        let result = handle.block_on(async {
            crate::errgroup! {
                #[blocking] items => for i in 0..3u32 {
                    Ok::<_, ()>(i)
                },
            }
        });
        let error = result.unwrap_err();
        assert_eq!(error.cause(), crate::Cause::Dropped, "{error:?}");
    }

    /// Items that finish in reverse order still land at their index.
    #[tokio::test(start_paused = true)]
    async fn results_are_in_iteration_order_whatever_order_items_end_in() {
        let scope = Scope::<()>::new(Config::new());
        let (values,) = scope
            .run((
                Spawn.fan_out(&scope, "items", 0..10u64, (), |i, _ctx, ()| async move {
                    tokio::time::sleep(Duration::from_millis(100 - i * 10)).await;
                    Ok(i)
                }),
            ))
            .await
            .unwrap();
        assert_eq!(values, (0..10).collect::<Vec<_>>());
    }

    /// Once an item fails no other item is pulled, and the failing item is
    /// named with its index.
    #[tokio::test]
    async fn no_item_is_pulled_after_the_cancellation() {
        let pulled = Cell::new(0);
        let items = (0..100u32).inspect(|_| pulled.set(pulled.get() + 1));
        let scope = Scope::<&str>::new(Config::new().limit(1));
        let result = scope
            .run((
                InTask.fan_out(&scope, "items", items, (), |i, _ctx, ()| async move {
                    if i == 3 { Err("bad item") } else { Ok(i) }
                }),
            ))
            .await;
        assert_eq!(result.unwrap_err().task().unwrap().to_string(), "items[3]");
        assert_eq!(pulled.get(), 4);
    }

    /// The branch's channel ends are the fan-out's until no item will start
    /// again: then only the running items hold clones.
    #[tokio::test]
    async fn the_ends_are_dropped_once_no_item_will_start() {
        let ends = Arc::new(());
        let seen = Cell::new(None);
        let scope = Scope::<()>::new(Config::new());
        scope
            .run((InTask.fan_out(
                &scope,
                "items",
                0..1,
                Arc::clone(&ends),
                |_, _ctx, mine: Arc<()>| {
                    let (ends, seen) = (&ends, &seen);
                    async move {
                        tokio::task::yield_now().await;
                        // Ours, the test's, and no other.
                        seen.set(Some(Arc::strong_count(ends)));
                        drop(mine);
                        Ok(())
                    }
                },
            ),))
            .await
            .unwrap();
        assert_eq!(seen.get(), Some(2));
        assert_eq!(Arc::strong_count(&ends), 1);
    }
}

/// Keeps `waker` as the one to wake the fan-out's driver, cloning it only
/// when it would wake another task than the one kept.
fn keep_driver(driver: &mut Option<Waker>, waker: &Waker) {
    if !driver.as_ref().is_some_and(|w| w.will_wake(waker)) {
        *driver = Some(waker.clone());
    }
}
