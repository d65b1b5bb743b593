//! The `group2_intask` row: a group of 2 trivial in-task branches against
//! `tokio::try_join!` of the same 2 bodies, each created and awaited in a
//! task of the current-thread runtime (`common::time_rounds`, as every
//! timed case), `BATCH` groups per timed run.
//!
//! The sides run in turn, round after round (`common::interleaved`), and
//! each prints its median time per group; `benches/ratios.sh` prints the
//! ratio. A run of either side takes well under a millisecond, so a burst
//! of other work on the shared machine lands on both sides alike; under
//! criterion, one side's seconds ran after the other's, and this row's
//! ratio moved by ±30% from run to run (benches/README.md).
//!
//! ```text
//! cargo bench --bench intask [-- ROUNDS] [FILTER]
//! ```
//!
//! FILTER keeps the sides whose id contains it: one side alone, under
//! callgrind at two round counts, counts the very code this times (the
//! instructions of a round move with how the rest of a bench binary is
//! compiled: benches/README.md).

use std::hint::black_box;

use errgroup::errgroup;

#[path = "common/mod.rs"]
mod common;

use common::Fail;

/// Groups per timed run of a side: under a millisecond for either.
const BATCH: u32 = 20_000;
/// Timed runs of every side unless the command line says otherwise (each
/// round runs both once: about 1 ms).
const ROUNDS: usize = 1_000;

/// The errgroup side.
async fn errgroup_side() -> Result<(u64, u64), errgroup::Error<Fail>> {
    errgroup! {
        a => Ok::<u64, Fail>(black_box(1)),
        b => Ok(black_box(2)),
    }
}

/// The `try_join!` side.
async fn try_join_side() -> Result<(u64, u64), Fail> {
    tokio::try_join!(async { Ok::<u64, Fail>(black_box(1)) }, async {
        Ok::<u64, Fail>(black_box(2))
    },)
}

fn main() {
    let rounds = common::rounds_arg(ROUNDS);
    let rt = common::current_thread();
    let rt = &rt;
    let mut sides: Vec<common::Side<'_>> = vec![
        (
            "group2_intask/errgroup".into(),
            Box::new(move || common::time_rounds(rt, u64::from(BATCH), errgroup_side)),
        ),
        (
            "group2_intask/try_join".into(),
            Box::new(move || common::time_rounds(rt, u64::from(BATCH), try_join_side)),
        ),
    ];
    if let Some(filter) = common::filter_arg() {
        sides.retain(|(id, _)| id.contains(&filter));
    }
    common::interleaved(rounds, BATCH, &mut sides);
}
