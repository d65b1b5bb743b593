//! Stress and leaks: many sequential groups and many
//! concurrent tasks in one group leave the heap as they found it, on every
//! way a group can end: success, a branch's error, a panic, the group's
//! future dropped midway with spawned tasks in flight, and a deadline.
//!
//! Memory is counted by a counting global allocator (`stats_alloc`): live
//! bytes and live blocks (allocations minus deallocations) are read after
//! a warm-up, then after `n` groups. The growth allowed is a constant that
//! does not scale with `n`, while a leak of one allocation per group would
//! grow by at least `n` blocks and `16 * n` bytes, far above it.
//!
//! The allocator counts every thread of this binary, so everything here runs
//! from one `#[test]` at a time, under [`SERIAL`]. CI runs the small sizes;
//! `benches/stress.sh` runs the `#[ignore]`d big ones (1,000,000 sequential
//! groups per path, 20,000 on the two paths that wait a timer tick per
//! group; 100,000 concurrent tasks in one group) in release mode.

use std::alloc::System;
use std::any::Any;
use std::future::{Future, pending, poll_fn};
use std::panic::{self, AssertUnwindSafe};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Barrier, Mutex, PoisonError};
use std::task::Poll;
use std::time::{Duration, Instant};

use errgroup::{Cancelled, Error, Group, errgroup};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tokio::runtime::{Builder, Runtime};
use tokio::sync::Semaphore;
use tokio::task::yield_now;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// One measurement at a time: the allocator is global to this binary.
static SERIAL: Mutex<()> = Mutex::new(());

/// Blocking threads the runtime may start; the warm-up starts all of them,
/// so a blocking thread started mid-measurement cannot look like a leak.
const BLOCKING_THREADS: usize = 4;

/// The growth a measurement tolerates: what tokio and std may still hold
/// lazily after the warm-up (a thread-local slot, a timer level). A leak of
/// one block per group exceeds it from 64 groups on; every path runs
/// thousands.
const MAX_BLOCKS: isize = 64;
const MAX_BYTES: isize = 16 * 1024;

/// Bounds waits that would hang if the code were wrong; never reached otherwise.
const FAILSAFE: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Boom;

impl From<Cancelled> for Boom {
    fn from(_: Cancelled) -> Self {
        Boom
    }
}

/// The payload of the panics this file causes on purpose; the panic hook
/// stays quiet for it and only for it.
struct DeliberatePanic;

fn deliberate_panic() -> ! {
    panic::panic_any(DeliberatePanic)
}

/// Live heap: bytes and blocks allocated and not yet freed.
#[derive(Clone, Copy, Debug)]
struct Live {
    bytes: isize,
    blocks: isize,
}

fn live() -> Live {
    let stats = GLOBAL.stats();
    let signed = |n: usize| isize::try_from(n).expect("counter fits isize");
    Live {
        bytes: signed(stats.bytes_allocated) - signed(stats.bytes_deallocated),
        blocks: signed(stats.allocations) - signed(stats.deallocations),
    }
}

/// The resident set size in KiB, for the record (Linux only): the
/// allocator may keep freed pages, so it is printed, never asserted.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn runtime() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(BLOCKING_THREADS)
        // An idle blocking thread that exits mid-measurement frees memory,
        // one started again later allocates it: keep them all alive.
        .thread_keep_alive(Duration::from_secs(24 * 3600))
        .enable_all()
        .build()
        .expect("runtime")
}

/// Starts every blocking thread the runtime may have: the barrier opens
/// only once `BLOCKING_THREADS` blocking tasks run at once.
fn start_all_blocking_threads(rt: &Runtime) {
    let barrier = std::sync::Arc::new(Barrier::new(BLOCKING_THREADS));
    let tasks: Vec<_> = (0..BLOCKING_THREADS)
        .map(|_| {
            let barrier = barrier.clone();
            rt.spawn_blocking(move || {
                barrier.wait();
            })
        })
        .collect();
    rt.block_on(async {
        for task in tasks {
            task.await.expect("blocking warm-up task");
        }
    });
}

/// Silences the panic hook for [`DeliberatePanic`] payloads, so thousands of
/// them do not flood the output; any other panic still reports as usual.
fn quiet_deliberate_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(install_quiet_hook);
}

