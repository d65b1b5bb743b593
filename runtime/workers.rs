//! The items of a `#[spawn] for` fan-out, run by a few worker tasks instead
//! of a tokio task each.
//!
//! A tokio task per item costs its spawn, its schedule and its join: about
//! twice a goroutine start, and what made a spawned fan-out slower than Go's
//! errgroup. Here the fan-out hands its items (already `Send + 'static`
//! futures) to a shared queue, and at most one worker task per runtime
//! worker thread pulls them and polls them in-task, in a
//! `FuturesUnordered`: the same parallelism, at an in-task item's cost.
//!
//! # Invariants
//!
//! - A worker pulls an item only when every item it holds is pending (or it
//!   holds none), and polls it at once: an item busy with CPU work is never
//!   queued behind another one on a worker while another worker idles, so
//!   CPU-bound items spread over the workers as tasks would. An item that
//!   has been pending on one worker stays on it.
//! - Workers are started as items arrive, while fewer than the target are
//!   alive, and a worker ends as soon as the queue is empty and it holds no
//!   item. The queue and the count of live workers are changed under one
//!   lock, so no item is ever queued with no worker alive to take it.
//! - A finished item's result is handed to the fan-out after its future is
//!   dropped: once the fan-out has every worker's end, no item body runs and
//!   none is left to drop.
//! - `grace`: the queued items are dropped by the fan-out, the workers
//!   aborted (dropping the items they hold) and still awaited, as tasks.rs's
//!   shutdown rule says.
//! - Each item keeps what a spawned item had: its ctx, its span, its group
//!   as the ambient one (set by the item's own wrapper, private.rs), its
//!   panic caught by its own guard (branch.rs); only a panic that escapes
//!   an item (a destructor's) ends its worker, recorded by the group as a
//!   task's would be.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::task::AtomicWaker;
use pin_project_lite::pin_project;
use tokio::task::coop;

use crate::branch::AfterGrace;
use crate::error::TaskName;
use crate::limit::Permit;
use crate::state::Core;
use crate::sync::{Arc, Mutex, lock};
use crate::tasks::{Joined, TaskSet};
use crate::trace;

pin_project! {
    /// An item's future, with its index carried beside it (an `async` wrapper
    /// would store the item's future twice).
    #[derive(Debug)]
    pub(crate) struct Indexed<F> {
        index: usize,
        #[pin]
        task: F,
    }
}

impl<F> Indexed<F> {
    pub(crate) fn new(index: usize, task: F) -> Self {
        Indexed { index, task }
    }
}

impl<F: Future> Future for Indexed<F> {
    type Output = (usize, F::Output);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let index = *this.index;
        this.task.poll(cx).map(|output| (index, output))
    }
}

/// What a fan-out item's future gives (in-task or on the workers): its value, if any, and its permit.
pub(crate) type Done<T> = (Option<T>, Option<Permit>);

/// Items a worker polls in one go before it yields to the runtime, so that
/// a long run of items that are ready at once does not hold a thread.
const BATCH: usize = 64;

/// What the fan-out and its workers share.
struct Shared<Fut, T> {
    queue: Mutex<Queue<Fut>>,
    /// Finished items, handed over in batches.
    done: Mutex<Vec<(usize, Done<T>)>>,
    /// The fan-out's waker, for `done`.
    driver: AtomicWaker,
}

struct Queue<Fut> {
    items: VecDeque<(usize, Fut)>,
    /// Workers started and not yet ended.
    live: usize,
    /// Workers that hold pending items only and would take another one.
    idle: Vec<Waker>,
}

/// Items run by worker tasks (see the module's doc).
pub(crate) struct Workers<Fut, T> {
    shared: Arc<Shared<Fut, T>>,
    set: TaskSet<()>,
    /// Results taken from `shared.done`, not yet given to the fan-out.
    ready: Vec<(usize, Done<T>)>,
    /// How many workers at most; 0 until the first item.
    target: usize,
    core: Arc<Core>,
    name: &'static str,
    /// A bit per item, set from its push until its result is taken: what
    /// [`Workers::live`] reports (for fanout.rs's `Pool`), as the workers cannot be asked.
    live: Vec<u64>,
}

