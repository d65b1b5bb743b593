//! Lazy server: timeouts that free resources.
//!
//! A tiny HTTP server on 127.0.0.1 answers each request either fast (50 ms)
//! or slowly (3 s), at random from a fixed seed. The client calls it with a
//! 2 s deadline (`timeout = ..;` header): a fast call returns its body; a
//! slow one is abandoned at the deadline, and because the request in flight
//! is dropped, its connection closes and the server sees the client leave
//! before it would have answered. Nothing keeps running in the background.
//!
//! Then a loop does one unit of work per 300 ms tick under the same 2 s
//! deadline and stops at it, returning `DeadlineExceeded`.
//!
//! ```text
//! cargo run --example lazy_server
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use errgroup::{Ctx, errgroup};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, timeout};

/// The client's deadline for one call, and for the ticking loop.
const DEADLINE: Duration = Duration::from_secs(2);
/// The seed of the server's choices: with it, calls 1 and 2 are fast, call 3 slow.
const SEED: u64 = 7;

#[tokio::main(flavor = "current_thread")]
pub(crate) async fn main() -> anyhow::Result<()> {
    let latency = Latency {
        seed: SEED,
        fast: Duration::from_millis(50),
        slow: Duration::from_secs(3),
    };
    let mut server = Server::start(latency).await?;
    println!("server: listening on http://{} (seed {SEED})", server.addr);
    println!("server: its first answers will be {:?}", speeds(SEED, 3));

    // Call until both a fast and a slow answer were seen (at most 6 calls).
    let (mut fast, mut slow) = (0, 0);
    for id in 1..=6 {
        let start = Instant::now();
        match call(server.addr, id, DEADLINE).await {
            Ok(body) => {
                fast += 1;
                println!("{} client: call {id} returned Ok: {body}", at(start));
            }
            Err(err) => {
                slow += 1;
                println!("{} client: call {id} returned Err: {err}", at(start));
                println!("           err.cause() = {}", err.cause());
            }
        }
        // The server's log line for this call: it was answered, or it saw
        // the client leave before answering.
        let Some(report) = server.served().await else {
            bail!("the server did not report call {id}");
        };
        println!("           server: {report}");
        if fast > 0 && slow > 0 {
            break;
        }
    }

    println!("\na loop doing one unit of work per 300 ms tick, deadline 2 s");
    let start = Instant::now();
    let (units, result) = tick_until_deadline(DEADLINE, Duration::from_millis(300)).await;
    let Err(err) = result else {
        bail!("the loop cannot end before its deadline");
    };
    println!(
        "{} loop stopped after {units} units of work: {err}",
        at(start)
    );
    Ok(())
}

/// Calls `GET /work/{id}` with a deadline: the program's client `errgroup!`.
///
/// At the deadline the group's `ctx` is cancelled with cause
/// `DeadlineExceeded` and the group returns `Err(Error::Cancelled(..))`.
pub(crate) async fn call(
    addr: SocketAddr,
    id: u32,
    deadline: Duration,
) -> Result<String, errgroup::Error<anyhow::Error>> {
    errgroup! {
        timeout = deadline;
        request => get(ctx, addr, id).await,
    }
    .map(|(body,)| body)
}

/// `GET /work/{id}` over a fresh connection; the body on `200`.
async fn get(ctx: &Ctx, addr: SocketAddr, id: u32) -> anyhow::Result<String> {
    let request = async {
        let mut stream = TcpStream::connect(addr).await?;
        let head = format!("GET /work/{id} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await?;
        let mut response = String::new();
        stream.take(64 * 1024).read_to_string(&mut response).await?;
        anyhow::Ok(response)
    };
    // `ctx.run` races the request against the deadline. At the deadline it
    // drops the request mid-read, which closes the connection: the server
    // sees the client leave, instead of working for a caller that is gone.
    let response = ctx.run(request).await??;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("malformed response")?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!(
            "GET /work/{id}: {}",
            head.lines().next().unwrap_or_default()
        );
    }
    Ok(body.to_owned())
}