fn install_quiet_hook() {
    let default = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if !info.payload().is::<DeliberatePanic>() {
            default(info);
        }
    }));
}

/// Waits until every tokio task has been freed (aborted ones finish
/// aborting on the workers) and the live heap is back within bounds of
/// `before`; returns the final reading. Only a leak keeps it from
/// returning early; the failsafe then hands the figures to the assertion.
fn settle(rt: &Runtime, before: Live) -> Live {
    let start = Instant::now();
    loop {
        let now = live();
        let tasks = rt.metrics().num_alive_tasks();
        let within =
            now.blocks - before.blocks <= MAX_BLOCKS && now.bytes - before.bytes <= MAX_BYTES;
        if (tasks == 0 && within) || start.elapsed() > Duration::from_secs(10) {
            return now;
        }
        std::thread::yield_now();
    }
}

/// What one path did to the heap.
struct Report {
    path: &'static str,
    groups: usize,
    before: Live,
    after: Live,
    elapsed: Duration,
}

impl Report {
    fn print(&self) {
        println!(
            "{:<28} {:>9} groups {:>8.2?}  live before {:>9} B / {:>6} blocks, after {:>9} B / {:>6} blocks, growth {:+} B / {:+} blocks",
            self.path,
            self.groups,
            self.elapsed,
            self.before.bytes,
            self.before.blocks,
            self.after.bytes,
            self.after.blocks,
            self.after.bytes - self.before.bytes,
            self.after.blocks - self.before.blocks,
        );
    }

    fn assert_no_growth(&self) {
        let (bytes, blocks) = (
            self.after.bytes - self.before.bytes,
            self.after.blocks - self.before.blocks,
        );
        assert!(
            blocks <= MAX_BLOCKS && bytes <= MAX_BYTES,
            "{}: {} groups left {bytes} bytes in {blocks} blocks behind (allowed: {MAX_BYTES} bytes, {MAX_BLOCKS} blocks)",
            self.path,
            self.groups,
        );
    }
}

/// Runs `group(i)` for `i` in `0..n` one after the other, after a warm-up
/// of the same path, and reports what the `n` groups left on the heap.
fn measure<F, Fut>(rt: &Runtime, path: &'static str, n: usize, group: F) -> Report
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    rt.block_on(async {
        for i in 0..100 {
            group(i).await;
        }
    });
    let warm = live();
    settle(rt, warm);
    let before = live();
    let start = Instant::now();
    rt.block_on(async {
        for i in 0..n {
            group(i).await;
        }
    });
    let elapsed = start.elapsed();
    let after = settle(rt, before);
    let report = Report {
        path,
        groups: n,
        before,
        after,
        elapsed,
    };
    report.print();
    report
}

/// Polls `fut`, turning a panic that escapes it into `Err(payload)`.
async fn catch_panic<F: Future>(fut: F) -> Result<F::Output, Box<dyn Any + Send>> {
    let mut fut = pin!(fut);
    poll_fn(
        |cx| match panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(payload)),
        },
    )
    .await
}

fn assert_deliberate(result: Result<impl Sized, Box<dyn Any + Send>>) {
    match result {
        Err(payload) => assert!(payload.is::<DeliberatePanic>(), "another panic"),
        Ok(_) => panic!("the group returned instead of resuming the branch's panic"),
    }
}

/// Polls `group` until `started` reaches `target` (its spawned tasks are
/// running), then drops it: the drop happens with those tasks in flight.
async fn drop_midway<F: Future>(group: F, started: &AtomicUsize, target: usize) {
    let start = Instant::now();
    let mut group = pin!(group);
    while started.load(SeqCst) < target {
        let polled = poll_fn(|cx| Poll::Ready(group.as_mut().poll(cx).is_pending())).await;
        assert!(polled, "the group returned while its branches were pending");
        assert!(
            start.elapsed() < FAILSAFE,
            "the spawned tasks never started"
        );
        yield_now().await;
    }
}

// Each path is a function of the group's index, which some branches use so
// that no group is exactly the previous one.