impl<Fut, T> std::fmt::Debug for Workers<Fut, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("name", &self.name)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl<Fut, T> Workers<Fut, T>
where
    Fut: Future<Output = Done<T>> + Send + 'static,
    T: Send + 'static,
{
    pub(crate) fn new(core: Arc<Core>, name: &'static str) -> Self {
        Workers {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue {
                    items: VecDeque::new(),
                    live: 0,
                    idle: Vec::new(),
                }),
                done: Mutex::new(Vec::new()),
                driver: AtomicWaker::new(),
            }),
            set: TaskSet::new(),
            ready: Vec::new(),
            target: 0,
            core,
            name,
            live: Vec::new(),
        }
    }
}

/// What [`staff`] decided, done once the queue's lock is released.
enum Staffing {
    Nothing,
    /// A worker was counted in `live`: start it.
    Start,
    Wake(Waker),
}

/// Counts a worker to start if items wait and fewer than `target` are
/// alive, else returns an idle one to wake.
fn staff<Fut>(queue: &mut Queue<Fut>, target: usize) -> Staffing {
    if queue.items.is_empty() {
        return Staffing::Nothing;
    }
    if queue.live < target {
        queue.live += 1;
        return Staffing::Start;
    }
    queue.idle.pop().map_or(Staffing::Nothing, Staffing::Wake)
}

impl<Fut, T> Workers<Fut, T>
where
    Fut: Future<Output = Done<T>> + Send + 'static,
    T: Send + 'static,
{
    /// Does what [`staff`] decided, with the queue's lock released: a
    /// runtime that has shut down drops the worker inside the spawn, and
    /// its `Drop` takes that lock.
    fn staffed(&mut self, staffing: Staffing) {
        match staffing {
            Staffing::Nothing => {}
            Staffing::Start => {
                let worker = Worker {
                    shared: Arc::clone(&self.shared),
                    items: FuturesUnordered::new(),
                    out: Vec::new(),
                    ended: false,
                };
                self.set
                    .spawn(&trace::name(&TaskName::new(self.name)), worker);
            }
            Staffing::Wake(idle) => idle.wake(),
        }
    }
}

