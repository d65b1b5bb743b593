//! Scaling of a CPU-bound fan-out: 10,000 items of ~50 us of real work each
//! (a hash loop, calibrated once per process), on a 1-worker and on a
//! 2-worker runtime, errgroup against the same work with `tokio::spawn` +
//! `Vec<JoinHandle>` and with rayon's `par_iter` on a pool of as many
//! threads. `#[blocking] for` runs against `spawn_blocking` +
//! `Vec<JoinHandle>` and `spawn_blocking` + `FuturesUnordered`, with the
//! blocking pool capped at the worker count so all have the same parallelism.
//!
//! Here the per-item cost of a group is small next to the work, so what
//! shows is whether errgroup keeps both cores busy: speedup = time on 1
//! worker / time on 2. The sides run in turn, round after round (see
//! `common::interleaved`), and each prints its median; `benches/ratios.sh`
//! prints the ratios and speedups.
//!
//! ```text
//! cargo bench --bench scaling [-- ROUNDS] [FILTER]
//! ```
//!
//! FILTER keeps the sides whose id contains it (`blocking`: the
//! `#[blocking] for` rows only).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use errgroup::errgroup;
use rayon::prelude::*;
use tokio::runtime::Runtime;

#[path = "common/mod.rs"]
mod common;

use common::Fail;

/// Items per fan-out.
const ITEMS: u64 = 10_000;
/// The CPU time each item should take.
const ITEM_TIME: Duration = Duration::from_micros(50);
/// Timed rounds of every side unless the command line says otherwise
/// (each round runs every side once: about 4 s on 2 cores).
const ROUNDS: usize = 10;

/// Rounds of [`hash_rounds`] that take [`ITEM_TIME`], set once by
/// [`calibrate`]: a static, so every side's item body is the same call and
/// a `#[spawn]` body needs no capture.
static ROUNDS_PER_ITEM: AtomicU64 = AtomicU64::new(0);

/// `rounds` rounds of a 64-bit multiply-xorshift mix seeded by `seed`;
/// `black_box` keeps the compiler from folding the loop.
fn hash_rounds(seed: u64, rounds: u64) -> u64 {
    let mut h = black_box(seed ^ 0x9e37_79b9_7f4a_7c15);
    for _ in 0..rounds {
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 29;
        h = black_box(h);
    }
    h
}

/// One item's work: ~[`ITEM_TIME`] of CPU.
fn item(i: u64) -> u64 {
    hash_rounds(i, ROUNDS_PER_ITEM.load(Ordering::Relaxed))
}

/// CPU time the calling thread has run, from `/proc/thread-self/schedstat`
/// (nanoseconds): unlike the wall clock, it does not count the time other
/// processes on a busy machine take from this thread.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    let ns = stat
        .split_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .expect("schedstat run time");
    Duration::from_nanos(ns)
}

/// Sets [`ROUNDS_PER_ITEM`] from the CPU time of the fastest of a few
/// probe runs. On a busy machine an item still takes longer than that
/// later (the other core's load slows this one's too, seen: 40-80 us
/// where 50 was calibrated), but the same for every side of a run.
fn calibrate() {
    const PROBE: u64 = 4_000_000;
    let best = (0..5)
        .map(|_| {
            let start = thread_cpu();
            black_box(hash_rounds(1, PROBE));
            thread_cpu().saturating_sub(start)
        })
        .min()
        .expect("five runs");
    #[allow(
        clippy::cast_possible_truncation,
        reason = "a round count far below u64::MAX"
    )]
    let rounds = (u128::from(PROBE) * ITEM_TIME.as_nanos() / best.as_nanos().max(1)) as u64;
    ROUNDS_PER_ITEM.store(rounds.max(1), Ordering::Relaxed);
    let start = thread_cpu();
    for i in 0..100 {
        black_box(item(i));
    }
    println!(
        "scaling: {rounds} hash rounds per item; 100 items just took {:?} of CPU each (target {ITEM_TIME:?})",
        thread_cpu().saturating_sub(start) / 100
    );
}