async fn success_in_task(i: usize) {
    let (a, b, c) = errgroup! {
        type Error = Boom;
        a => Ok(i),
        b => { yield_now().await; ctx.check()?; Ok(i + 1) },
        c => { let s = format!("{i}"); Ok(s.len()) },
    }
    .expect("in-task group");
    assert_eq!((a, b), (i, i + 1));
    assert!(c > 0);
}

async fn success_spawn_blocking(i: usize) {
    let (a, b, c) = errgroup! {
        type Error = Boom;
        #[spawn] a => { yield_now().await; Ok(i) },
        #[blocking] b => Ok(4 * i.to_string().parse::<usize>().map_err(|_| Boom)?),
        c => Ok(i),
    }
    .expect("spawn/blocking group");
    assert_eq!((a, b, c), (i, 4 * i, i));
}

async fn success_fan_out(i: usize) {
    let (squares, doubles) = errgroup! {
        type Error = Boom;
        limit = 2;
        squares => for n in 0..4 { yield_now().await; Ok(n * n + i) },
        #[spawn] doubles => for n in 0..4 { Ok(2 * n) },
    }
    .expect("fan-out group");
    assert_eq!(squares, [i, 1 + i, 4 + i, 9 + i]);
    assert_eq!(doubles, [0, 2, 4, 6]);
}

async fn success_ctx_spawn(i: usize) {
    static DONE: AtomicUsize = AtomicUsize::new(0);
    let before = DONE.load(SeqCst);
    errgroup! {
        type Error = Boom;
        a => {
            for _ in 0..3 {
                ctx.spawn("flush", async move {
                    yield_now().await;
                    DONE.fetch_add(1, SeqCst);
                    Ok::<_, Boom>(())
                })?;
            }
            Ok(i)
        },
    }
    .expect("ctx.spawn group");
    assert_eq!(
        DONE.load(SeqCst),
        before + 3,
        "the group waits for its spawned tasks"
    );
}

async fn success_channels(i: usize) {
    let ((), total) = errgroup! {
        type Error = Boom;
        let (tx, rx) = channel::<usize>(2);
        produce => {
            for n in 0..8 {
                tx.send(n + i).await.map_err(|_| Boom)?;
            }
            Ok(())
        },
        #[spawn] consume => {
            let mut total = 0;
            while let Some(n) = rx.recv().await? {
                total += n;
            }
            Ok(total)
        },
    }
    .expect("channel group");
    assert_eq!(total, 28 + 8 * i);
}

async fn success_nested(i: usize) {
    let (outer, inner) = errgroup! {
        type Error = Boom;
        outer => Ok(i),
        inner => {
            let (x, y) = errgroup! {
                type Error = Boom;
                #[spawn] x => Ok(i),
                y => { let (tx, rx) = ctx.channel::<usize>(1); tx.send(i).await.map_err(|_| Boom)?; drop(tx); Ok(rx.recv().await?.unwrap_or(0)) },
            }
            .map_err(|_| Boom)?;
            Ok(x + y)
        },
    }
    .expect("nested group");
    assert_eq!((outer, inner), (i, 2 * i));
}

async fn success_dynamic(i: usize) {
    static DONE: AtomicUsize = AtomicUsize::new(0);
    let before = DONE.load(SeqCst);
    let mut group = Group::<Boom>::new().limit(2);
    for _ in 0..4 {
        group.spawn(format!("task{i}"), |ctx| async move {
            ctx.check()?;
            DONE.fetch_add(1, SeqCst);
            Ok(())
        });
    }
    group.wait().await.expect("dynamic group");
    assert_eq!(DONE.load(SeqCst), before + 4);
}

async fn error_every_kind_of_branch(i: usize) {
    let result = errgroup! {
        type Error = Boom;
        fails => { yield_now().await; Err::<(), _>(Boom) },
        waits => { ctx.cancelled().await; Ok(i) },
        #[spawn] spawned => { ctx.cancelled().await; Ok(()) },
        sleeps => { ctx.sleep(Duration::from_secs(3600)).await?; Ok(()) },
        detached => {
            let task_ctx = ctx.clone();
            ctx.spawn("watches", async move { task_ctx.cancelled().await; Ok::<_, Boom>(()) })?;
            ctx.cancelled().await;
            Ok(())
        },
        items => for n in 0..3 { ctx.cancelled().await; Ok(n) },
    };
    match result {
        Err(Error::Failed { task, error: Boom }) => assert_eq!(task, "fails"),
        other => panic!("expected `fails` to fail the group, got {other:?}"),
    }
}