/// What fanout.rs's `Pool` asks of the items' container, written here
/// as the workers' own methods: fanout.rs, above, implements its trait
/// with them, so nothing here is called through a trait of a layer above.
impl<Fut, T> Workers<Fut, T>
where
    Fut: Future<Output = Done<T>> + Send + 'static,
    T: Send + 'static,
{
    /// Starts `task`, the item at `index`.
    pub(crate) fn push(&mut self, index: usize, task: Fut) {
        let word = index / 64;
        if word >= self.live.len() {
            self.live.resize(word + 1, 0);
        }
        self.live[word] |= 1 << (index % 64);
        if self.target == 0 {
            // One worker per runtime thread: more could not run at once.
            self.target = tokio::runtime::Handle::current()
                .metrics()
                .num_workers()
                .max(1);
        }
        let mut queue = lock(&self.shared.queue);
        queue.items.push_back((index, task));
        let staffing = staff(&mut queue, self.target);
        drop(queue);
        self.staffed(staffing);
    }

    /// The next finished item: its index, its value if it gave one, and
    /// the `limit` permit it held.
    #[allow(clippy::type_complexity, reason = "a triple, named in the doc")]
    pub(crate) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<(usize, Option<T>, Option<Permit>)>> {
        loop {
            if let Some((index, (value, permit))) = self.ready.pop() {
                self.live[index / 64] &= !(1 << (index % 64));
                return Poll::Ready(Some((index, value, permit)));
            }
            self.shared.driver.register(cx.waker());
            {
                let mut done = lock(&self.shared.done);
                if !done.is_empty() {
                    std::mem::swap(&mut *done, &mut self.ready);
                    continue;
                }
            }
            match self.set.poll_next(cx) {
                Poll::Ready(Some(joined)) => {
                    // A worker ended. The group records a panic that
                    // escaped an item; one that died with items still
                    // queued is replaced here. An aborted one was not
                    // aborted by `stop` (which empties the queue first) but
                    // by the runtime shutting down: a new one would be
                    // dropped as it is spawned, so the queued items are.
                    let aborted = matches!(joined, Joined::Aborted);
                    self.core.joined(&TaskName::new(self.name), joined);
                    let mut queue = lock(&self.shared.queue);
                    if aborted {
                        let queued = std::mem::take(&mut queue.items);
                        drop(queue);
                        drop(queued);
                        continue;
                    }
                    let staffing = staff(&mut queue, self.target);
                    drop(queue);
                    self.staffed(staffing);
                }
                Poll::Ready(None) => {
                    // Every worker has ended; each handed over its results
                    // before it did.
                    if !lock(&self.shared.done).is_empty() {
                        continue;
                    }
                    // Whatever is still marked was dropped unfinished (by
                    // `grace`, or with a worker the runtime dropped): it no
                    // longer runs.
                    self.live.clear();
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// `grace` expired.
    pub(crate) fn stop(&mut self) -> AfterGrace {
        // Dropped here, outside the lock: an item's destructor may do anything.
        let queued = std::mem::take(&mut lock(&self.shared.queue).items);
        for (index, _) in &queued {
            self.live[index / 64] &= !(1 << (index % 64));
        }
        drop(queued);
        self.set.abort_all();
        AfterGrace::Wait
    }

    /// The indices of the items still running, in any order.
    pub(crate) fn live(&self, out: &mut Vec<usize>) {
        for (word, bits) in self.live.iter().enumerate() {
            let mut bits = *bits;
            while bits != 0 {
                out.push(word * 64 + bits.trailing_zeros() as usize);
                bits &= bits - 1;
            }
        }
    }
}

/// One worker task: pulls items from the queue and polls them.
struct Worker<Fut, T> {
    shared: Arc<Shared<Fut, T>>,
    items: FuturesUnordered<Indexed<Fut>>,
    /// Results of this poll, handed over at its end.
    out: Vec<(usize, Done<T>)>,
    /// Counted out of `live` already.
    ended: bool,
}

// Nothing in it is pinned: the `FuturesUnordered` boxes the items, and
// the results are only moved.
impl<Fut, T> Unpin for Worker<Fut, T> {}

impl<Fut: Future<Output = Done<T>>, T> Worker<Fut, T> {
    fn hand_over(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let mut done = lock(&self.shared.done);
        if done.is_empty() {
            std::mem::swap(&mut *done, &mut self.out);
        } else {
            done.append(&mut self.out);
        }
        drop(done);
        self.shared.driver.wake();
    }
}

impl<Fut: Future<Output = Done<T>>, T> Future for Worker<Fut, T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut polled = 0;
        loop {
            // The items it holds first, then one more from the queue, polled
            // at once by the next turn. It yields when its coop budget is
            // spent, as a task would: an item polled after that would only
            // be told to come back (tokio keeps a waker per such item until
            // the worker's turn ends, in a list that never shrinks).
            loop {
                if polled >= BATCH || !coop::has_budget_remaining() {
                    this.hand_over();
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                match this.items.poll_next_unpin(cx) {
                    Poll::Ready(Some((index, done))) => {
                        this.out.push((index, done));
                        polled += 1;
                    }
                    _ => break,
                }
            }
            let next = {
                let mut queue = lock(&this.shared.queue);
                match queue.items.pop_front() {
                    Some(item) => Some(item),
                    None if this.items.is_empty() => {
                        queue.live -= 1;
                        queue.idle.retain(|w| !w.will_wake(cx.waker()));
                        this.ended = true;
                        None
                    }
                    None => {
                        if !queue.idle.iter().any(|w| w.will_wake(cx.waker())) {
                            queue.idle.push(cx.waker().clone());
                        }
                        None
                    }
                }
            };
            match next {
                Some((index, task)) => {
                    this.items.push(Indexed::new(index, task));
                    polled += 1;
                }
                None => break,
            }
        }
        this.hand_over();
        if this.ended {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl<Fut, T> Drop for Worker<Fut, T> {
    fn drop(&mut self) {
        // Aborted, or unwound by a panic that escaped an item: the fan-out
        // starts another worker for what is still queued.
        if !self.ended {
            lock(&self.shared.queue).live -= 1;
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    use crate::errgroup;

    /// Sets its flag when dropped: the branch holding it was stopped.
    struct SetOnDrop(Arc<std::sync::atomic::AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Panics when dropped: a destructor's panic as the group stops a branch.
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("dropping the inline branch");
        }
    }

    /// 1,000 items on a 2-worker runtime run in at most 2 tokio tasks, not
    /// one each, and give their values in iteration order. Each item waits
    /// for all of them: a worker that has run one holds it until every item
    /// has started, so it cannot run out of items, end, and be replaced by
    /// a third task while the fan-out still pushes (as items that only
    /// yielded let it, in about one run in four).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_items_share_a_worker_per_runtime_thread() {
        let tasks = Arc::new(Mutex::new(HashSet::new()));
        let all = Arc::new(tokio::sync::Barrier::new(1_000));
        let (values,) = errgroup! {
            #[spawn(clone(tasks, all))] items => for i in 0..1_000u32 {
                tasks.lock().unwrap().insert(tokio::task::id());
                all.wait().await;
                Ok::<_, ()>(i)
            },
        }
        .unwrap();
        assert_eq!(values, (0..1_000).collect::<Vec<_>>());
        let tasks = tasks.lock().unwrap();
        assert!(
            !tasks.is_empty() && tasks.len() <= 2,
            "{} tasks",
            tasks.len()
        );
    }

    /// A worker that ended because the queue was empty is replaced when
    /// more items come: `limit = 1` runs every item, one at a time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn items_that_come_one_at_a_time_each_find_a_worker() {
        let (values,) = errgroup! {
            limit = 1;
            #[spawn] items => for i in 0..50u32 {
                tokio::task::yield_now().await;
                Ok::<_, ()>(i * 2)
            },
        }
        .unwrap();
        assert_eq!(values, (0..50).map(|i| i * 2).collect::<Vec<_>>());
    }

    /// On a runtime that has shut down every worker is dropped as it is
    /// spawned (inside the spawn): the fan-out ends with the group
    /// cancelled, as it did with a task per item, instead of deadlocking on
    /// its own queue lock or restarting workers for ever.
    #[test]
    fn a_fan_out_on_a_runtime_that_has_shut_down_ends() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let handle = runtime.handle().clone();
        drop(runtime);
        let result = handle.block_on(async {
            errgroup! {
                #[spawn] items => for i in 0..3u32 {
                    Ok::<_, ()>(i)
                },
            }
        });
        let error = result.unwrap_err();
        assert_eq!(error.cause(), crate::Cause::Dropped, "{error:?}");
    }

    /// In a group of `#[spawn]` branches only, the last one runs in the
    /// group's own task and the others in tasks of their own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_last_spawn_branch_of_an_all_spawn_group_runs_in_the_groups_task() {
        let group = tokio::spawn(async {
            let here = tokio::task::id();
            let (a, b) = errgroup! {
                #[spawn] a => Ok::<_, ()>(tokio::task::id()),
                #[spawn] b => Ok(tokio::task::id()),
            }
            .unwrap();
            (here, a, b)
        });
        let (here, a, b) = group.await.unwrap();
        assert_ne!(a, here);
        assert_eq!(b, here);
    }

    /// A panic in the destructor of the branch run in the group's task,
    /// dropped when `grace` expires, is the group's panic as that of an
    /// aborted task is: resumed once the other branches have stopped, not
    /// let out of the group's poll while one still runs.
    #[tokio::test(start_paused = true)]
    async fn a_panic_dropping_the_inline_branch_waits_for_the_other_branches() {
        use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
        use std::time::Duration;

        use futures_util::FutureExt;

        let stopped = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stopped);
        let result = std::panic::AssertUnwindSafe(async {
            errgroup! {
                grace = Duration::from_secs(1);
                #[spawn] failing => Err::<(), _>("boom"),
                #[spawn(clone(flag))] stubborn => {
                    let _guard = SetOnDrop(flag);
                    std::future::pending::<()>().await;
                    Ok(())
                },
                #[spawn] bomb => {
                    let _bomb = PanicOnDrop;
                    std::future::pending::<()>().await;
                    Ok(())
                },
            }
        })
        .catch_unwind()
        .await;
        let payload = result.expect_err("the group resumes the panic");
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"dropping the inline branch")
        );
        assert!(
            stopped.load(SeqCst),
            "the group panicked with `stubborn` still running"
        );
    }

    /// The same inside a tokio task, where the last branch (`bomb`) runs
    /// in the group's own task: dropped there when `grace` expires, its
    /// destructor's panic is recorded, not let out of the group's poll.
    #[tokio::test(start_paused = true)]
    async fn a_panic_dropping_the_branch_run_in_the_groups_task_waits_too() {
        use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
        use std::time::Duration;

        use futures_util::FutureExt;

        let stopped = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stopped);
        let group = tokio::spawn(async move {
            let here = tokio::task::id();
            std::panic::AssertUnwindSafe(async move {
                errgroup! {
                    grace = Duration::from_secs(1);
                    #[spawn] failing => Err::<(), _>("boom"),
                    #[spawn(clone(flag))] stubborn => {
                        let _guard = SetOnDrop(flag);
                        std::future::pending::<()>().await;
                        Ok(())
                    },
                    #[spawn] bomb => {
                        assert_eq!(tokio::task::id(), here, "run in the group's task");
                        let _bomb = PanicOnDrop;
                        std::future::pending::<()>().await;
                        Ok(())
                    },
                }
            })
            .catch_unwind()
            .await
            .map(drop)
        });
        let payload = group
            .await
            .unwrap()
            .expect_err("the group resumes the panic");
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"dropping the inline branch")
        );
        assert!(
            stopped.load(SeqCst),
            "the group panicked with `stubborn` still running"
        );
    }

    /// Under `limit`, the `#[spawn]` branches (the last one run in the
    /// group's task too) each wait for a permit and hold it as they run.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spawn_branches_under_limit_hold_a_permit_each() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

        /// Counts itself running for a few yields; the most seen at once.
        async fn work(running: Arc<AtomicUsize>, most: Arc<AtomicUsize>, value: u32) -> u32 {
            most.fetch_max(running.fetch_add(1, SeqCst) + 1, SeqCst);
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            running.fetch_sub(1, SeqCst);
            value
        }

        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (r, m) = (Arc::clone(&running), Arc::clone(&most));
        let values = tokio::spawn(async move {
            errgroup! {
                limit = 1;
                #[spawn(clone(r, m))] a => Ok::<_, ()>(work(r, m, 1).await),
                #[spawn(clone(r, m))] b => Ok(work(r, m, 2).await),
                #[spawn] c => Ok(work(r, m, 3).await),
            }
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(values, (1, 2, 3));
        assert_eq!(most.load(SeqCst), 1, "more than `limit` ran at once");
    }

    /// With an in-task branch in the group, every `#[spawn]` branch is a
    /// task of its own: the group's task may be busy with the in-task one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spawn_branches_beside_an_in_task_one_are_all_tasks() {
        let group = tokio::spawn(async {
            let here = tokio::task::id();
            let (a, b, ()) = errgroup! {
                #[spawn] a => Ok::<_, ()>(tokio::task::id()),
                #[spawn] b => Ok(tokio::task::id()),
                c => Ok(()),
            }
            .unwrap();
            (here, a, b)
        });
        let (here, a, b) = group.await.unwrap();
        assert_ne!(a, here);
        assert_ne!(b, here);
    }

    /// Items `grace` drops from the queue no longer run: a question asked
    /// after it must not list them (the census reads `live`).
    #[tokio::test(flavor = "current_thread")]
    async fn items_dropped_from_the_queue_by_grace_are_no_longer_live() {
        use std::future::{Future, pending};
        use std::pin::Pin;

        use super::Done;
        use super::Workers;
        use crate::state::{Core, Settings};

        type Item = Pin<Box<dyn Future<Output = Done<()>> + Send>>;
        let core = Core::new(Settings::default());
        let mut pool: Workers<Item, ()> = Workers::new(core, "items");
        // On this thread the worker spawned for them has not run yet:
        // both items are still queued.
        for index in 0..2 {
            pool.push(index, Box::pin(pending()));
        }
        let mut live = Vec::new();
        pool.live(&mut live);
        assert_eq!(live, [0, 1]);
        pool.stop();
        live.clear();
        pool.live(&mut live);
        assert_eq!(live, [], "what grace dropped is listed as running");
    }
}
