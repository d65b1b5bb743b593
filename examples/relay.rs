//! Relay: four services that run forever, and stop together when one dies,
//! or when their caller stops them on purpose.
//!
//! A sidecar relays blocks to a coordinator and statuses back. The coordinator
//! is a real TCP server on 127.0.0.1 speaking a line protocol
//! (`BLOCK <height> <digest>` in, `COMMITTED <height>` out). The sidecar is
//! one `errgroup!` of four branches, none of which ever returns `Ok`:
//!
//! - `preprocess`: makes each block (a digest), sends it to the coordinator;
//! - `receive`: reads statuses from the coordinator into a group channel of
//!   capacity 1000;
//! - `process`: takes statuses from that channel in batches;
//! - `track`: keeps the last committed block.
//!
//! The group's parent is a `CancellationToken`, as axum or tonic code
//! would hand it: cancelling it shuts the relay down on purpose, and the
//! relay returns `Ok`. The program does that once 50 blocks are committed,
//! then starts a second relay and, once 100 blocks are committed, kills the
//! coordinator (its listener and every connection). The first branch to
//! notice fails; the group cancels the other three, wherever they are
//! blocked (a socket, a channel, a timer), and returns the original error
//! wrapped as "stream with the coordinator has ended".
//!
//! ```text
//! cargo run --example relay
//! ```

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, anyhow, ensure};
use errgroup::{AllowShutdown, Cancelled, Cause, Ctx, Receiver, Sender, errgroup};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

/// The context every fatal stream error is wrapped in.
pub(crate) const ENDED: &str = "stream with the coordinator has ended";

#[tokio::main(flavor = "current_thread")]
pub(crate) async fn main() -> anyhow::Result<()> {
    let coordinator = Coordinator::start().await?;
    println!("coordinator: listening on {}", coordinator.addr);

    println!("run 1: stopped on purpose once 50 blocks are committed");
    let stats = Stats::default();
    let stop = CancellationToken::new();
    let stream = TcpStream::connect(coordinator.addr).await?;
    let (result, ()) = tokio::join!(
        relay(stream, Duration::from_millis(1), &stats, &stop),
        async {
            stats.wait_for_committed(50).await;
            stop.cancel();
        }
    );
    result?;
    println!("  errgroup! returned Ok");
    stats.print();

    println!("run 2: the coordinator killed once 100 blocks are committed");
    let stats = Stats::default();
    let stream = TcpStream::connect(coordinator.addr).await?;
    let never = CancellationToken::new();
    let (result, ()) = tokio::join!(
        relay(stream, Duration::from_millis(1), &stats, &never),
        async {
            stats.wait_for_committed(100).await;
            println!(
                "  killing the coordinator after {} blocks sent, {} committed",
                stats.blocks_sent.load(Ordering::Relaxed),
                stats.last_committed.load(Ordering::Relaxed),
            );
            coordinator.kill();
        }
    );
    let err = result.err().context("the relay outlived its coordinator")?;
    println!("  errgroup! returned Err: {err}");
    stats.print();
    println!(
        "  the coordinator got {} blocks in all",
        coordinator.received.load(Ordering::Relaxed),
    );
    let inner = err.into_inner().context("a branch failed")?;
    println!("  error chain: {inner:#}");
    ensure!(format!("{inner:#}").starts_with(ENDED), "unexpected error");
    Ok(())
}

