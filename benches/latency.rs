//! Cancellation latency over many runs: 1,000 tasks of which 999 block on
//! their ctx (or token) and one fails; each run measures the time from the
//! failure until the group has returned. Prints p50 and p99.
//!
//! `latency [SIDE] [RUNS]`: `SIDE` is one of `errgroup_intask`,
//! `futures_unordered`, `errgroup_spawn`, `joinset`; without one (as under
//! `cargo bench`) every side runs and the table is printed. Lines for one
//! side read `SIDE ID p50_ns N p99_ns N` (`ID`: what ran, e.g. a stand-in).
//!
//! ```text
//! cargo bench --bench latency
//! ```

use std::time::Duration;

#[path = "common/mod.rs"]
mod common;

/// Tasks per group: all but one block.
const TASKS: usize = 1_000;
/// Runs per side unless the command line says otherwise (after 50 warm-up runs).
const RUNS: usize = 2_000;
/// Runs thrown away first.
const WARM_UP: usize = 50;

/// (errgroup side, other side, case).
const PAIRS: [(&str, &str, &str); 2] = [
    (
        "errgroup_intask",
        "futures_unordered",
        "in-task (FuturesUnordered + token), current-thread",
    ),
    (
        "errgroup_spawn",
        "joinset",
        "spawned (JoinSet + token), 2 workers",
    ),
];

/// p50 and p99 of `runs` runs of `side`.
fn measure(side: &str, runs: usize) -> (Duration, Duration) {
    let rt = match side {
        "errgroup_intask" | "futures_unordered" => common::current_thread(),
        "errgroup_spawn" | "joinset" => common::multi_thread(),
        other => panic!("unknown side {other:?}"),
    };
    let side = side.to_owned();
    let mut samples = rt.block_on(async move {
        // On a worker, as real code would be (matters for the 2-worker runtime).
        tokio::spawn(async move {
            let mut samples = Vec::with_capacity(runs);
            for run in 0..WARM_UP + runs {
                let elapsed = match side.as_str() {
                    "errgroup_intask" => common::errgroup_blocked(TASKS).await,
                    "errgroup_spawn" => common::errgroup_blocked_spawn(TASKS).await,
                    "futures_unordered" => common::futures_unordered_blocked(TASKS).await,
                    _ => common::joinset_blocked(TASKS).await,
                };
                if run >= WARM_UP {
                    samples.push(elapsed);
                }
            }
            samples
        })
        .await
        .expect("bench task")
    });
    (
        common::quantile(&mut samples, 0.5),
        common::quantile(&mut samples, 0.99),
    )
}

/// Nanoseconds as a float, for printing.
fn ns(d: Duration) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "durations far below 2^52 ns")]
    let ns = d.as_nanos() as f64;
    ns
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs = args.iter().find_map(|a| a.parse().ok()).unwrap_or(RUNS);
    let side = args
        .iter()
        .find(|a| PAIRS.iter().any(|(e, o, _)| a == e || a == o));
    if let Some(side) = side {
        let (p50, p99) = measure(side, runs);
        let id = if side.starts_with("errgroup") {
            common::ERRGROUP_BLOCKED_ID
        } else {
            side
        };
        println!("{side} {id} p50_ns {:.0} p99_ns {:.0}", ns(p50), ns(p99));
        return;
    }
    println!(
        "cancellation latency, {TASKS} tasks ({} blocked, 1 fails), {runs} runs",
        TASKS - 1
    );
    println!(
        "{:<52} {:>12} {:>12} {:>12} {:>12} {:>8} {:>8}",
        "case", "errgroup p50", "errgroup p99", "other p50", "other p99", "p50 x", "p99 x"
    );
    for (errgroup_side, other_side, case) in PAIRS {
        let (e50, e99) = measure(errgroup_side, runs);
        let (o50, o99) = measure(other_side, runs);
        println!(
            "{case:<52} {:>10.1}us {:>10.1}us {:>10.1}us {:>10.1}us {:>7.2}x {:>7.2}x",
            ns(e50) / 1e3,
            ns(e99) / 1e3,
            ns(o50) / 1e3,
            ns(o99) / 1e3,
            ns(e50) / ns(o50),
            ns(e99) / ns(o99),
        );
    }
}