/// Branches and tasks that ignore the cancellation, stopped by `grace`.
async fn error_then_grace(_: usize) {
    let result = errgroup! {
        type Error = Boom;
        grace = Duration::ZERO;
        fails => Err::<(), _>(Boom),
        stubborn => { pending::<()>().await; Ok(()) },
        #[spawn] spawned => { pending::<()>().await; Ok(()) },
        detached => { ctx.spawn("forever", pending::<Result<(), Boom>>())?; Ok(()) },
        #[spawn] items => for _ in 0..2 { pending::<()>().await; Ok(()) },
    };
    assert!(matches!(result, Err(Error::Failed { ref task, .. }) if task == "fails"));
}

async fn error_nested_and_dynamic(_: usize) {
    let result = errgroup! {
        type Error = Boom;
        outer => { ctx.cancelled().await; Ok(()) },
        inner => {
            errgroup! {
                type Error = Boom;
                #[spawn] bad => Err::<(), _>(Boom),
                good => { ctx.cancelled().await; Ok(()) },
            }
            .map_err(|_| Boom)?;
            Ok(())
        },
    };
    assert!(matches!(result, Err(Error::Failed { ref task, .. }) if task == "inner"));
    let mut group = Group::<Boom>::new();
    group.spawn("bad", |_| async { Err(Boom) });
    group.spawn("waits", |ctx| async move {
        ctx.cancelled().await;
        Ok(())
    });
    assert!(matches!(group.wait().await, Err(Error::Failed { ref task, .. }) if task == "bad"));
}

async fn panic_in_task(i: usize) {
    assert_deliberate(
        catch_panic(async {
            errgroup! {
                type Error = Boom;
                boom => { yield_now().await; if i < usize::MAX { deliberate_panic() } Ok(()) },
                waits => { ctx.cancelled().await; Ok(()) },
                #[spawn] spawned => { ctx.cancelled().await; Ok(()) },
            }
        })
        .await,
    );
}

async fn panic_in_spawned_tasks(i: usize) {
    assert_deliberate(
        catch_panic(async {
            errgroup! {
                type Error = Boom;
                #[spawn] boom => { yield_now().await; if i < usize::MAX { deliberate_panic() } Ok(()) },
                waits => {
                    let task_ctx = ctx.clone();
                    ctx.spawn("watches", async move { task_ctx.cancelled().await; Ok::<_, Boom>(()) })?;
                    ctx.cancelled().await;
                    Ok(())
                },
                #[blocking] blocking => Ok(i),
            }
        })
        .await,
    );
    let mut group = Group::<Boom>::new();
    group.spawn("boom", move |_| async move {
        if i < usize::MAX {
            deliberate_panic()
        }
        Ok(())
    });
    group.spawn("waits", |ctx| async move {
        ctx.cancelled().await;
        Ok(())
    });
    assert_deliberate(catch_panic(group.wait()).await);
}

async fn dropped_midway(_: usize) {
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    let target = STARTED.load(SeqCst) + 3;
    let group = async {
        errgroup! {
            type Error = Boom;
            let (tx, rx) = channel::<u8>(1);
            waits => { ctx.cancelled().await; Ok(()) },
            #[spawn] spawned => { STARTED.fetch_add(1, SeqCst); pending::<()>().await; Ok(()) },
            detached => {
                ctx.spawn("forever", async {
                    STARTED.fetch_add(1, SeqCst);
                    pending::<Result<(), Boom>>().await
                })?;
                pending::<()>().await;
                Ok(())
            },
            #[spawn] items => for _ in 0..2 { ctx.sleep(Duration::from_secs(3600)).await?; Ok(()) },
            // Blocked on a full channel whose receiver never reads.
            blocked => { tx.send(1).await.map_err(|_| Boom)?; tx.send(2).await.map_err(|_| Boom)?; Ok(()) },
            holds => { let _ = &rx; pending::<()>().await; Ok(()) },
        }
    };
    drop_midway(group, &STARTED, target - 1).await;
    // A dynamic group dropped with its tasks running.
    let mut group = Group::<Boom>::new();
    group.spawn("forever", |_| async {
        STARTED.fetch_add(1, SeqCst);
        pending().await
    });
    drop_midway(group.wait(), &STARTED, target).await;
}

