//! Runs the TCP server example (`examples/tcp_server.rs`) as a child
//! process on 127.0.0.1 and checks it as its clients and its operator
//! would: right answers under load while other clients send malformed
//! lines and `PANIC`; at most `--max-conns` connections served at once,
//! every one served in the end; a real SIGINT or SIGTERM mid-load stops it
//! with exit 0, every command it read answered whole, the slow command in
//! flight included; a grace period too short for the command in flight
//! ends in exit 1 and `clean=false`.
//!
//! Every step waits for something it can see (a line the server prints, an
//! answer, an end of stream), never for time to pass; `FAILSAFE` only turns
//! a hang into a failure. Every loop is bounded.

mod common;

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::timeout;

/// Bounds waits that would hang if the server were wrong; never reached otherwise.
const FAILSAFE: Duration = Duration::from_secs(60);

/// A running server.
struct Server {
    child: Child,
    addr: SocketAddr,
    stdout: common::Lines,
    stderr: common::Lines,
}

impl Server {
    async fn start(max_conns: usize, grace_ms: Option<u64>) -> Server {
        let mut command = Command::new(common::build_example("tcp_server"));
        command.args([
            "--addr",
            "127.0.0.1:0",
            "--max-conns",
            &max_conns.to_string(),
        ]);
        if let Some(ms) = grace_ms {
            command.args(["--grace-ms", &ms.to_string()]);
        }
        let mut child = command
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the example starts");
        let mut stdout = common::Lines::of(child.stdout.take().unwrap());
        let stderr = common::Lines::of(child.stderr.take().unwrap());
        let first = timeout(FAILSAFE, stdout.lines.recv())
            .await
            .expect("a first line within the failsafe")
            .expect("the server prints its address");
        let addr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line: {first:?}"))
            .parse()
            .unwrap();
        stdout.seen.push(first);
        Server {
            child,
            addr,
            stdout,
            stderr,
        }
    }

    /// Sends a real signal, as Ctrl-C (`INT`) or a container runtime (`TERM`) does.
    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("the server runs");
        let kill = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(kill.success(), "kill -{signal} {pid} failed");
    }

    /// Waits for the server to exit: its status and its summary line.
    async fn stopped(mut self) -> (ExitStatus, Summary) {
        let status = timeout(FAILSAFE, self.child.wait())
            .await
            .expect("the server exits within the failsafe")
            .unwrap();
        let stdout = self.stdout.rest().await;
        let last = stdout.last().cloned().unwrap_or_default();
        let summary = Summary::parse(&last)
            .unwrap_or_else(|| panic!("last stdout line {last:?}; stdout {stdout:#?}"));
        (status, summary)
    }
}

/// The server's last line.
#[derive(Debug, PartialEq, Eq)]
struct Summary {
    connections: u64,
    commands: u64,
    failed: u64,
    panicked: u64,
    max: u64,
    clean: bool,
}

impl Summary {
    /// `stopped: <n> connections, <n> commands, <n> failed connections,
    /// <n> panicked connections, max <n> connections at once, clean=<bool>`
    fn parse(line: &str) -> Option<Summary> {
        let rest = line.strip_prefix("stopped: ")?;
        let parts: Vec<&str> = rest.split(", ").collect();
        let [connections, commands, failed, panicked, max, clean] = parts.as_slice() else {
            return None;
        };
        let number = |part: &str, prefix: &str, suffix: &str| -> Option<u64> {
            part.strip_prefix(prefix)?
                .strip_suffix(suffix)?
                .parse()
                .ok()
        };
        Some(Summary {
            connections: number(connections, "", " connections")?,
            commands: number(commands, "", " commands")?,
            failed: number(failed, "", " failed connections")?,
            panicked: number(panicked, "", " panicked connections")?,
            max: number(max, "max ", " connections at once")?,
            clean: clean.strip_prefix("clean=")?.parse().ok()?,
        })
    }
}

/// One client connection, a request and its answer line at a time.
struct Client {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

/// What came back for a request.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Line(String),
    /// The connection ended before any byte of an answer.
    Closed,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connects");
        let (read, writer) = stream.into_split();
        Client {
            reader: BufReader::new(read),
            writer,
        }
    }

    /// Sends `request`, reads the answer: a whole line, or nothing at all
    /// (the server closed the connection). A cut answer fails the test.
    async fn ask(&mut self, request: &str) -> Answer {
        if self
            .writer
            .write_all(format!("{request}\n").as_bytes())
            .await
            .is_err()
        {
            return Answer::Closed;
        }
        self.answer().await
    }

    async fn answer(&mut self) -> Answer {
        let mut line = String::new();
        let read = timeout(FAILSAFE, self.reader.read_line(&mut line))
            .await
            .expect("an answer or the end within the failsafe");
        match read {
            Ok(0) | Err(_) if line.is_empty() => Answer::Closed,
            Ok(_) if line.ends_with('\n') => Answer::Line(line.trim_end().to_owned()),
            _ => panic!("an answer cut short: {line:?}"),
        }
    }
}

