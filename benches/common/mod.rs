//! Code shared by the bench binaries: the runtimes, the hand-rolled tokio
//! group errgroup is compared with, and the "N blocked, one fails" workload.
//!
//! # Stand-ins
//!
//! A case whose errgroup side needs a feature that is not there yet runs a
//! stand-in, and its bench id says so (`errgroup_*_standin`,
//! `errgroup_placeholder_*`); its function carries a `SWITCH:` comment with
//! the macro version to paste in, and the id changes to `errgroup` then.
//! Every case now runs errgroup itself.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each bench binary includes this module and uses a different subset"
)]

use std::future::Future;
use std::panic::resume_unwind;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use errgroup::errgroup;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The error every benchmark task fails with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fail;

impl From<errgroup::Cancelled> for Fail {
    fn from(_: errgroup::Cancelled) -> Self {
        Fail
    }
}

impl<T> From<errgroup::SendError<T>> for Fail {
    fn from(_: errgroup::SendError<T>) -> Self {
        Fail
    }
}

/// The multi-thread runtime of the spawned cases: 2 workers, as on the
/// 2-core machine Go's numbers were taken on (GOMAXPROCS = 2).
pub fn multi_thread() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The runtime of the in-task cases: everything on the calling thread.
pub fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs `iters` rounds of `round` inside a task of `rt` (on a worker, where
/// real code spawns from, not on the thread calling `block_on`) and returns
/// the time they took together.
pub fn time_rounds<F, Fut>(rt: &Runtime, iters: u64, round: F) -> Duration
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future + Send,
{
    rt.block_on(async move {
        tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..iters {
                std::hint::black_box(round().await);
            }
            start.elapsed()
        })
        .await
        .expect("bench task")
    })
}

/// The usual hand-rolled tokio group: a `JoinSet` for the tasks and a
/// `CancellationToken` each task watches. `wait` joins every task, cancels
/// the token on the first error and returns that error once all are done;
/// dropping the group aborts its tasks (the `JoinSet` does that).
#[derive(Debug)]
pub struct JoinSetGroup<T, E> {
    set: JoinSet<Result<T, E>>,
    token: CancellationToken,
}

impl<T: Send + 'static, E: Send + 'static> JoinSetGroup<T, E> {
    /// An empty group with a fresh token.
    pub fn new() -> Self {
        JoinSetGroup {
            set: JoinSet::new(),
            token: CancellationToken::new(),
        }
    }

    /// Spawns `task(token)` as a tokio task of the group.
    pub fn spawn<F, Fut>(&mut self, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        self.set.spawn(task(self.token.clone()));
    }

    /// Waits for every task; the values in completion order, or the first error.
    pub async fn wait(mut self) -> Result<Vec<T>, E> {
        let mut values = Vec::with_capacity(self.set.len());
        let mut first_error = None;
        while let Some(joined) = self.set.join_next().await {
            match joined {
                Ok(Ok(value)) => values.push(value),
                Ok(Err(error)) => {
                    if first_error.is_none() {
                        self.token.cancel();
                        first_error = Some(error);
                    }
                }
                Err(e) if e.is_panic() => {
                    self.token.cancel();
                    resume_unwind(e.into_panic());
                }
                Err(_) => self.token.cancel(),
            }
        }
        self.token.cancel();
        match first_error {
            Some(error) => Err(error),
            None => Ok(values),
        }
    }
}

impl<T: Send + 'static, E: Send + 'static> Default for JoinSetGroup<T, E> {
    fn default() -> Self {
        JoinSetGroup::new()
    }
}

/// Shared by the blocked tasks and the one that fails: the failing task
/// waits until every other task is blocked, notes the time, and fails, so
/// what is measured is only failure -> cancellation -> group returned.
#[derive(Debug)]
pub struct Probe {
    blocked: usize,
    ready: AtomicUsize,
    failed_at: OnceLock<Instant>,
}

impl Probe {
    /// A probe for `blocked` tasks that block, plus the one that fails.
    pub fn new(blocked: usize) -> Arc<Probe> {
        Arc::new(Probe {
            blocked,
            ready: AtomicUsize::new(0),
            failed_at: OnceLock::new(),
        })
    }