async fn deadline_passed(_: usize) {
    let result = errgroup! {
        type Error = Boom;
        // Already past, even rounded up to the timer's millisecond: it
        // fires at the first poll instead of a tick later.
        deadline = tokio::time::Instant::now() - Duration::from_millis(5);
        sleeps => { ctx.sleep(Duration::from_secs(3600)).await?; Ok(()) },
        #[spawn] waits => { ctx.cancelled().await; Err::<(), _>(Boom) },
        detached => {
            let task_ctx = ctx.clone();
            ctx.spawn("watches", async move { task_ctx.cancelled().await; Ok::<_, Boom>(()) })?;
            Ok(())
        },
    };
    assert!(matches!(result, Err(Error::Cancelled(_))), "{result:?}");
}

/// Deadlines that fire while the branches wait: a timer tick (a
/// millisecond) per group, so this path runs fewer ([`timer_bound`]).
async fn deadline_fires(_: usize) {
    let result = errgroup! {
        type Error = Boom;
        timeout = Duration::from_millis(1);
        sleeps => { ctx.sleep(Duration::from_secs(3600)).await?; Ok(()) },
        #[spawn] waits => { ctx.cancelled().await; Err::<(), _>(Boom) },
    };
    assert!(matches!(result, Err(Error::Cancelled(_))), "{result:?}");
    let mut group = Group::<Boom>::new().timeout(Duration::from_millis(1));
    group.spawn("waits", |ctx| async move {
        ctx.cancelled().await;
        Err(Boom)
    });
    let result = group.wait().await;
    assert!(matches!(result, Err(Error::Cancelled(_))), "{result:?}");
}

/// `n` tasks alive at once in one group, started by `ctx.spawn` and by a
/// `#[spawn]` fan-out; returns the live heap while all of them were blocked.
async fn many_concurrent_tasks(n: usize) -> Live {
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    static GATE: Semaphore = Semaphore::const_new(0);
    static PEAK: Mutex<Option<Live>> = Mutex::new(None);
    let base = STARTED.load(SeqCst);
    // Releases the gate once all `n` are running, and records the peak.
    let release = |target: usize| async move {
        let start = Instant::now();
        while STARTED.load(SeqCst) < base + target {
            assert!(start.elapsed() < FAILSAFE, "the tasks never all started");
            yield_now().await;
        }
        let mut peak = PEAK.lock().unwrap_or_else(PoisonError::into_inner);
        let now = live();
        if peak.is_none_or(|p| now.bytes > p.bytes) {
            *peak = Some(now);
        }
        drop(peak);
        GATE.add_permits(n);
    };
    let blocked = || async {
        STARTED.fetch_add(1, SeqCst);
        GATE.acquire().await.expect("gate").forget();
        Ok::<_, Boom>(())
    };
    errgroup! {
        type Error = Boom;
        spawner => {
            for _ in 0..n {
                ctx.spawn("blocked", blocked())?;
            }
            Ok(())
        },
        release => { release(n).await; Ok(()) },
    }
    .expect("ctx.spawn group");
    let (items, ()) = errgroup! {
        type Error = Boom;
        #[spawn] items => for _ in 0..n { blocked().await },
        release => { release(2 * n).await; Ok(()) },
    }
    .expect("#[spawn] fan-out group");
    assert_eq!(items.len(), n);
    PEAK.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .expect("a peak")
}

/// Groups to run on a path that waits for the timer (a millisecond tick,
/// 1 to 4 ms a group): a tenth of `n`, at most 20,000, which still leaves a
/// leak of one block per group far above [`MAX_BLOCKS`].
fn timer_bound(n: usize) -> usize {
    (n / 10).min(20_000)
}