/// 200 clients doing SET/GET at once while 20 others send malformed lines
/// and 10 send `PANIC`: every well-formed command gets its right answer,
/// each bad client only loses its own connection, and the server serves a
/// new client afterwards; then a real SIGTERM stops it cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_clients_lose_only_their_own_connection() {
    const GOOD: usize = 200;
    const MALFORMED: usize = 20;
    const PANICKING: usize = 10;
    const ROUNDS: usize = 5;
    let server = Server::start(32, None).await;
    let addr = server.addr;
    let mut clients = JoinSet::new();
    for i in 0..GOOD {
        clients.spawn(async move {
            let mut client = Client::connect(addr).await;
            for round in 0..ROUNDS {
                let (key, value) = (format!("k{i}.{round}"), format!("v{i}.{round}"));
                let set = client.ask(&format!("SET {key} {value}")).await;
                assert_eq!(set, Answer::Line("OK".into()), "SET {key}");
                let get = client.ask(&format!("GET {key}")).await;
                assert_eq!(get, Answer::Line(format!("VALUE {value}")), "GET {key}");
            }
        });
    }
    for i in 0..MALFORMED {
        clients.spawn(async move {
            let mut client = Client::connect(addr).await;
            if i % 5 == 4 {
                // Not UTF-8: a malformed request like any other.
                client.writer.write_all(b"GET \xff\xfe\n").await.unwrap();
                let answer = client.answer().await;
                assert_eq!(answer, Answer::Line("ERR request is not UTF-8".into()));
                assert_eq!(client.answer().await, Answer::Closed);
                return;
            }
            let request = ["FROB x", "SET only-key", "GET a b", "SLEEP soon"][i % 5];
            match client.ask(request).await {
                Answer::Line(line) => assert!(line.starts_with("ERR "), "{request}: {line}"),
                Answer::Closed => panic!("{request}: no ERR"),
            }
            // Then the server closes that connection.
            assert_eq!(client.answer().await, Answer::Closed, "{request}");
        });
    }
    for _ in 0..PANICKING {
        clients.spawn(async move {
            let mut client = Client::connect(addr).await;
            assert_eq!(client.ask("SET p 1").await, Answer::Line("OK".into()));
            assert_eq!(client.ask("PANIC").await, Answer::Closed);
        });
    }
    while let Some(done) = clients.join_next().await {
        done.expect("a client's answers were right");
    }
    // Still serving, with what the good clients wrote.
    let mut client = Client::connect(addr).await;
    assert_eq!(
        client.ask("GET k7.3").await,
        Answer::Line("VALUE v7.3".into())
    );
    assert_eq!(client.ask("DEL k7.3").await, Answer::Line("OK".into()));
    assert_eq!(client.ask("DEL k7.3").await, Answer::Line("NIL".into()));
    assert_eq!(client.ask("GET k7.3").await, Answer::Line("NIL".into()));
    drop(client);

    server.signal("TERM");
    let (status, summary) = server.stopped().await;
    assert_eq!(status.code(), Some(0), "{summary:?}");
    let commands = GOOD * ROUNDS * 2 + MALFORMED + PANICKING + 4;
    assert_eq!(
        (
            summary.connections,
            summary.commands,
            summary.failed,
            summary.panicked
        ),
        (
            (GOOD + MALFORMED + PANICKING + 1) as u64,
            commands as u64,
            MALFORMED as u64,
            PANICKING as u64
        ),
    );
    assert!(summary.max <= 32, "{summary:?}");
    assert!(summary.clean);
}

