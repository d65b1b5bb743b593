//! Helpers the integration tests share: drop guards, awaitable counters,
//! concurrency gauges, and failsafes that turn a hang into a failure.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::any::Any;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::pin::pin;
use std::process::Stdio;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::task::Poll;
use std::time::Duration;

use errgroup::{Cause, TaskName};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{Notify, mpsc};
use tokio::time::timeout;

/// Bounds waits that would hang if the code were wrong; never reached otherwise.
pub(crate) const FAILSAFE: Duration = Duration::from_secs(60);

pub(crate) fn leak<T>(value: T) -> &'static T {
    Box::leak(Box::new(value))
}

/// The cause of a group whose task `task` failed first.
pub(crate) fn failed(task: &str) -> Cause {
    Cause::Failed {
        task: TaskName::new(task.to_owned()),
    }
}

/// Sets its flag when dropped: when its branch returns or is dropped.
pub(crate) struct SetOnDrop<'a>(pub(crate) &'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

/// A counter a test can await.
#[derive(Default)]
pub(crate) struct Counter {
    pub(crate) count: AtomicUsize,
    changed: Notify,
}

impl Counter {
    pub(crate) fn bump(&self) {
        self.count.fetch_add(1, SeqCst);
        self.changed.notify_waiters();
    }

    pub(crate) fn get(&self) -> usize {
        self.count.load(SeqCst)
    }

    pub(crate) async fn reached(&self, n: usize) {
        loop {
            let mut changed = pin!(self.changed.notified());
            changed.as_mut().enable();
            if self.count.load(SeqCst) >= n {
                return;
            }
            changed.await;
        }
    }
}

/// Bumps its counter when dropped.
pub(crate) struct BumpOnDrop(pub(crate) &'static Counter);

impl Drop for BumpOnDrop {
    fn drop(&mut self) {
        self.0.bump();
    }
}

/// How many bodies run at once, and the most that ever did.
#[derive(Default)]
pub(crate) struct Gauge {
    pub(crate) active: AtomicUsize,
    pub(crate) peak: AtomicUsize,
    pub(crate) entered: AtomicUsize,
}

impl Gauge {
    pub(crate) fn enter(&self) {
        let now = self.active.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(now, SeqCst);
        self.entered.fetch_add(1, SeqCst);
    }

    pub(crate) fn exit(&self) {
        self.active.fetch_sub(1, SeqCst);
    }
}

/// Blocks this thread until `done()`; panics with `what` after `FAILSAFE`.
pub(crate) fn spin_until(what: &str, done: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < FAILSAFE, "{what}");
        std::thread::yield_now();
    }
}

/// Awaits `fut`; panics with `what` if it takes longer than `FAILSAFE`.
pub(crate) async fn within_failsafe<F: Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(FAILSAFE, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}"))
}

/// Polls `fut`, returning the payload of a panic instead of unwinding.
pub(crate) async fn catch_panic<F: Future>(fut: F) -> Result<F::Output, Box<dyn Any + Send>> {
    let mut fut = pin!(fut);
    poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(payload)),
        },
    )
    .await
}

/// The message of a `panic!`/`assert!` payload.
pub(crate) fn message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("<not a string>")
}

/// Builds the example and returns its executable.
///
/// `CARGO_BIN_EXE_<name>` exists for binaries only, and `cargo test --test
/// NAME` does not build examples, so this asks cargo (the one running
/// the tests) to build it, in the target directory this test binary lives
/// in (`<target>/<profile>/deps/`): an up-to-date example (after `cargo test`,
/// which builds examples) is not rebuilt. Cargo names the executable in its
/// JSON messages, so no path is guessed. `cargo run` would do too, but then
/// the child would be cargo until it execs the example, and a SIGINT could
/// reach cargo instead.
pub(crate) fn build_example(name: &str) -> PathBuf {
    let mut cargo = std::process::Command::new(env!("CARGO"));
    cargo.args(["build", "--example", name, "--message-format=json"]);
    cargo.arg("--manifest-path");
    cargo.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
    let exe = std::env::current_exe().expect("the test's own path");
    if let Some(target_dir) = exe.ancestors().nth(3) {
        cargo.arg("--target-dir").arg(target_dir);
    }
    let output = cargo.stderr(Stdio::inherit()).output().expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo build --example {name} failed"
    );
    let messages = String::from_utf8(output.stdout).expect("cargo's JSON is UTF-8");
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .filter(|m| m["target"]["kind"] == serde_json::json!(["example"]))
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo named the example's executable")
}

/// Lines of one of a child process's streams, as it prints them.
pub(crate) struct Lines {
    /// The lines not read yet.
    pub(crate) lines: mpsc::UnboundedReceiver<String>,
    /// The lines read so far, for failure messages and `rest`.
    pub(crate) seen: Vec<String>,
}

impl Lines {
    pub(crate) fn of(stream: impl AsyncRead + Unpin + Send + 'static) -> Lines {
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stream).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            lines,
            seen: Vec::new(),
        }
    }

    /// The next line that `wanted` accepts; `what` names it in a failure.
    pub(crate) async fn until(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let found = timeout(FAILSAFE, async {
            while let Some(line) = self.lines.recv().await {
                self.seen.push(line.clone());
                if wanted(&line) {
                    return Some(line);
                }
            }
            None
        })
        .await
        .unwrap_or_else(|_| panic!("no {what} within the failsafe: {:#?}", self.seen));
        found.unwrap_or_else(|| panic!("the child ended without printing {what}: {:#?}", self.seen))
    }

    /// Every line, once the child has closed the stream.
    pub(crate) async fn rest(mut self) -> Vec<String> {
        timeout(FAILSAFE, async {
            while let Some(line) = self.lines.recv().await {
                self.seen.push(line);
            }
        })
        .await
        .expect("the child closed its output");
        self.seen
    }
}
