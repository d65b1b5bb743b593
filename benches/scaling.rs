//! Scaling of a CPU-bound fan-out: 10,000 items of ~50 us of real work each
//! (a hash loop, calibrated once per process), on a 1-worker and on a
//! 2-worker runtime, errgroup against the same work with `tokio::spawn` +
//! `Vec<JoinHandle>` and with rayon's `par_iter` on a pool of as many
//! threads. `#[blocking] for` runs against `spawn_blocking` +
//! `Vec<JoinHandle>`, with the blocking pool capped at the worker count so
//! both have the same parallelism.
//!
//! Here the per-item cost of a group is small next to the work, so what
//! shows is whether errgroup keeps both cores busy: speedup = time on 1
//! worker / time on 2. `benches/ratios.sh` prints the ratios and speedups.
//!
//! ```text
//! cargo bench --bench scaling -- --warm-up-time 1 --measurement-time 2
//! ```

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
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

/// Sets [`ROUNDS_PER_ITEM`] from the fastest of a few timed runs (the
/// fastest is the least disturbed by other load on the machine).
fn calibrate() {
    const PROBE: u64 = 2_000_000;
    let best = (0..5)
        .map(|_| {
            let start = Instant::now();
            black_box(hash_rounds(1, PROBE));
            start.elapsed()
        })
        .min()
        .expect("five runs");
    #[allow(
        clippy::cast_possible_truncation,
        reason = "a round count far below u64::MAX"
    )]
    let rounds = (u128::from(PROBE) * ITEM_TIME.as_nanos() / best.as_nanos().max(1)) as u64;
    ROUNDS_PER_ITEM.store(rounds.max(1), Ordering::Relaxed);
    let start = Instant::now();
    black_box(item(0));
    println!(
        "scaling: {rounds} hash rounds per item (one item just took {:?}; target {ITEM_TIME:?})",
        start.elapsed()
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

/// One criterion group per worker count; every side produces the items'
/// values in order.
fn scaling(c: &mut Criterion) {
    for workers in [1, 2] {
        let rt = runtime(workers);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .build()
            .expect("rayon pool");
        let mut g = c.benchmark_group(format!("cpu10k_{workers}w"));
        g.throughput(Throughput::Elements(ITEMS));
        // 0.25-0.5 s per iteration: one iteration per sample, 10 samples.
        g.sample_size(10).sampling_mode(SamplingMode::Flat);
        g.bench_function("errgroup_spawn_for", |b| {
            b.iter_custom(|iters| common::time_rounds(&rt, iters, errgroup_spawn_for));
        });
        g.bench_function("tokio_spawn_vec", |b| {
            b.iter_custom(|iters| common::time_rounds(&rt, iters, tokio_spawn_vec));
        });
        g.bench_function("rayon_par_iter", |b| {
            b.iter(|| pool.install(|| (0..ITEMS).into_par_iter().map(item).collect::<Vec<u64>>()));
        });
        g.bench_function("errgroup_blocking_for", |b| {
            b.iter_custom(|iters| common::time_rounds(&rt, iters, errgroup_blocking_for));
        });
        g.bench_function("spawn_blocking_vec", |b| {
            b.iter_custom(|iters| common::time_rounds(&rt, iters, spawn_blocking_vec));
        });
        g.finish();
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    calibrate();
    scaling(&mut c);
    c.final_summary();
}