/// `--max-conns 8` and 64 clients connecting at once: never more than 8
/// served at a time, 8 at once at some point (each of the first 8 served
/// holds its connection until 8 have been answered), and all 64 served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_max_conns_are_served_at_once_and_all_are_served() {
    const CLIENTS: usize = 64;
    const MAX: usize = 8;
    let server = Server::start(MAX, None).await;
    let addr = server.addr;
    let (count_tx, count) = watch::channel(0usize);
    let count_tx = Arc::new(count_tx);
    let mut clients = JoinSet::new();
    for i in 0..CLIENTS {
        let (count_tx, mut count) = (Arc::clone(&count_tx), count.clone());
        clients.spawn(async move {
            let mut client = Client::connect(addr).await;
            let answer = client.ask(&format!("SET c{i} x")).await;
            assert_eq!(answer, Answer::Line("OK".into()));
            count_tx.send_modify(|n| *n += 1);
            // Holds its connection until `MAX` have been answered.
            count.wait_for(|&n| n >= MAX).await.unwrap();
        });
    }
    drop(count);
    let finished = timeout(FAILSAFE, async {
        let mut done_clients = 0;
        while let Some(done) = clients.join_next().await {
            done.expect("a client was served");
            done_clients += 1;
        }
        done_clients
    })
    .await
    .expect("every client served within the failsafe");
    assert_eq!(finished, CLIENTS);

    server.signal("INT");
    let (status, summary) = server.stopped().await;
    assert_eq!(status.code(), Some(0), "{summary:?}");
    assert_eq!(summary.max, MAX as u64, "{summary:?}");
    assert_eq!(summary.connections, CLIENTS as u64);
    assert_eq!(summary.commands, CLIENTS as u64);
    assert!(summary.clean);
}

/// A real SIGINT in the middle of load and of a `SLEEP 500`: the sleeping
/// command is answered, every command the server read is answered whole
/// (its count is the number of answers the clients got), it exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_mid_load_answers_every_command_in_flight() {
    const CLIENTS: usize = 32;
    const ROUNDS: usize = 5000;
    const SIGNAL_AFTER: usize = 1000;
    let mut server = Server::start(64, None).await;
    let addr = server.addr;
    let (progress_tx, mut progress) = watch::channel(0usize);
    let progress_tx = Arc::new(progress_tx);
    let mut clients = JoinSet::new();
    for i in 0..CLIENTS {
        let progress_tx = Arc::clone(&progress_tx);
        clients.spawn(async move {
            let mut client = Client::connect(addr).await;
            let mut got = 0;
            for round in 0..ROUNDS {
                let key = format!("k{i}");
                let (request, expected) = if round % 2 == 0 {
                    (format!("SET {key} {round}"), "OK".to_owned())
                } else {
                    (format!("GET {key}"), format!("VALUE {}", round - 1))
                };
                match client.ask(&request).await {
                    Answer::Line(line) => assert_eq!(line, expected, "{request}"),
                    Answer::Closed => break, // stopped while idle: never read
                }
                got += 1;
                progress_tx.send_modify(|n| *n += 1);
            }
            got
        });
    }
    // The load runs; then the slow command starts, and the signal comes
    // while it sleeps.
    timeout(FAILSAFE, progress.wait_for(|&n| n >= SIGNAL_AFTER))
        .await
        .expect("load answered within the failsafe")
        .unwrap();
    let mut sleeper = Client::connect(addr).await;
    sleeper.writer.write_all(b"SLEEP 500\n").await.unwrap();
    server
        .stderr
        .until("the SLEEP in flight", |l| l == "sleeping 500 ms")
        .await;

    server.signal("INT");
    assert_eq!(sleeper.answer().await, Answer::Line("OK".into()));
    assert_eq!(sleeper.answer().await, Answer::Closed, "closed once idle");
    let mut total = 1; // the SLEEP
    while let Some(got) = clients.join_next().await {
        total += got.expect("every answer right and whole");
    }
    let (status, summary) = server.stopped().await;
    assert_eq!(status.code(), Some(0), "{summary:?}");
    assert!(summary.clean, "{summary:?}");
    assert!(
        total < CLIENTS * ROUNDS + 1,
        "the signal came after the load: {total}"
    );
    assert_eq!(
        summary.commands, total as u64,
        "every command read was answered"
    );
    assert_eq!(summary.connections, CLIENTS as u64 + 1);
    assert_eq!((summary.failed, summary.panicked), (0, 0));
}

/// `--grace-ms 50` with a `SLEEP 5000` in flight: grace expires, the
/// command is abandoned (never answered), and the server says so: exit 1,
/// `clean=false`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_expiry_abandons_the_command_and_exits_1() {
    let mut server = Server::start(4, Some(50)).await;
    let mut sleeper = Client::connect(server.addr).await;
    sleeper.writer.write_all(b"SLEEP 5000\n").await.unwrap();
    server
        .stderr
        .until("the SLEEP in flight", |l| l == "sleeping 5000 ms")
        .await;
    server.signal("INT");
    assert_eq!(sleeper.answer().await, Answer::Closed);
    let (status, summary) = server.stopped().await;
    assert_eq!(status.code(), Some(1), "{summary:?}");
    assert!(!summary.clean, "{summary:?}");
    assert_eq!((summary.connections, summary.commands), (1, 0));
}