    /// Called by a blocked task right before it blocks.
    pub fn arrive(&self) {
        self.ready.fetch_add(1, Ordering::Relaxed);
    }

    /// The failing task: fails once every other task is blocked.
    pub async fn fail_when_all_blocked(&self) -> Result<(), Fail> {
        while self.ready.load(Ordering::Relaxed) < self.blocked {
            tokio::task::yield_now().await;
        }
        // A blocked task increments `ready` just before its first await
        // registers its waker; one more turn lets the last one get there.
        tokio::task::yield_now().await;
        let _ = self.failed_at.set(Instant::now());
        Err(Fail)
    }

    /// Time from the failure to now.
    pub fn since_failure(&self) -> Duration {
        self.failed_at
            .get()
            .expect("the failing task ran")
            .elapsed()
    }
}

/// errgroup, in-task: `tasks` tasks of which all but one block on their
/// ctx and one fails; returns the time from the failure to the group's
/// return. The blocked ones are one in-task fan-out branch.
pub async fn errgroup_blocked(tasks: usize) -> Duration {
    let probe = Probe::new(tasks - 1);
    let result = errgroup! {
        blocked => for _ in 0..tasks - 1 {
            probe.arrive();
            ctx.cancelled().await;
            Ok(())
        },
        failer => probe.fail_when_all_blocked().await,
    };
    let elapsed = probe.since_failure();
    assert!(result.is_err());
    elapsed
}

/// errgroup, spawned: as [`errgroup_blocked`] with `#[spawn]` branches (a
/// tokio task per item).
pub async fn errgroup_blocked_spawn(tasks: usize) -> Duration {
    let probe = Probe::new(tasks - 1);
    let last = Arc::clone(&probe);
    let result = errgroup! {
        #[spawn] blocked => for probe in std::iter::repeat_n(Arc::clone(&probe), tasks - 1) {
            probe.arrive();
            ctx.cancelled().await;
            Ok(())
        },
        #[spawn] failer => last.fail_when_all_blocked().await,
    };
    let elapsed = probe.since_failure();
    assert!(result.is_err());
    elapsed
}

/// The id of the errgroup side of the blocked cases (`errgroup_*_standin`
/// while one stands in for a missing feature).
pub const ERRGROUP_BLOCKED_ID: &str = "errgroup";

/// In-task `FuturesUnordered` + `CancellationToken`, same workload as
/// [`errgroup_blocked`]: drain the set, cancel the token on the first error.
pub async fn futures_unordered_blocked(tasks: usize) -> Duration {
    let probe = Probe::new(tasks - 1);
    let token = CancellationToken::new();
    let mut set = FuturesUnordered::new();
    for _ in 0..tasks - 1 {
        let token = &token;
        let probe = &probe;
        set.push(futures::future::Either::Left(async move {
            probe.arrive();
            token.cancelled().await;
            Ok::<(), Fail>(())
        }));
    }
    set.push(futures::future::Either::Right(
        probe.fail_when_all_blocked(),
    ));
    let mut first_error = None;
    while let Some(outcome) = set.next().await {
        if let Err(e) = outcome {
            if first_error.is_none() {
                token.cancel();
                first_error = Some(e);
            }
        }
    }
    let elapsed = probe.since_failure();
    assert!(first_error.is_some());
    elapsed
}

/// Hand-rolled `JoinSet` + `CancellationToken` group, same workload as
/// [`errgroup_blocked`], with spawned tasks.
pub async fn joinset_blocked(tasks: usize) -> Duration {
    let probe = Probe::new(tasks - 1);
    let mut group = JoinSetGroup::<(), Fail>::new();
    for _ in 0..tasks - 1 {
        let probe = Arc::clone(&probe);
        group.spawn(move |token| async move {
            probe.arrive();
            token.cancelled().await;
            Ok(())
        });
    }
    let failer = Arc::clone(&probe);
    group.spawn(move |_token| async move { failer.fail_when_all_blocked().await });
    let result = group.wait().await;
    let elapsed = probe.since_failure();
    assert!(result.is_err());
    elapsed
}

