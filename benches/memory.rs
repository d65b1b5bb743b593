//! Peak RSS per blocked task: 100,000 tasks blocked on their ctx (or token),
//! then one fails and the group returns.
//!
//! One side per process, so one side's heap does not inflate the other's
//! peak: `memory SIDE [TASKS]` measures `SIDE` and prints
//! `SIDE ID bytes_per_task N` (`ID`: what ran, e.g. a stand-in); without a side (as under `cargo bench`) it runs
//! itself once per side and prints the table.
//!
//! The peak is `VmHWM` from `/proc/self/status` after the group returned,
//! minus `VmHWM` once the runtime is up, divided by the number of tasks.
//!
//! ```text
//! cargo bench --bench memory
//! ```

use std::process::Command;
use std::time::Duration;

#[path = "common/mod.rs"]
mod common;

/// Blocked tasks per run unless the command line says otherwise.
const TASKS: usize = 100_000;

/// The sides, and which is compared with which: (errgroup side, other side, case).
const PAIRS: [(&str, &str, &str); 2] = [
    (
        "errgroup_intask",
        "futures_unordered",
        "blocked in-task branch (FuturesUnordered + token)",
    ),
    (
        "errgroup_spawn",
        "joinset",
        "blocked spawned task (JoinSet + token)",
    ),
];

/// Runs one side with `tasks` tasks; returns bytes per task.
fn measure(side: &str, tasks: usize) -> f64 {
    let rt = match side {
        "errgroup_intask" | "futures_unordered" => common::current_thread(),
        "errgroup_spawn" | "joinset" => common::multi_thread(),
        other => panic!("unknown side {other:?}"),
    };
    // Warm the runtime (worker threads, timer, first allocations) before the baseline.
    rt.block_on(async {
        tokio::spawn(async {}).await.expect("warm-up");
        tokio::time::sleep(Duration::from_millis(1)).await;
    });
    let baseline = common::peak_rss();
    let elapsed = rt.block_on(async {
        match side {
            "errgroup_intask" => common::errgroup_blocked(tasks).await,
            "errgroup_spawn" => common::errgroup_blocked_spawn(tasks).await,
            "futures_unordered" => common::futures_unordered_blocked(tasks).await,
            _ => common::joinset_blocked(tasks).await,
        }
    });
    let peak = common::peak_rss();
    drop(rt);
    std::hint::black_box(elapsed);
    #[allow(clippy::cast_precision_loss, reason = "byte counts far below 2^52")]
    let per_task = peak.saturating_sub(baseline) as f64 / tasks as f64;
    per_task
}

/// Runs `side` in a fresh process of this binary; bytes per task.
fn measure_in_child(side: &str, tasks: usize) -> f64 {
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new(exe)
        .arg(side)
        .arg(tasks.to_string())
        .output()
        .expect("run the memory bench");
    assert!(out.status.success(), "memory {side} failed: {out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number in {stdout:?}"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tasks = args.iter().find_map(|a| a.parse().ok()).unwrap_or(TASKS);
    let side = args
        .iter()
        .find(|a| PAIRS.iter().any(|(e, o, _)| a == e || a == o));
    if let Some(side) = side {
        let id = if side.starts_with("errgroup") {
            common::ERRGROUP_BLOCKED_ID
        } else {
            side
        };
        println!("{side} {id} bytes_per_task {:.1}", measure(side, tasks));
        return;
    }
    println!("peak RSS per task, {tasks} blocked tasks, one process per side");
    println!(
        "{:<50} {:>18} {:>12} {:>8}",
        "case", "errgroup B/task", "other B/task", "ratio"
    );
    for (errgroup_side, other_side, case) in PAIRS {
        let ours = measure_in_child(errgroup_side, tasks);
        let theirs = measure_in_child(other_side, tasks);
        println!(
            "{case:<50} {ours:>18.1} {theirs:>12.1} {:>7.2}x",
            ours / theirs
        );
    }
}
