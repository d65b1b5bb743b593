//! errgroup side by side with what people write without it.
//!
//! Every criterion group is one case of the table in benches/README.md and
//! holds two functions: the errgroup side (id starting with `errgroup`) and
//! the alternative. `benches/ratios.sh` runs this and prints the medians,
//! the ratio errgroup / other and the target.
//!
//! ```text
//! cargo bench --bench compare -- --warm-up-time 1 --measurement-time 2
//! ```
//!
//! Cases whose errgroup side needs a feature that has not landed yet use a
//! stand-in and say so in their id; look for `SWITCH:` here and in
//! `common/mod.rs`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput};
use errgroup::errgroup;
use futures::stream::{self, StreamExt, TryStreamExt};
use tokio::sync::mpsc;

#[path = "common/mod.rs"]
mod common;

use common::{Fail, JoinSetGroup};

/// Tasks in the small spawn case.
const SPAWN_SMALL: usize = 1_000;
/// Tasks in the large spawn case and items in the `limit` case.
const SPAWN_LARGE: usize = 100_000;
/// The `limit` of the in-task fan-out case.
const LIMIT: usize = 64;
/// Tasks in the cancellation case: all but one block on their ctx.
const BLOCKED: usize = 1_000;
/// Values sent through the channel case.
const MESSAGES: u64 = 10_000_000;
/// The channel's capacity.
const CAPACITY: usize = 1024;

/// 2 trivial `#[spawn]` branches vs the hand-rolled `JoinSet` + token group.
fn group2_spawn(c: &mut Criterion) {
    let rt = common::multi_thread();
    let mut g = c.benchmark_group("group2_spawn");
    g.bench_function("errgroup", |b| {
        b.iter_custom(|iters| {
            common::time_rounds(&rt, iters, || async {
                errgroup! {
                    #[spawn] a => Ok::<u64, Fail>(black_box(1)),
                    #[spawn] b => Ok(black_box(2)),
                }
            })
        });
    });
    g.bench_function("joinset_token", |b| {
        b.iter_custom(|iters| {
            common::time_rounds(&rt, iters, || async {
                let mut group = JoinSetGroup::<u64, Fail>::new();
                group.spawn(|_token| async { Ok(black_box(1)) });
                group.spawn(|_token| async { Ok(black_box(2)) });
                group.wait().await
            })
        });
    });
    g.finish();
}

/// The errgroup side of the spawn cases: `n` trivial spawned tasks, one
/// `#[spawn]` fan-out branch.
async fn errgroup_spawn(n: usize) -> Result<(Vec<()>,), errgroup::Error<Fail>> {
    errgroup! { #[spawn] items => for _ in 0..n { Ok::<(), Fail>(()) } }
}

/// The id of [`errgroup_spawn`].
const ERRGROUP_SPAWN_ID: &str = "errgroup";

/// The floor: `tokio::spawn` into a `Vec<JoinHandle>`, then await each.
async fn tokio_spawn_vec(n: usize) -> Result<(), Fail> {
    let handles: Vec<_> = (0..n)
        .map(|_| tokio::spawn(async { Ok::<(), Fail>(()) }))
        .collect();
    for handle in handles {
        handle.await.expect("task")?;
    }
    Ok(())
}

/// 1,000 and 100,000 trivial spawned tasks vs `tokio::spawn` + `Vec<JoinHandle>`.
fn spawn_many(c: &mut Criterion) {
    let rt = common::multi_thread();
    for n in [SPAWN_SMALL, SPAWN_LARGE] {
        let mut g = c.benchmark_group(format!("spawn_{n}"));
        g.throughput(Throughput::Elements(n as u64));
        if n >= SPAWN_LARGE {
            g.sample_size(20).sampling_mode(SamplingMode::Flat);
        }
        g.bench_function(ERRGROUP_SPAWN_ID, |b| {
            b.iter_custom(|iters| common::time_rounds(&rt, iters, move || errgroup_spawn(n)));
        });
        g.bench_function("tokio_spawn_vec", |b| {
            b.iter_custom(|iters| common::time_rounds(&rt, iters, move || tokio_spawn_vec(n)));
        });
        g.finish();
    }
}

/// The errgroup side of the `limit` case: `n` trivial in-task items, 64 at
/// a time, values in a `Vec` (as `try_collect` gives the alternative's).
async fn errgroup_limited(n: usize) -> Result<(Vec<u64>,), errgroup::Error<Fail>> {
    errgroup! {
        limit = LIMIT;
        items => for i in 0..n as u64 { Ok::<u64, Fail>(black_box(i)) }
    }
}

/// The id of [`errgroup_limited`].
const ERRGROUP_LIMITED_ID: &str = "errgroup";

/// 100,000 trivial in-task items with `limit = 64` vs `buffer_unordered(64)`.
fn intask_limit(c: &mut Criterion) {
    let rt = common::current_thread();
    let mut g = c.benchmark_group(format!("intask_limit{LIMIT}_{SPAWN_LARGE}"));
    g.throughput(Throughput::Elements(SPAWN_LARGE as u64));
    g.sample_size(20).sampling_mode(SamplingMode::Flat);
    g.bench_function(ERRGROUP_LIMITED_ID, |b| {
        b.iter_custom(|iters| common::time_rounds(&rt, iters, || errgroup_limited(SPAWN_LARGE)));
    });
    g.bench_function("buffer_unordered", |b| {
        b.iter_custom(|iters| {
            common::time_rounds(&rt, iters, || {
                stream::iter(0..SPAWN_LARGE as u64)
                    .map(|i| async move { Ok::<u64, Fail>(black_box(i)) })
                    .buffer_unordered(LIMIT)
                    .try_collect::<Vec<u64>>()
            })
        });
    });
    g.finish();
}

/// 1,000 in-task tasks blocked on their ctx, one fails: the time from the
/// failure until the group returns, vs in-task `FuturesUnordered` + token.
fn cancel_blocked(c: &mut Criterion) {
    let rt = common::current_thread();
    let mut g = c.benchmark_group(format!("cancel_{BLOCKED}_intask"));
    for (id, errgroup_side) in [
        (common::ERRGROUP_BLOCKED_ID, true),
        ("futures_unordered_token", false),
    ] {
        g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += if errgroup_side {
                            common::errgroup_blocked(BLOCKED).await
                        } else {
                            common::futures_unordered_blocked(BLOCKED).await
                        };
                    }
                    total
                })
            });
        });
    }
    g.finish();
}

