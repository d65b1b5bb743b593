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