/// Does one unit of work per `tick` until the deadline; the number of units
/// done, and the group's result: always `Err`, with cause `DeadlineExceeded`.
pub(crate) async fn tick_until_deadline(
    deadline: Duration,
    tick: Duration,
) -> (u32, Result<(), errgroup::Error<anyhow::Error>>) {
    let mut units = 0;
    let done = &mut units;
    let result = errgroup! {
        timeout = deadline;
        ticker => {
            // `ctx.sleep` returns `Err` once the deadline has passed.
            while ctx.sleep(tick).await.is_ok() {
                *done += 1; // one unit of work
            }
            ctx.check()?; // Err(Cancelled): the loop ends only by cancellation
            Ok(())
        },
    }
    .map(|((),)| ());
    (units, result)
}

/// `[  123 ms]`: the time since `start`, as a log prefix.
fn at(start: Instant) -> String {
    format!("[{:>5} ms]", start.elapsed().as_millis())
}

// ---------------------------------------------------------------------------
// The server: minimal HTTP/1.1 over a `TcpListener`, one request per connection.

/// How long the server takes: per connection, `fast` or `slow` with equal
/// odds, drawn from a PRNG seeded with `seed`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Latency {
    pub(crate) seed: u64,
    pub(crate) fast: Duration,
    pub(crate) slow: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Speed {
    Fast,
    Slow,
}

/// The speeds the server picks for its first `n` connections, in order.
pub(crate) fn speeds(seed: u64, n: usize) -> Vec<Speed> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.speed()).collect()
}

/// xorshift64*: a few lines instead of a dependency.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn speed(&mut self) -> Speed {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        if self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 63 == 0 {
            Speed::Fast
        } else {
            Speed::Slow
        }
    }
}

/// A running server; it stops, with every connection it holds, when dropped.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    log: mpsc::UnboundedReceiver<Served>,
    accept: JoinHandle<()>,
}

/// What the server did with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Served {
    pub(crate) path: String,
    pub(crate) speed: Speed,
    pub(crate) outcome: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The server sent its `200`.
    Answered,
    /// The client closed the connection before the server answered.
    ClientLeft,
}

/// At most this many connections per server: every loop here is bounded.
const MAX_CONNECTIONS: usize = 64;

impl Server {
    /// Listens on an ephemeral port of 127.0.0.1.
    pub(crate) async fn start(latency: Latency) -> std::io::Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (log_tx, log) = mpsc::unbounded_channel();
        let accept = tokio::spawn(async move {
            let mut rng = Rng::new(latency.seed);
            // Aborting this task drops the `JoinSet`, which aborts every connection.
            let mut connections = JoinSet::new();
            for _ in 0..MAX_CONNECTIONS {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                let speed = rng.speed();
                let delay = match speed {
                    Speed::Fast => latency.fast,
                    Speed::Slow => latency.slow,
                };
                let serve = serve(stream, speed, delay, log_tx.clone());
                connections.spawn(timeout(delay + Duration::from_secs(5), serve));
            }
            while connections.join_next().await.is_some() {}
        });
        Ok(Server { addr, log, accept })
    }

    /// The next request the server has finished with; `None` if it takes
    /// longer than 10 s to see one.
    pub(crate) async fn served(&mut self) -> Option<Served> {
        timeout(Duration::from_secs(10), self.log.recv())
            .await
            .ok()
            .flatten()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Reads one `GET` request and answers it after `delay`, unless the client
/// leaves first. Logs the outcome before answering, so the log is causal.
async fn serve(
    mut stream: TcpStream,
    speed: Speed,
    delay: Duration,
    log_tx: mpsc::UnboundedSender<Served>,
) -> Option<()> {
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
    let log = |outcome| {
        let _ = log_tx.send(Served {
            path: path.clone(),
            speed,
            outcome,
        });
    };

    // Work for `delay`, watching the connection: a read that completes
    // (EOF, or an error such as a reset) means the client went away.
    if timeout(delay, stream.read(&mut chunk)).await.is_ok() {
        log(Outcome::ClientLeft);
        return Some(());
    }
    log(Outcome::Answered);
    let body = format!("{path} done");
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len(),
    );
    stream.write_all(response.as_bytes()).await.ok()
}

impl std::fmt::Display for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let speed = match self.speed {
            Speed::Fast => "fast",
            Speed::Slow => "slow",
        };
        match self.outcome {
            Outcome::Answered => write!(f, "{} ({speed}) answered 200", self.path),
            Outcome::ClientLeft => write!(
                f,
                "{} ({speed}) client went away before the answer",
                self.path
            ),
        }
    }
}