/// The errgroup side of the channel case: `n` values from a producer to a
/// consumer through a group-bound channel of `CAPACITY`, both `#[spawn]`
/// branches (tokio tasks, as on the raw side).
async fn errgroup_channel(n: u64) -> u64 {
    let ((), sum) = errgroup! {
        let (tx, rx) = channel::<u64>(CAPACITY);
        #[spawn] produce => {
            for i in 0..n {
                tx.send(i).await?;
            }
            Ok::<(), Fail>(())
        },
        #[spawn] consume => {
            let mut sum = 0u64;
            while let Some(v) = rx.recv().await? {
                sum = sum.wrapping_add(v);
            }
            Ok::<u64, Fail>(sum)
        },
    }
    .expect("channel group");
    sum
}

/// The id of [`errgroup_channel`].
const ERRGROUP_CHANNEL_ID: &str = "errgroup";

/// Raw `tokio::sync::mpsc`, producer and consumer as tokio tasks.
async fn raw_channel(n: u64) -> u64 {
    let (tx, mut rx) = mpsc::channel::<u64>(CAPACITY);
    let producer = tokio::spawn(async move {
        for i in 0..n {
            tx.send(i).await.map_err(|_| Fail)?;
        }
        Ok::<(), Fail>(())
    });
    let consumer = tokio::spawn(async move {
        let mut sum = 0u64;
        while let Some(v) = rx.recv().await {
            sum = sum.wrapping_add(v);
        }
        sum
    });
    producer.await.expect("producer").expect("send");
    consumer.await.expect("consumer")
}

/// 10M `u64` through a channel of capacity 1024, vs raw `tokio::sync::mpsc`.
fn channel(c: &mut Criterion) {
    let rt = common::multi_thread();
    let mut g = c.benchmark_group("channel_10M");
    g.throughput(Throughput::Elements(MESSAGES));
    // Seconds per iteration: one iteration per sample, 10 samples.
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g.bench_function(ERRGROUP_CHANNEL_ID, |b| {
        b.iter_custom(|iters| common::time_rounds(&rt, iters, || errgroup_channel(MESSAGES)));
    });
    g.bench_function("tokio_mpsc", |b| {
        b.iter_custom(|iters| common::time_rounds(&rt, iters, || raw_channel(MESSAGES)));
    });
    g.finish();
}

fn main() {
    // What `criterion_group!` + `criterion_main!` expand to, without an
    // undocumented public item.
    let mut c = Criterion::default().configure_from_args();
    group2_spawn(&mut c);
    spawn_many(&mut c);
    intask_limit(&mut c);
    cancel_blocked(&mut c);
    channel(&mut c);
    c.final_summary();
}