/// The `q`-quantile (0..=1) of `samples`, which it sorts.
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort_unstable();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a sample vector of modest length"
    )]
    let index = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[index]
}

/// One side of an [`interleaved`] run: `CASE/SIDE` and one timed run.
pub type Side<'a> = (String, Box<dyn FnMut() -> Duration + 'a>);

/// CPU time this process has used, all threads (user + system), from
/// `/proc/self/stat`: in clock ticks of 10 ms (Linux's `USER_HZ` is 100), so
/// only runs of a good many ticks read meaningfully.
pub fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, utime 14 and stime 15.
    let rest = &stat[stat.rfind(')').expect("(comm)") + 1..];
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|f| f.parse::<u64>().expect("utime/stime"))
        .sum();
    Duration::from_millis(ticks * 10)
}

/// Runs every side once per round, in turn, for a warm-up round and then
/// `rounds` timed ones; each run does `batch` units of work (groups, or
/// one fan-out). Prints each side's median wall time per unit (and its
/// range) and the mean CPU time the whole process used per unit (a mean:
/// one run may be shorter than a tick of [`process_cpu`]), as
/// `CASE/SIDE  TIME (MIN..MAX)  cpu CPU  median_ns NS cpu_ns NS`, the line
/// `benches/ratios.sh` reads.
///
/// Criterion measures one side after the other; on a shared machine whose
/// load changes over seconds, that lands a burst of other work on one side
/// only. Alternating (and rotating which side goes first) spreads it over
/// all of them, so the ratios of the medians hold up where the times do
/// not. CPU time tells the cost from the parallelism: it does not shrink
/// when the machine is busy, and CPU / wall is how many cores a side got.
pub fn interleaved(rounds: usize, batch: u32, sides: &mut [Side<'_>]) {
    for (_, run) in sides.iter_mut() {
        run();
    }
    let mut walls = vec![Vec::with_capacity(rounds); sides.len()];
    let mut cpus = vec![Duration::ZERO; sides.len()];
    for round in 0..rounds {
        for k in 0..sides.len() {
            let i = (round + k) % sides.len();
            let cpu = process_cpu();
            walls[i].push((sides[i].1)());
            cpus[i] += process_cpu().saturating_sub(cpu);
        }
    }
    let units = u32::try_from(rounds).expect("rounds fit in u32") * batch;
    // Per unit in f64 nanoseconds, not `Duration / batch`: that truncates
    // to whole nanoseconds, and a trivial group takes about ten.
    let per = |run: Duration, units: u32| run.as_secs_f64() * 1e9 / f64::from(units.max(1));
    for (((id, _), mut wall), cpu) in sides.iter().zip(walls).zip(cpus) {
        let median = per(quantile(&mut wall, 0.5), batch);
        let (low, high) = (
            per(quantile(&mut wall, 0.0), batch),
            per(quantile(&mut wall, 1.0), batch),
        );
        let cpu = per(cpu, units);
        println!(
            "{id:<36} {:>10} ({}..{})  cpu {}  median_ns {median:.2} cpu_ns {cpu:.2}",
            show_ns(median),
            show_ns(low),
            show_ns(high),
            show_ns(cpu),
        );
    }
}

/// `ns` nanoseconds for people: as a `Duration` prints them, with two
/// decimals under a microsecond.
fn show_ns(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.2}ns")
    } else {
        format!("{:.2?}", Duration::from_secs_f64(ns / 1e9))
    }
}

/// The round count from the command line: the first argument that is a
/// number (cargo passes `--bench`, criterion-style filters are ignored),
/// else `default`; at least 1.
pub fn rounds_arg(default: usize) -> usize {
    std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(default)
        .max(1)
}

/// The first argument that is neither a flag nor the round count: the
/// interleaved benches keep the sides whose id contains it.
pub fn filter_arg() -> Option<String> {
    std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-') && a.parse::<usize>().is_err())
}

/// `VmHWM` (peak resident set) of this process, in bytes.
pub fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("VmHWM value");
    kib * 1024
}