/// The sidecar: four forever-running branches over one coordinator stream.
///
/// It returns `Err` once the stream breaks (or a branch fails otherwise):
/// the group's error, its branch's error wrapped with [`ENDED`]; and `Ok`
/// once `stop` is cancelled. `every` paces the blocks.
pub(crate) async fn relay(
    stream: TcpStream,
    every: Duration,
    stats: &Stats,
    stop: &CancellationToken,
) -> Result<(), errgroup::Error<anyhow::Error>> {
    let (reader, writer) = stream.into_split();
    errgroup! {
        type Error = anyhow::Error;
        // Cancelling the token shuts the group down on purpose.
        parent = stop;
        // Bound to the group: once it is cancelled, a `send` or `recv`
        // blocked on these returns `Err` at once.
        let (status_tx, status_rx) = channel::<Status>(1000);
        let (commit_tx, commit_rx) = channel::<u64>(16);
        preprocess => stats.stopped("preprocess", preprocess(ctx, writer, every, stats).await),
        receive    => stats.stopped("receive", receive(ctx, reader, &status_tx, stats).await),
        process    => stats.stopped("process", process(&status_rx, &commit_tx, stats).await),
        track      => stats.stopped("track", track(&commit_rx, stats).await),
    }
    // The branches end with the cancellation's error when shut down: the
    // relay stopped as asked.
    .allow_shutdown()
    .map(|((), (), (), ())| ())
}

/// A status from the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Status {
    pub(crate) height: u64,
}

/// Makes a block per tick and sends it to the coordinator.
async fn preprocess(
    ctx: &Ctx,
    mut writer: OwnedWriteHalf,
    every: Duration,
    stats: &Stats,
) -> anyhow::Result<()> {
    let mut height = 0_u64;
    loop {
        // A new block arrives; a cancelled group ends the wait at once.
        ctx.sleep(every).await?;
        height += 1;
        let digest = height.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
        let line = format!("BLOCK {height} {digest:016x}\n");
        // `ctx.run` stops a write stuck on a full socket buffer too.
        ctx.run(writer.write_all(line.as_bytes()))
            .await?
            .context(ENDED)?;
        stats.blocks_sent.fetch_add(1, Ordering::Relaxed);
    }
}

/// Reads statuses from the coordinator into the status channel.
async fn receive(
    ctx: &Ctx,
    reader: OwnedReadHalf,
    status_tx: &Sender<Status>,
    stats: &Stats,
) -> anyhow::Result<()> {
    let mut lines = BufReader::new(reader).lines();
    loop {
        // The stream's end is this group's fatal error: the original cause,
        // wrapped with the context the caller sees.
        let Some(line) = ctx.run(lines.next_line()).await?.context(ENDED)? else {
            let eof = std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the coordinator closed the connection",
            );
            return Err(anyhow::Error::new(eof).context(ENDED));
        };
        let height = line
            .strip_prefix("COMMITTED ")
            .and_then(|h| h.parse().ok())
            .ok_or_else(|| anyhow!("bad status line {line:?}"))?;
        // Blocks while 1000 statuses wait; returns `Err` once cancelled.
        status_tx.send(Status { height }).await?;
        stats.statuses.fetch_add(1, Ordering::Relaxed);
    }
}

/// Takes statuses in batches of up to 64, checks they are in order, and
/// passes each batch's last height on.
async fn process(
    status_rx: &Receiver<Status>,
    commit_tx: &Sender<u64>,
    stats: &Stats,
) -> anyhow::Result<()> {
    let mut next = 1;
    // Ends only by cancellation: `recv` returns `Err(Cancelled)`.
    while let Some(first) = status_rx.recv().await? {
        let mut batch = vec![first];
        while batch.len() < 64 {
            let Ok(more) = status_rx.try_recv() else {
                break;
            };
            batch.push(more);
        }
        for status in &batch {
            ensure!(
                status.height == next,
                "status {} out of order",
                status.height
            );
            next += 1;
        }
        commit_tx.send(next - 1).await?;
        stats.batches.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Keeps the last committed height.
async fn track(commit_rx: &Receiver<u64>, stats: &Stats) -> anyhow::Result<()> {
    while let Some(height) = commit_rx.recv().await? {
        stats.last_committed.store(height, Ordering::Relaxed);
        stats.progress.notify_waiters();
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// What the relay did, for the program's output and the tests.

/// Counters, and how each branch stopped.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) blocks_sent: AtomicU64,
    pub(crate) statuses: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) last_committed: AtomicU64,
    progress: Notify,
    stops: Mutex<Vec<(&'static str, Stop)>>,
}

/// How a branch stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    /// A ctx or channel operation returned `Err(Cancelled)` with this cause.
    Cancelled(Cause),
    /// The branch failed on its own: its error, `{:#}`.
    Failed(String),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Cancelled(cause) => write!(f, "observed cancellation ({cause})"),
            Stop::Failed(err) => write!(f, "failed: {err}"),
        }
    }
}