/// A multi-thread runtime of `workers` workers whose blocking pool has as
/// many threads, so `#[blocking]` items get the same parallelism.
fn runtime(workers: usize) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .max_blocking_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// errgroup: one `#[spawn]` fan-out branch over the items.
async fn errgroup_spawn_for() -> Vec<u64> {
    let (values,) = errgroup! {
        #[spawn] items => for i in 0..ITEMS { Ok::<u64, Fail>(item(i)) }
    }
    .expect("fan-out");
    values
}

/// errgroup: one `#[blocking]` fan-out branch over the items.
async fn errgroup_blocking_for() -> Vec<u64> {
    let (values,) = errgroup! {
        #[blocking] items => for i in 0..ITEMS { Ok::<u64, Fail>(item(i)) }
    }
    .expect("fan-out");
    values
}

/// `tokio::spawn` per item into a `Vec<JoinHandle>`, then await each.
async fn tokio_spawn_vec() -> Vec<u64> {
    let handles: Vec<_> = (0..ITEMS)
        .map(|i| tokio::spawn(async move { item(i) }))
        .collect();
    let mut values = Vec::with_capacity(handles.len());
    for handle in handles {
        values.push(handle.await.expect("task"));
    }
    values
}

/// `spawn_blocking` per item into a `Vec<JoinHandle>`, then await each.
async fn spawn_blocking_vec() -> Vec<u64> {
    let handles: Vec<_> = (0..ITEMS)
        .map(|i| tokio::task::spawn_blocking(move || item(i)))
        .collect();
    let mut values = Vec::with_capacity(handles.len());
    for handle in handles {
        values.push(handle.await.expect("task"));
    }
    values
}

/// `spawn_blocking` per item into a `FuturesUnordered`, each result taken
/// as it comes (what a hand-written group that must see a failure at once
/// does): woken per item, as `#[blocking] for` is, where the `Vec` side
/// waits on one handle at a time and sleeps through the later ones.
async fn spawn_blocking_unordered() -> Vec<u64> {
    use futures::stream::{FuturesUnordered, StreamExt};
    let mut handles: FuturesUnordered<_> = (0..ITEMS)
        .map(|i| {
            let handle = tokio::task::spawn_blocking(move || item(i));
            async move { (i, handle.await.expect("task")) }
        })
        .collect();
    let mut values = vec![0; handles.len()];
    while let Some((i, value)) = handles.next().await {
        #[allow(clippy::cast_possible_truncation, reason = "i < ITEMS")]
        let at = i as usize;
        values[at] = value;
    }
    values
}

/// Every side on 1 and on 2 workers, interleaved; every side produces the
/// items' values in order.
fn scaling(rounds: usize) {
    let runtimes = [runtime(1), runtime(2)];
    let pools = [1, 2].map(|threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("rayon pool")
    });
    let mut sides: Vec<common::Side<'_>> = Vec::new();
    for (workers, (rt, pool)) in (1..).zip(runtimes.iter().zip(&pools)) {
        let case = format!("cpu10k_{workers}w");
        sides.push((
            format!("{case}/errgroup_spawn_for"),
            Box::new(move || common::time_rounds(rt, 1, errgroup_spawn_for)),
        ));
        sides.push((
            format!("{case}/tokio_spawn_vec"),
            Box::new(move || common::time_rounds(rt, 1, tokio_spawn_vec)),
        ));
        sides.push((
            format!("{case}/rayon_par_iter"),
            Box::new(move || {
                let start = Instant::now();
                black_box(
                    pool.install(|| (0..ITEMS).into_par_iter().map(item).collect::<Vec<u64>>()),
                );
                start.elapsed()
            }),
        ));
        sides.push((
            format!("{case}/errgroup_blocking_for"),
            Box::new(move || common::time_rounds(rt, 1, errgroup_blocking_for)),
        ));
        sides.push((
            format!("{case}/spawn_blocking_vec"),
            Box::new(move || common::time_rounds(rt, 1, spawn_blocking_vec)),
        ));
        sides.push((
            format!("{case}/spawn_blocking_unordered"),
            Box::new(move || common::time_rounds(rt, 1, spawn_blocking_unordered)),
        ));
    }
    if let Some(filter) = common::filter_arg() {
        sides.retain(|(id, _)| id.contains(&filter));
    }
    common::interleaved(rounds, 1, &mut sides);
}

fn main() {
    let rounds = common::rounds_arg(ROUNDS);
    calibrate();
    scaling(rounds);
}
