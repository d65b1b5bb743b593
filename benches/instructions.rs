//! One side of the 2-trivial-branch in-task case, run `ROUNDS` times on a
//! current-thread runtime, for callgrind to count: `benches/instructions.sh`
//! runs each side at two round counts, and the difference divided by the
//! difference in rounds is the instructions per group (startup, runtime
//! construction and first-use costs cancel out).
//!
//! ```text
//! instructions group2_errgroup|group2_try_join ROUNDS
//! ```
//!
//! `fanout_errgroup|fanout_buffered ROUNDS` run one group of ROUNDS
//! trivial items, 64 at a time, against `buffer_unordered(64)`: the same
//! difference of two runs is then per item.
//!
//! `blocking_errgroup|blocking_vec ROUNDS` run one `#[blocking] for` of
//! ROUNDS trivial items against `spawn_blocking` + `Vec<JoinHandle>`, on
//! the 1-worker, 1-blocking-thread runtime of the scaling bench: per item
//! again, and what the scaling rows' CPU time is made of besides the work.
//!
//! `spawn2_errgroup|spawn2_joinset ROUNDS` run ROUNDS groups of 2 trivial
//! `#[spawn]` branches against `JoinSet` + `CancellationToken` (the
//! `group2_spawn` row), in a task of the 2-worker runtime: per group, both
//! threads counted.
//!
//! Without a side (as under a plain `cargo bench`) it does nothing and says
//! so: the count only means something under callgrind.

use std::hint::black_box;

use errgroup::errgroup;

#[path = "common/mod.rs"]
mod common;

use common::Fail;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let Some(case) = args.next() else {
        println!("instructions: run by benches/instructions.sh under callgrind; nothing to do");
        return;
    };
    let rounds: u64 = args.next().map_or(1, |r| r.parse().expect("ROUNDS"));
    if let Some(side) = case.strip_prefix("blocking_") {
        blocking(side, rounds);
        return;
    }
    if let Some(side) = case.strip_prefix("spawn2_") {
        spawn2(side, rounds);
        return;
    }
    let rt = common::current_thread();
    rt.block_on(async {
        match case.as_str() {
            "group2_errgroup" => {
                for _ in 0..rounds {
                    black_box(errgroup! {
                        a => Ok::<u64, Fail>(black_box(1)),
                        b => Ok(black_box(2)),
                    })
                    .ok();
                }
            }
            "group2_try_join" => {
                for _ in 0..rounds {
                    black_box(tokio::try_join!(
                        async { Ok::<u64, Fail>(black_box(1)) },
                        async { Ok::<u64, Fail>(black_box(2)) },
                    ))
                    .ok();
                }
            }
            // One group of ROUNDS trivial items, 64 at a time: the
            // differences of two runs are per item (the 100,000-items row of
            // benches/ratios.sh, counted instead of timed).
            "fanout_errgroup" => {
                let n = rounds;
                let result = errgroup! {
                    limit = 64;
                    items => for i in 0..n { Ok::<u64, Fail>(black_box(i)) }
                };
                black_box(result).ok();
            }
            "fanout_buffered" => {
                use futures::{StreamExt, TryStreamExt, stream};
                let result = stream::iter(0..rounds)
                    .map(|i| async move { Ok::<u64, Fail>(black_box(i)) })
                    .buffer_unordered(64)
                    .try_collect::<Vec<u64>>()
                    .await;
                black_box(result).ok();
            }
            other => panic!("unknown case {other:?}: group2_* or fanout_* (see the module docs)"),
        }
    });
}

/// One fan-out of `n` trivial blocking items, `side` `errgroup` or `vec`,
/// in a task of a 1-worker runtime with 1 blocking thread (the scaling
/// bench's `cpu10k_1w`).
fn blocking(side: &str, n: u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(1)
        .build()
        .expect("tokio runtime");
    let side = side.to_owned();
    rt.block_on(async move {
        tokio::spawn(async move {
            match side.as_str() {
                "errgroup" => {
                    let result = errgroup! {
                        #[blocking] items => for i in 0..n { Ok::<u64, Fail>(black_box(i)) }
                    };
                    black_box(result).ok();
                }
                "vec" => {
                    let handles: Vec<_> = (0..n)
                        .map(|i| tokio::task::spawn_blocking(move || black_box(i)))
                        .collect();
                    let mut values = Vec::with_capacity(handles.len());
                    for handle in handles {
                        values.push(handle.await.expect("task"));
                    }
                    black_box(values);
                }
                other => panic!("unknown case blocking_{other}: blocking_errgroup or blocking_vec"),
            }
        })
        .await
        .expect("bench task");
    });
}

/// `rounds` groups of 2 trivial spawned tasks, `side` `errgroup` or
/// `joinset`, in a task of the 2-worker runtime of `compare`'s `group2_spawn`.
fn spawn2(side: &str, rounds: u64) {
    let rt = common::multi_thread();
    let side = side.to_owned();
    rt.block_on(async move {
        tokio::spawn(async move {
            for _ in 0..rounds {
                match side.as_str() {
                    "errgroup" => {
                        black_box(errgroup! {
                            #[spawn] a => Ok::<u64, Fail>(black_box(1)),
                            #[spawn] b => Ok(black_box(2)),
                        })
                        .ok();
                    }
                    "joinset" => {
                        let mut group = common::JoinSetGroup::<u64, Fail>::new();
                        group.spawn(|_token| async { Ok(black_box(1)) });
                        group.spawn(|_token| async { Ok(black_box(2)) });
                        black_box(group.wait().await).ok();
                    }
                    other => {
                        panic!("unknown case spawn2_{other}: spawn2_errgroup or spawn2_joinset")
                    }
                }
            }
        })
        .await
        .expect("bench task");
    });
}
