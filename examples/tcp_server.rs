//! A key-value store over TCP: one task per connection, at most
//! `--max-conns` served at once (the accept loop waits for a slot), a
//! background expiry branch, and Ctrl-C / SIGTERM shutdown with `grace`.
//!
//! ```text
//! cargo run --example tcp_server -- --addr 127.0.0.1:0 --max-conns N [--grace-ms MS]
//! ```
//!
//! Its first stdout line is `listening on <addr>`. Requests, one per line:
//!
//! | request | answer |
//! |---|---|
//! | `SET <key> <value>` | `OK` |
//! | `GET <key>` | `VALUE <value>` or `NIL` |
//! | `DEL <key>` | `OK` or `NIL` |
//! | `SLEEP <ms>` | `OK`, that long after (a slow command) |
//! | `PANIC` | nothing: that connection's handler panics |
//! | anything else | `ERR <reason>`, then the connection is closed |
//!
//! Keys and values are single words; a key not written for an hour expires.
//! A malformed request or a panic ends that connection only: the
//! connections are a supervised [`Pool`](errgroup::Pool), whose handler
//! counts and logs (stderr) each failure.
//!
//! On SIGINT or SIGTERM the group is shut down: the accept loop stops, a
//! connection idle on a read is closed at once, a command in flight
//! finishes and is answered. Its last stdout line is
//! `stopped: <n> connections, <n> commands, <n> failed connections, <n>
//! panicked connections, max <n> connections at once, clean=<true|false>`,
//! and it exits 0 if the stop was clean, 1 if `grace` expired with work
//! abandoned (or the server failed), 2 on a bad command line.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use errgroup::{AllowShutdown, Ctx, Failure, TaskName, errgroup};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// How long a key lives without being written.
const TTL: Duration = Duration::from_secs(3600);
/// How often the expiry branch looks for expired keys.
const EXPIRY_TICK: Duration = Duration::from_secs(1);
/// The longest request line read; a longer one is an error.
const MAX_LINE: usize = 4096;

#[tokio::main]
async fn main() {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e:#}\nusage: tcp_server --addr ADDR --max-conns N [--grace-ms MS]");
            std::process::exit(2);
        }
    };
    match run(args).await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("tcp_server: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Serves until SIGINT or SIGTERM; whether the stop was clean.
async fn run(args: Args) -> anyhow::Result<bool> {
    let listener = TcpListener::bind(args.addr).await?;
    // Installed before anyone can know the address: a signal sent as soon
    // as the first line is read is not lost.
    let stop = errgroup::stop_signal();
    println!("listening on {}", listener.local_addr()?);
    let store = Store::default();
    let stats = Arc::new(Stats::default());

    let result = errgroup! {
        type Error = anyhow::Error;
        shutdown_on = stop;
        grace = args.grace;
        accept => {
            let failures = Arc::clone(&stats);
            let conns = ctx.pool().limit(args.max_conns).catch_panics()
                .supervise(move |conn, failure| failures.failed(conn, &failure));
            while let Ok(accepted) = ctx.run(listener.accept()).await {
                let (socket, peer) = accepted?;
                let (store, stats) = (store.clone(), Arc::clone(&stats));
                conns.spawn_with(format!("conn {peer}"), |ctx| serve(ctx, socket, store, stats)).await?;
            }
            Ok(())
        },
        expiry => {
            while ctx.sleep(EXPIRY_TICK).await.is_ok() {
                store.expire(TTL);
            }
            Ok(())
        },
    };

    // Clean: stopped on purpose, and nothing abandoned when `grace` expired.
    let abandoned = result
        .as_ref()
        .err()
        .and_then(|e| e.still_running())
        .is_some();
    let result = result.allow_shutdown();
    if let Err(e) = &result {
        eprintln!("tcp_server: {e}");
    }
    let clean = result.is_ok() && !abandoned;
    println!("stopped: {}, clean={clean}", stats.summary());
    Ok(clean)
}

/// One connection: a request per line, answered in order, until the client
/// closes, a request is malformed, or the server stops while it waits for
/// the next request.
async fn serve(ctx: Ctx, socket: TcpStream, store: Store, stats: Arc<Stats>) -> anyhow::Result<()> {
    let _serving = stats.serving();
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        // Idle on a read when the server stops: close at once.
        let Ok(read) = ctx.run(read_line(&mut lines, &mut line)).await else {
            return Ok(());
        };
        if read.context("reading a request")? == 0 {
            return Ok(()); // the client closed
        }
        // A command in flight finishes and is answered, stop or not.
        let reply = match Request::parse(&line) {
            Ok(request) => store.execute(request).await,
            Err(reason) => {
                write
                    .write_all(format!("ERR {reason}\n").as_bytes())
                    .await?;
                stats.commands.fetch_add(1, SeqCst);
                bail!("malformed request: {reason}");
            }
        };
        write.write_all(reply.as_bytes()).await?;
        stats.commands.fetch_add(1, SeqCst);
    }
}