/// Every path, `n` sequential groups each; returns the reports.
fn sequential_groups(rt: &Runtime, n: usize) -> Vec<Report> {
    vec![
        measure(rt, "success: in-task", n, success_in_task),
        measure(
            rt,
            "success: #[spawn] #[blocking]",
            n,
            success_spawn_blocking,
        ),
        measure(rt, "success: fan-out", n, success_fan_out),
        measure(rt, "success: ctx.spawn", n, success_ctx_spawn),
        measure(rt, "success: channels", n, success_channels),
        measure(rt, "success: nested", n, success_nested),
        measure(rt, "success: dynamic Group", n, success_dynamic),
        measure(
            rt,
            "error: every branch kind",
            n,
            error_every_kind_of_branch,
        ),
        measure(rt, "error: nested, Group", n, error_nested_and_dynamic),
        measure(rt, "error: then grace", timer_bound(n), error_then_grace),
        measure(rt, "panic: in-task", n, panic_in_task),
        measure(rt, "panic: spawned, Group", n, panic_in_spawned_tasks),
        measure(rt, "dropped midway", n, dropped_midway),
        measure(rt, "deadline: already past", n, deadline_passed),
        measure(rt, "deadline: fires", timer_bound(n), deadline_fires),
    ]
}

/// `n` concurrent tasks in one group, by `ctx.spawn`, then by a `#[spawn]`
/// fan-out; returns the report and the peak.
fn concurrent_tasks(rt: &Runtime, n: usize) -> (Report, Live) {
    // A small warm-up: anything kept sized to the concurrency would show.
    rt.block_on(many_concurrent_tasks(100));
    let before = live();
    settle(rt, before);
    let before = live();
    let start = Instant::now();
    let peak = rt.block_on(many_concurrent_tasks(n));
    let elapsed = start.elapsed();
    let after = settle(rt, before);
    let report = Report {
        path: "concurrent tasks in a group",
        groups: 2,
        before,
        after,
        elapsed,
    };
    report.print();
    (report, peak)
}

fn setup() -> (std::sync::MutexGuard<'static, ()>, Runtime) {
    let serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    quiet_deliberate_panics();
    let rt = runtime();
    start_all_blocking_threads(&rt);
    (serial, rt)
}

#[test]
fn memory_returns_to_baseline_after_thousands_of_groups_on_every_path() {
    let (_serial, rt) = setup();
    for report in sequential_groups(&rt, 2_000) {
        report.assert_no_growth();
    }
}

#[test]
fn memory_returns_to_baseline_after_ten_thousand_concurrent_tasks() {
    let (_serial, rt) = setup();
    let (report, peak) = concurrent_tasks(&rt, 10_000);
    println!(
        "peak while 2 x 10,000 tasks were blocked: {} B in {} blocks",
        peak.bytes, peak.blocks
    );
    assert!(
        peak.blocks - report.before.blocks >= 10_000,
        "the tasks were not alive at once"
    );
    report.assert_no_growth();
}

/// `benches/stress.sh`: 1,000,000 sequential groups on every path.
#[test]
#[ignore = "minutes in release mode; run by benches/stress.sh"]
fn memory_returns_to_baseline_after_a_million_groups_on_every_path() {
    let (_serial, rt) = setup();
    let n = std::env::var("STRESS_GROUPS").map_or(1_000_000, |n| n.parse().expect("STRESS_GROUPS"));
    let rss = rss_kib();
    let reports = sequential_groups(&rt, n);
    println!("RSS {rss:?} KiB before, {:?} KiB after", rss_kib());
    for report in reports {
        report.assert_no_growth();
    }
}

/// `benches/stress.sh`: 100,000 concurrent tasks in one group.
#[test]
#[ignore = "run by benches/stress.sh"]
fn memory_returns_to_baseline_after_a_hundred_thousand_concurrent_tasks() {
    let (_serial, rt) = setup();
    let rss = rss_kib();
    let (report, peak) = concurrent_tasks(&rt, 100_000);
    println!("RSS {rss:?} KiB before, {:?} KiB after", rss_kib());
    println!(
        "peak while 2 x 100,000 tasks were blocked: {} B in {} blocks",
        peak.bytes, peak.blocks
    );
    assert!(peak.blocks - report.before.blocks >= 100_000);
    report.assert_no_growth();
}
