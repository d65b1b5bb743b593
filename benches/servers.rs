//! Memory of a server's connection tasks, one process per side (as
//! `memory.rs`): errgroup's `Pool` against the hand-written tokio version
//! (`tokio::spawn` + `TaskTracker` + `CancellationToken` + `Semaphore`).
//!
//! - `blocked`: peak RSS per task, 100,000 connection tasks blocked until
//!   the server stops (`VmHWM` after, minus `VmHWM` before, over the tasks).
//! - `churn`: peak RSS of an accept loop that starts 1,000,000 short tasks,
//!   64 at a time, against its peak after the first 10,000: memory is flat
//!   when the two are the same (finished tasks are freed at once).
//!
//! ```text
//! cargo bench --bench servers            # the table
//! cargo bench --bench servers -- SIDE N  # one side, in this process
//! ```

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use errgroup::Group;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[path = "common/mod.rs"]
mod common;

const BLOCKED: usize = 100_000;
const CHURN: usize = 1_000_000;
/// Where the churn's first peak is taken.
const CHURN_EARLY: usize = 10_000;
const CHURN_LIMIT: usize = 64;

/// (errgroup side, tokio side, case).
const PAIRS: [(&str, &str, &str); 3] = [
    (
        "pool_blocked",
        "tokio_blocked",
        "blocked connection task, B/task",
    ),
    (
        "pool_churn",
        "tokio_churn",
        "1M short tasks, peak MB (at 10k -> at 1M)",
    ),
    (
        "group_churn",
        "tokio_churn",
        "1M short Group::spawn tasks, peak MB",
    ),
];

/// `n` connection tasks blocked until the server stops, in a pool.
async fn pool_blocked(n: usize) -> u64 {
    let group = Group::<std::io::Error>::new();
    let conns = group.pool().supervise(|_, _| {});
    for _ in 0..n {
        conns
            .spawn_with("conn", |ctx| async move {
                ctx.cancelled().await;
                Ok(())
            })
            .await
            .expect("spawned");
    }
    tokio::task::yield_now().await;
    let peak = common::peak_rss();
    group.shutdown();
    group.wait().await.expect("stopped");
    peak
}

/// The same by hand: `TaskTracker` + `CancellationToken`.
async fn tokio_blocked(n: usize) -> u64 {
    let tracker = TaskTracker::new();
    let token = CancellationToken::new();
    for _ in 0..n {
        let token = token.clone();
        tracker.spawn(async move { token.cancelled().await });
    }
    tokio::task::yield_now().await;
    let peak = common::peak_rss();
    token.cancel();
    tracker.close();
    tracker.wait().await;
    peak
}

/// An accept loop starting `n` short tasks, `CHURN_LIMIT` at a time: the
/// peak after `CHURN_EARLY` of them and at the end.
async fn pool_churn(n: usize) -> (u64, u64) {
    let group = Group::<std::io::Error>::new();
    let conns = group.pool().limit(CHURN_LIMIT).supervise(|_, _| {});
    let mut early = 0;
    for i in 0..n {
        if i == CHURN_EARLY {
            early = common::peak_rss();
        }
        conns
            .spawn("conn", async {
                tokio::task::yield_now().await;
                Ok(())
            })
            .await
            .expect("spawned");
    }
    let late = common::peak_rss();
    group.wait().await.expect("done");
    (early, late)
}

/// The same with `Group::spawn` (a group that is not `returning`), 64 at a
/// time by a semaphore of the caller's.
async fn group_churn(n: usize) -> (u64, u64) {
    let mut group = Group::<std::io::Error>::new();
    let slots = Arc::new(Semaphore::new(CHURN_LIMIT));
    let mut early = 0;
    for i in 0..n {
        if i == CHURN_EARLY {
            early = common::peak_rss();
        }
        let slot = Arc::clone(&slots).acquire_owned().await.expect("open");
        group.spawn("conn", |_| async move {
            tokio::task::yield_now().await;
            drop(slot);
            Ok(())
        });
    }
    let late = common::peak_rss();
    group.wait().await.expect("done");
    (early, late)
}

/// The same by hand: `tokio::spawn` under a `Semaphore`, in a `TaskTracker`.
async fn tokio_churn(n: usize) -> (u64, u64) {
    let tracker = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(CHURN_LIMIT));
    let mut early = 0;
    for i in 0..n {
        if i == CHURN_EARLY {
            early = common::peak_rss();
        }
        let slot = Arc::clone(&slots).acquire_owned().await.expect("open");
        tracker.spawn(async move {
            tokio::task::yield_now().await;
            drop(slot);
        });
    }
    let late = common::peak_rss();
    tracker.close();
    tracker.wait().await;
    (early, late)
}

/// One side in this process: its figure(s) on stdout.
fn measure(side: &str, n: usize) -> String {
    let rt = common::multi_thread();
    rt.block_on(async {
        tokio::spawn(async {}).await.expect("warm-up");
        tokio::time::sleep(Duration::from_millis(1)).await;
    });
    let baseline = common::peak_rss();
    #[allow(clippy::cast_precision_loss, reason = "byte counts far below 2^52")]
    let mb = |bytes: u64| bytes.saturating_sub(baseline) as f64 / 1e6;
    rt.block_on(async {
        match side {
            "pool_blocked" | "tokio_blocked" => {
                let peak = if side == "pool_blocked" {
                    pool_blocked(n).await
                } else {
                    tokio_blocked(n).await
                };
                #[allow(clippy::cast_precision_loss, reason = "byte counts far below 2^52")]
                let per_task = peak.saturating_sub(baseline) as f64 / n as f64;
                format!("{per_task:.1}")
            }
            _ => {
                let (early, late) = match side {
                    "pool_churn" => pool_churn(n).await,
                    "group_churn" => group_churn(n).await,
                    _ => tokio_churn(n).await,
                };
                format!("{:.1}->{:.1}", mb(early), mb(late))
            }
        }
    })
}

fn measure_in_child(side: &str, n: usize) -> String {
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new(exe)
        .args([side, &n.to_string()])
        .output()
        .expect("run the bench");
    assert!(out.status.success(), "servers {side} failed: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .last()
        .expect("a figure")
        .to_owned()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = args.iter().find_map(|a| a.parse().ok());
    let side = args
        .iter()
        .find(|a| PAIRS.iter().any(|(e, o, _)| a == e || a == o));
    if let Some(side) = side {
        let n = n.unwrap_or(if side.ends_with("blocked") {
            BLOCKED
        } else {
            CHURN
        });
        println!("{side} {}", measure(side, n));
        return;
    }
    println!(
        "one process per side; blocked: {BLOCKED} tasks; churn: {CHURN} tasks, {CHURN_LIMIT} at a time"
    );
    println!("{:<44} {:>16} {:>16}", "case", "errgroup", "tokio");
    for (ours, theirs, case) in PAIRS {
        let n = n.unwrap_or(if ours.ends_with("blocked") {
            BLOCKED
        } else {
            CHURN
        });
        let (a, b) = (measure_in_child(ours, n), measure_in_child(theirs, n));
        let ratio = match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(a), Ok(b)) => format!("{:.2}x", a / b),
            _ => String::new(),
        };
        println!("{case:<44} {a:>16} {b:>16} {ratio}");
    }
}
