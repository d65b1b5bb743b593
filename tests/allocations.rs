//! What a group costs the allocator on its fast paths, counted exactly by a
//! counting global allocator (`stats_alloc`): the README's performance table
//! compares a trivial group with `tokio::try_join!`, which allocates
//! nothing, so every allocation a group makes when nothing needs it shows
//! there. Each bound here is the count measured when it was set; a change
//! that adds an allocation to these paths fails, one that removes one
//! should lower the bound.
//!
//! The allocator counts every thread of this binary, so everything runs
//! from one `#[test]`, on a current-thread runtime, after a warm-up.

use std::alloc::System;
use std::hint::black_box;

use errgroup::errgroup;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[derive(Debug)]
struct Fail;

/// Allocations and bytes per run of `round`, averaged over `runs` runs.
fn per_run<F: Future>(
    rt: &tokio::runtime::Runtime,
    runs: usize,
    round: impl Fn() -> F,
) -> (f64, f64) {
    rt.block_on(async {
        for _ in 0..100 {
            black_box(round().await);
        }
        let before = GLOBAL.stats();
        for _ in 0..runs {
            black_box(round().await);
        }
        let after = GLOBAL.stats();
        #[allow(clippy::cast_precision_loss, reason = "small counts")]
        (
            (after.allocations - before.allocations) as f64 / runs as f64,
            (after.bytes_allocated - before.bytes_allocated) as f64 / runs as f64,
        )
    })
}

#[test]
fn trivial_groups_allocate_no_more_than_measured() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let runs = 1_000;

    let (blocks, bytes) = per_run(&rt, runs, || async {
        errgroup! {
            a => Ok::<u64, Fail>(black_box(1)),
            b => Ok(black_box(2)),
        }
    });
    println!("2 trivial in-task branches: {blocks} allocations, {bytes} B per group");
    // The runtime and the test harness allocate now and then on their own
    // (a few per thousand groups, seen: 1.007); one more allocation per
    // group would add 1.0.
    assert!(
        blocks < MAX_GROUP2_INTASK + 0.5,
        "{blocks} allocations per group"
    );

    let (blocks, bytes) = per_run(&rt, runs, || async {
        errgroup! {
            limit = 64;
            items => for i in 0..1_000u64 { Ok::<u64, Fail>(black_box(i)) }
        }
    });
    println!("1,000 in-task items, limit = 64: {blocks} allocations, {bytes} B per group");
}

/// Allocations of a group of 2 trivial in-task branches.
const MAX_GROUP2_INTASK: f64 = 0.0;

/// One side of a README case, `ROUNDS` times, for an instruction count:
///
/// ```text
/// cargo test --release --test allocations --no-run
/// CASE=group2_errgroup ROUNDS=10000 valgrind --tool=callgrind \
///     target/release/deps/allocations-* --ignored --exact one_case
/// ```
///
/// Ir per round = (Ir at `ROUNDS` - Ir at `ROUNDS=0`) / `ROUNDS`; cases:
/// `group2_errgroup`, `group2_try_join`, `limit_errgroup`,
/// `limit_buffer_unordered` (1,000 items, 64 at a time).
#[test]
#[ignore = "run by hand under callgrind"]
fn one_case() {
    use futures::stream::{self, StreamExt, TryStreamExt};
    let case = std::env::var("CASE").unwrap_or_default();
    let rounds: usize = std::env::var("ROUNDS").map_or(1, |r| r.parse().expect("ROUNDS"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        for _ in 0..rounds {
            match case.as_str() {
                "group2_errgroup" => {
                    black_box(errgroup! {
                        a => Ok::<u64, Fail>(black_box(1)),
                        b => Ok(black_box(2)),
                    })
                    .ok();
                }
                "group2_try_join" => {
                    black_box(tokio::try_join!(
                        async { Ok::<u64, Fail>(black_box(1)) },
                        async { Ok::<u64, Fail>(black_box(2)) },
                    ))
                    .ok();
                }
                "limit_errgroup" => {
                    black_box(errgroup! {
                        limit = 64;
                        items => for i in 0..1_000u64 { Ok::<u64, Fail>(black_box(i)) }
                    })
                    .ok();
                }
                "limit_buffer_unordered" => {
                    let values: Result<Vec<u64>, Fail> = stream::iter(0..1_000u64)
                        .map(|i| async move { Ok::<u64, Fail>(black_box(i)) })
                        .buffer_unordered(64)
                        .try_collect()
                        .await;
                    black_box(values).ok();
                }
                other => panic!("unknown CASE {other:?}"),
            }
        }
    });
}
