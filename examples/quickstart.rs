//! Quickstart: fetch three endpoints at once; the first failure cancels the rest.
//!
//! The program starts a tiny HTTP server on 127.0.0.1 with three endpoints:
//! `/user` (fast), `/orders` (slow: answers after 2 s) and `/recommendations`
//! (fails with a 500 after 100 ms). The client fetches all three with one
//! `errgroup!`, twice:
//!
//! 1. with `/recommendations` broken: its error cancels the group, the slow
//!    `/orders` fetch stops at once (the server sees the client leave), and the
//!    caller gets the error, named after its branch;
//! 2. with `/recommendations` fixed: all three values arrive, in about the time
//!    of the slowest fetch, not the sum.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use errgroup::{Ctx, errgroup};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, timeout};

#[tokio::main(flavor = "current_thread")]
pub(crate) async fn main() -> anyhow::Result<()> {
    let mut server = Server::start(Duration::from_secs(2)).await?;
    println!("server: listening on http://{}", server.addr);

    println!("\nrun 1: /recommendations is broken");
    let start = Instant::now();
    let Err(err) = fetch_all(server.addr).await else {
        bail!("run 1 should have failed: /recommendations is broken");
    };
    // The group's error names the branch that failed first; `cause()` is what
    // every other branch saw through `ctx.cause()` when it was cancelled.
    println!("{} errgroup! returned Err: {err}", at(start));
    println!("           err.cause() = {}", err.cause());
    server.served(3).await; // keep the server's log lines inside this run

    println!("\nrun 2: /recommendations is fixed");
    server.fix_recommendations();
    let start = Instant::now();
    let (user, orders, recommendations) = fetch_all(server.addr).await?;
    let total = start.elapsed();
    println!(
        "{} errgroup! returned Ok, values in branch order:",
        at(start)
    );
    println!("           user            = {user}");
    println!("           orders          = {orders}");
    println!("           recommendations = {recommendations}");

    let requests = server.served(3).await;
    let slowest = requests.iter().map(|r| r.after).max().unwrap_or_default();
    let sum: Duration = requests.iter().map(|r| r.after).sum();
    println!(
        "total {} ms: about the slowest fetch ({} ms), not the sum ({} ms)",
        total.as_millis(),
        slowest.as_millis(),
        sum.as_millis(),
    );
    Ok(())
}

/// Fetches the three endpoints concurrently: the program's one `errgroup!`.
pub(crate) async fn fetch_all(
    addr: SocketAddr,
) -> Result<(String, String, String), errgroup::Error<anyhow::Error>> {
    println!("           fetching /user, /orders and /recommendations at once");
    // All three branches start at once and borrow `addr` from this function.
    // The first to return `Err` cancels the group's `ctx`; the group still
    // waits for every branch to return, then evaluates to that first error.
    errgroup! {
        user            => get(ctx, addr, "/user").await,
        orders          => get(ctx, addr, "/orders").await,
        recommendations => get(ctx, addr, "/recommendations").await,
    }
}

/// `GET path` over a fresh connection; the body on `200`, an error otherwise.
///
/// Stops as soon as the group is cancelled: the request in flight is dropped,
/// which closes the connection.
pub(crate) async fn get(ctx: &Ctx, addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    // Branches start together, so this is also when the group started.
    let start = Instant::now();
    let request = async {
        let mut stream = TcpStream::connect(addr).await?;
        let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await?;
        let mut response = String::new();
        stream.take(64 * 1024).read_to_string(&mut response).await?;
        anyhow::Ok(response)
    };

    // `ctx.run` races the request against the group's cancellation. When a
    // sibling fails, it drops the request mid-read and returns `Err(Cancelled)`,
    // which carries the cause: which branch failed.
    let response = match ctx.run(request).await {
        Ok(response) => response.with_context(|| format!("GET {path}"))?,
        Err(cancelled) => {
            let (task, ran) = (ctx.task(), start.elapsed().as_millis());
            let cause = cancelled.cause();
            println!(
                "{} {task}: cancelled after {ran} ms ({cause}), request dropped",
                at(start)
            );
            return Err(cancelled.into());
        }
    };

    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("malformed response")?;
    let status = head
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("HTTP/1.1 ");
    println!("{} {}: {status}", at(start), ctx.task());
    if status != "200 OK" {
        // The branch returns this `Err`: if it is the group's first, it
        // cancels the siblings and becomes the group's error.
        bail!("GET {path}: {status}");
    }
    Ok(body.to_owned())
}

/// `[  123 ms]`: the time since `start`, as a log prefix.
fn at(start: Instant) -> String {
    format!("[{:>5} ms]", start.elapsed().as_millis())
}