impl Stats {
    /// Records how `branch` stopped and passes its result on.
    fn stopped(&self, branch: &'static str, result: anyhow::Result<()>) -> anyhow::Result<()> {
        if let Err(err) = &result {
            // A `SendError`'s source is the `Cancelled`, so the chain has it
            // for sends and receives alike.
            let stop = match err.chain().find_map(|e| e.downcast_ref::<Cancelled>()) {
                Some(cancelled) => Stop::Cancelled(cancelled.cause().clone()),
                None => Stop::Failed(format!("{err:#}")),
            };
            self.stops.lock().unwrap().push((branch, stop));
        }
        result
    }

    /// Prints the counters, and how each branch stopped.
    fn print(&self) {
        for (branch, stop) in self.stops() {
            println!("    {branch:<10} {stop}");
        }
        println!(
            "  blocks sent {}, statuses received {}, batches {}, last committed {}",
            self.blocks_sent.load(Ordering::Relaxed),
            self.statuses.load(Ordering::Relaxed),
            self.batches.load(Ordering::Relaxed),
            self.last_committed.load(Ordering::Relaxed),
        );
    }

    /// How each branch stopped, in the order they did.
    pub(crate) fn stops(&self) -> Vec<(&'static str, Stop)> {
        self.stops.lock().unwrap().clone()
    }

    /// Waits until block `height` is committed; gives up after 10 s.
    pub(crate) async fn wait_for_committed(&self, height: u64) -> bool {
        timeout(Duration::from_secs(10), async {
            loop {
                let mut notified = pin!(self.progress.notified());
                notified.as_mut().enable();
                if self.last_committed.load(Ordering::Relaxed) >= height {
                    return;
                }
                notified.await;
            }
        })
        .await
        .is_ok()
    }
}

// ---------------------------------------------------------------------------
// The coordinator: a line protocol over a `TcpListener`.

/// A running coordinator; [`Coordinator::kill`] (or dropping it) closes its
/// listener and every connection.
#[derive(Debug)]
pub(crate) struct Coordinator {
    pub(crate) addr: SocketAddr,
    /// Blocks received over all connections.
    pub(crate) received: std::sync::Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl Coordinator {
    /// Listens on an ephemeral port of 127.0.0.1.
    pub(crate) async fn start() -> std::io::Result<Coordinator> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let received = std::sync::Arc::default();
        let counter = std::sync::Arc::clone(&received);
        let accept = tokio::spawn(async move {
            // Aborting this task drops the listener and the `JoinSet`, which
            // aborts every connection: the coordinator dies mid-stream.
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                connections.spawn(serve(stream, std::sync::Arc::clone(&counter)));
            }
        });
        Ok(Coordinator {
            addr,
            received,
            accept,
        })
    }

    /// Kills the coordinator: its listener and connections are dropped.
    pub(crate) fn kill(&self) {
        self.accept.abort();
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Commits each `BLOCK <height> <digest>` line with `COMMITTED <height>`.
async fn serve(stream: TcpStream, received: std::sync::Arc<AtomicU64>) -> std::io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    while let Some(line) = lines.next_line().await? {
        let mut words = line.split(' ');
        if let (Some("BLOCK"), Some(height), Some(_digest)) =
            (words.next(), words.next(), words.next())
        {
            received.fetch_add(1, Ordering::Relaxed);
            writer
                .write_all(format!("COMMITTED {height}\n").as_bytes())
                .await?;
        }
    }
    Ok(())
}