/// Reads one line into `line`, at most [`MAX_LINE`] bytes and one more (a
/// longer line is malformed); 0 at the end.
async fn read_line(
    lines: &mut BufReader<OwnedReadHalf>,
    line: &mut Vec<u8>,
) -> std::io::Result<usize> {
    lines
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', line)
        .await
}

/// A well-formed request.
enum Request<'a> {
    Set(&'a str, &'a str),
    Get(&'a str),
    Del(&'a str),
    Sleep(Duration),
    Panic,
}

impl<'a> Request<'a> {
    /// `line` as a request, its line end included.
    fn parse(line: &'a [u8]) -> Result<Self, String> {
        if line.len() > MAX_LINE {
            return Err(format!("request longer than {MAX_LINE} bytes"));
        }
        let line = std::str::from_utf8(line).map_err(|_| "request is not UTF-8".to_owned())?;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["SET", key, value] => Ok(Request::Set(key, value)),
            ["GET", key] => Ok(Request::Get(key)),
            ["DEL", key] => Ok(Request::Del(key)),
            ["SLEEP", ms] => ms
                .parse()
                .map(|ms| Request::Sleep(Duration::from_millis(ms)))
                .map_err(|_| format!("SLEEP takes milliseconds, not {ms:?}")),
            ["PANIC"] => Ok(Request::Panic),
            [] => Err("empty request".into()),
            [command @ ("SET" | "GET" | "DEL" | "SLEEP" | "PANIC"), ..] => {
                Err(format!("wrong number of arguments for {command}"))
            }
            [command, ..] => Err(format!("unknown command {command:?}")),
        }
    }
}

/// The keys, shared by every connection and the expiry branch.
#[derive(Clone, Default)]
struct Store(Arc<Mutex<HashMap<String, (String, Instant)>>>);

impl Store {
    /// Runs `request`; its answer line.
    async fn execute(&self, request: Request<'_>) -> String {
        let answer = match request {
            Request::Set(key, value) => {
                let entry = (value.to_owned(), Instant::now());
                self.0.lock().unwrap().insert(key.to_owned(), entry);
                "OK".to_owned()
            }
            Request::Get(key) => match self.0.lock().unwrap().get(key) {
                Some((value, _)) => format!("VALUE {value}"),
                None => "NIL".to_owned(),
            },
            Request::Del(key) => match self.0.lock().unwrap().remove(key) {
                Some(_) => "OK".to_owned(),
                None => "NIL".to_owned(),
            },
            Request::Sleep(duration) => {
                // On stderr, for whoever must know it is in flight (the tests).
                eprintln!("sleeping {} ms", duration.as_millis());
                tokio::time::sleep(duration).await;
                "OK".to_owned()
            }
            Request::Panic => panic!("PANIC requested"),
        };
        answer + "\n"
    }

    /// Drops the keys not written for `ttl`.
    fn expire(&self, ttl: Duration) {
        self.0
            .lock()
            .unwrap()
            .retain(|_, (_, written)| written.elapsed() < ttl);
    }
}

/// The counters of the summary line.
#[derive(Default)]
struct Stats {
    connections: AtomicU64,
    commands: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
    active: AtomicU64,
    max_active: AtomicU64,
}

impl Stats {
    /// Counts a connection served until the guard is dropped (its handler
    /// returned, panicked or was aborted).
    fn serving(&self) -> impl Drop + '_ {
        self.connections.fetch_add(1, SeqCst);
        let now = self.active.fetch_add(1, SeqCst) + 1;
        self.max_active.fetch_max(now, SeqCst);
        Serving(self)
    }

    /// The pool's handler: a connection that failed or panicked.
    fn failed(&self, conn: &TaskName, failure: &Failure<anyhow::Error>) {
        eprintln!("`{conn}` {failure:#}");
        match failure {
            Failure::Panic(_) => &self.panicked,
            Failure::Error(_) => &self.failed,
        }
        .fetch_add(1, SeqCst);
    }

    fn summary(&self) -> String {
        format!(
            "{} connections, {} commands, {} failed connections, {} panicked connections, max {} connections at once",
            self.connections.load(SeqCst),
            self.commands.load(SeqCst),
            self.failed.load(SeqCst),
            self.panicked.load(SeqCst),
            self.max_active.load(SeqCst),
        )
    }
}

struct Serving<'a>(&'a Stats);

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, SeqCst);
    }
}

/// The command line.
struct Args {
    addr: SocketAddr,
    max_conns: usize,
    grace: Duration,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Args> {
        let mut parsed = Args {
            addr: "127.0.0.1:0".parse()?,
            max_conns: 64,
            grace: Duration::from_secs(5),
        };
        while let Some(flag) = args.next() {
            let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--addr" => parsed.addr = value()?.parse().context("--addr")?,
                "--max-conns" => parsed.max_conns = value()?.parse().context("--max-conns")?,
                "--grace-ms" => {
                    parsed.grace = Duration::from_millis(value()?.parse().context("--grace-ms")?);
                }
                other => bail!("unknown argument {other:?}"),
            }
        }
        if parsed.max_conns == 0 {
            bail!("--max-conns must be at least 1");
        }
        Ok(parsed)
    }
}