// ---------------------------------------------------------------------------
// The server: minimal HTTP/1.1 over a `TcpListener`, one request per connection.

/// A running server; it stops, with every connection it holds, when dropped.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    recommendations_broken: Arc<AtomicBool>,
    log: mpsc::UnboundedReceiver<Served>,
    accept: JoinHandle<()>,
}

/// What the server did with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Served {
    pub(crate) path: String,
    pub(crate) outcome: Outcome,
    /// Time from reading the request to the outcome.
    pub(crate) after: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The server sent a response with this status code.
    Answered(u16),
    /// The client closed the connection before the server answered.
    ClientLeft,
}

/// At most this many connections per server: every loop here is bounded.
const MAX_CONNECTIONS: usize = 64;

impl Server {
    /// Listens on an ephemeral port of 127.0.0.1. `/orders` answers after
    /// `orders_delay`; `/recommendations` fails until [`Server::fix_recommendations`].
    pub(crate) async fn start(orders_delay: Duration) -> std::io::Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let broken = Arc::new(AtomicBool::new(true));
        let (log_tx, log) = mpsc::unbounded_channel();
        let recommendations_broken = Arc::clone(&broken);
        let accept = tokio::spawn(async move {
            // Aborting this task drops the `JoinSet`, which aborts every connection.
            let mut connections = JoinSet::new();
            for _ in 0..MAX_CONNECTIONS {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                let (broken, log_tx) = (Arc::clone(&broken), log_tx.clone());
                // No connection outlives its longest answer by much.
                let limit = orders_delay + Duration::from_secs(5);
                connections.spawn(timeout(limit, serve(stream, orders_delay, broken, log_tx)));
            }
            while connections.join_next().await.is_some() {}
        });
        Ok(Server {
            addr,
            recommendations_broken,
            log,
            accept,
        })
    }

    /// From now on `/recommendations` answers `200`.
    pub(crate) fn fix_recommendations(&self) {
        self.recommendations_broken.store(false, Ordering::Relaxed);
    }

    /// The next `n` requests the server has finished with, in the order it
    /// finished them; fewer if it takes longer than 10 s to see them.
    pub(crate) async fn served(&mut self, n: usize) -> Vec<Served> {
        let mut served = Vec::with_capacity(n);
        for _ in 0..n {
            match timeout(Duration::from_secs(10), self.log.recv()).await {
                Ok(Some(s)) => served.push(s),
                _ => break,
            }
        }
        served
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Reads one `GET` request and answers it, logging the outcome first (so the
/// log's order follows cause and effect).
async fn serve(
    mut stream: TcpStream,
    orders_delay: Duration,
    broken: Arc<AtomicBool>,
    log_tx: mpsc::UnboundedSender<Served>,
) -> Option<()> {
    // Read the request head: at most 4 reads of 1 KiB.
    let mut head = Vec::new();
    let mut chunk = [0; 1024];
    for _ in 0..4 {
        let n = stream.read(&mut chunk).await.ok()?;
        head.extend_from_slice(&chunk[..n]);
        if n == 0 || head.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.strip_prefix("GET ")?.split(' ').next()?.to_owned();
    let start = Instant::now();
    let log = |path: String, outcome| {
        let served = Served {
            path,
            outcome,
            after: start.elapsed(),
        };
        println!("server: {served}");
        let _ = log_tx.send(served);
    };

    let (status, body) = match path.as_str() {
        "/user" => ("200 OK", r#"{"id": 7, "name": "Ada Lovelace"}"#),
        "/orders" => {
            // Slow: answer after `orders_delay`, unless the client hangs up
            // first; a read that completes (EOF) means it went away.
            if timeout(orders_delay, stream.read(&mut chunk)).await.is_ok() {
                log(path, Outcome::ClientLeft);
                return Some(());
            }
            (
                "200 OK",
                r#"[{"id": 1, "total": 42.5}, {"id": 2, "total": 7.25}]"#,
            )
        }
        "/recommendations" => {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if broken.load(Ordering::Relaxed) {
                (
                    "500 Internal Server Error",
                    r#"{"error": "model not loaded"}"#,
                )
            } else {
                (
                    "200 OK",
                    r#"["Sketch of the Analytical Engine", "Notes by the Translator"]"#,
                )
            }
        }
        _ => ("404 Not Found", "{}"),
    };
    log(path, Outcome::Answered(status[..3].parse().ok()?));
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len(),
    );
    stream.write_all(response.as_bytes()).await.ok()
}

impl std::fmt::Display for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.after.as_millis();
        match self.outcome {
            Outcome::Answered(code) => write!(f, "{} answered {code} after {ms} ms", self.path),
            Outcome::ClientLeft => write!(f, "{} client went away after {ms} ms", self.path),
        }
    }
}
