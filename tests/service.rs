//! Runs the service example (`examples/service.rs`) as a child process,
//! loads it with 1,000 requests from concurrent clients, sends it a real
//! SIGINT mid-load, and checks that it stopped cleanly: exit status 0; every
//! request that reached a handler got a complete response, none was cut;
//! every queued job was done or handed back; the ticker stopped; no task
//! was left running when the group returned.
//!
//! Every step waits for an event it can see (a line the child prints, a
//! response), never for time to pass; `FAILSAFE` only turns a hang into a
//! failure.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::timeout;

/// Bounds waits that would hang if the service were wrong; never reached otherwise.
const FAILSAFE: Duration = Duration::from_secs(60);
const REQUESTS: usize = 1000;
const CLIENTS: usize = 32;
/// SIGINT is sent once this many of the requests have been answered.
const SIGNAL_AFTER: usize = 500;
/// Uploads whose body is finished only after the shutdown has begun: requests
/// certainly in flight across the signal.
const SLOW: usize = 4;
const SLOW_BODY: (&str, &str) = ("slow", "-upload");
/// The cause every branch sees: the `shutdown_on` signal.
const SHUTDOWN: &str = "shut down by `shutdown_on`";

/// The number after `name=` in a `name=value ..` line.
fn field(line: &str, name: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

/// What came back for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// A whole response: status line, headers, and `Content-Length` bytes of body.
    Complete { status: u16, body: String },
    /// Nothing: refused, reset or closed before a byte of a response.
    Nothing,
    /// Some bytes of a response, then the end: a response cut short.
    Cut(String),
}

/// Reads until the server closes the connection (every request says
/// `Connection: close`) and judges what came.
async fn read_response(stream: &mut TcpStream) -> Outcome {
    let mut bytes = Vec::new();
    let mut chunk = [0; 4096];
    // An error (a reset) ends the response like a close: what arrived is judged.
    while let Ok(n @ 1..) = stream.read(&mut chunk).await {
        bytes.extend_from_slice(&chunk[..n]);
    }
    judge(&bytes)
}

fn judge(bytes: &[u8]) -> Outcome {
    if bytes.is_empty() {
        return Outcome::Nothing;
    }
    let text = String::from_utf8_lossy(bytes).into_owned();
    let cut = || Outcome::Cut(text.clone());
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return cut();
    };
    let mut head = head.lines();
    let status = head
        .next()
        .and_then(|line| line.strip_prefix("HTTP/1.1 "))
        .and_then(|rest| rest.get(..3)?.parse().ok());
    let length: Option<usize> = head.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    });
    match (status, length) {
        (Some(status), Some(length)) if body.len() == length => Outcome::Complete {
            status,
            body: body.to_owned(),
        },
        _ => cut(),
    }
}

fn request_head(addr: SocketAddr, length: usize) -> String {
    format!(
        "POST /jobs HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    )
}

/// One `POST /jobs` on its own connection.
async fn post(addr: SocketAddr, body: &str) -> Outcome {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return Outcome::Nothing; // refused: the server no longer listens
    };
    let request = request_head(addr, body.len()) + body;
    if stream.write_all(request.as_bytes()).await.is_err() {
        return Outcome::Nothing; // reset before the request was read
    }
    read_response(&mut stream).await
}

/// What the clients saw: each outcome, and whether the test had sent the
/// SIGINT when it came.
#[derive(Default)]
struct Seen {
    outcomes: Mutex<Vec<(Outcome, bool)>>,
    signalled: AtomicBool,
}

/// `CLIENTS` clients sending `REQUESTS` requests in all, one after the
/// other each; `answered` counts the complete responses.
fn start_load(addr: SocketAddr, seen: &Arc<Seen>, answered: watch::Sender<usize>) -> JoinSet<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(answered);
    let mut clients = JoinSet::new();
    for _ in 0..CLIENTS {
        let (next, seen, answered) = (Arc::clone(&next), Arc::clone(seen), Arc::clone(&answered));
        clients.spawn(async move {
            loop {
                let i = next.fetch_add(1, SeqCst);
                if i >= REQUESTS {
                    return;
                }
                let outcome = timeout(FAILSAFE, post(addr, &format!("job {i}")))
                    .await
                    .unwrap_or_else(|_| panic!("request {i} hung"));
                let signalled = seen.signalled.load(SeqCst);
                if matches!(outcome, Outcome::Complete { .. }) {
                    answered.send_modify(|n| *n += 1);
                }
                seen.outcomes.lock().unwrap().push((outcome, signalled));
            }
        });
    }
    clients
}

/// What one run of the service gave: the clients' outcomes, the slow
/// uploads', and the service's stdout, summary last.
struct Run {
    outcomes: Vec<(Outcome, bool)>,
    slow: Vec<Outcome>,
    lines: Vec<String>,
}

impl Run {
    fn summary(&self) -> &str {
        let summary = self.lines.last().expect("the service printed");
        assert!(summary.starts_with("summary: "), "{:#?}", self.lines);
        summary
    }

    /// A counter of the summary line.
    fn count(&self, name: &str) -> u64 {
        let summary = self.summary();
        field(summary, name).unwrap_or_else(|| panic!("{name} in {summary}"))
    }

    /// The first line starting with `prefix`.
    fn line(&self, prefix: &str) -> &str {
        self.lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line: {:#?}", self.lines))
    }

    /// Complete responses with `code`, from the load and the slow uploads.
    fn with_status(&self, code: u16) -> u64 {
        let is = |o: &Outcome| matches!(o, Outcome::Complete { status, .. } if *status == code);
        let fast = self.outcomes.iter().filter(|(o, _)| is(o)).count();
        let slow = self.slow.iter().filter(|o| is(o)).count();
        (fast + slow) as u64
    }
}

/// Starts the example, loads it, sends SIGINT once `SIGNAL_AFTER` requests
/// are answered, finishes the slow uploads once the shutdown has begun,
/// and waits for the service to exit: it must exit 0.
async fn run_and_interrupt() -> Run {
    let mut child = Command::new(common::build_example("service"))
        .env_remove("SERVICE_PORT")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the example starts");
    let pid = child.id().expect("the child runs");
    let mut output = common::Lines::of(child.stdout.take().expect("stdout is piped"));
    let listening = output
        .until("its address", |l| l.starts_with("listening on "))
        .await;
    let addr: SocketAddr = listening["listening on ".len()..].parse().unwrap();

    // Slow uploads: headers and half a body now, the rest after the shutdown
    // has begun. The ticker reports the handlers in flight; once it counts
    // all of them, each is inside its handler.
    let mut slow = Vec::new();
    let length = SLOW_BODY.0.len() + SLOW_BODY.1.len();
    for _ in 0..SLOW {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let start = request_head(addr, length) + SLOW_BODY.0;
        stream.write_all(start.as_bytes()).await.unwrap();
        slow.push(stream);
    }
    output
        .until("a tick with the slow uploads in flight", |l| {
            l.starts_with("tick ") && field(l, "in_flight") == Some(SLOW as u64)
        })
        .await;

    let seen = Arc::new(Seen::default());
    let (answered_tx, mut answered) = watch::channel(0);
    let mut clients = start_load(addr, &seen, answered_tx);
    timeout(FAILSAFE, answered.wait_for(|&n| n >= SIGNAL_AFTER))
        .await
        .expect("the first responses within the failsafe")
        .expect("the clients run");

    // A real SIGINT, as Ctrl-C sends. The service installed its handler
    // when its group was first polled (`shutdown_on` polls the signal
    // before the branches), before it answered a request.
    seen.signalled.store(true, SeqCst);
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success(), "kill -INT {pid} failed");

    // The worker stopping means the group is shut down and its queue closed;
    // the slow uploads are still in flight, and must still be answered.
    let stopped = output
        .until("the worker's stop", |l| l.starts_with("worker: stopped"))
        .await;
    assert!(stopped.contains(SHUTDOWN), "{stopped}");
    for stream in &mut slow {
        stream.write_all(SLOW_BODY.1.as_bytes()).await.unwrap();
    }
    let mut slow_outcomes = Vec::new();
    for stream in &mut slow {
        let outcome = timeout(FAILSAFE, read_response(stream))
            .await
            .expect("a slow upload was answered");
        slow_outcomes.push(outcome);
    }

    timeout(FAILSAFE, async {
        while let Some(client) = clients.join_next().await {
            client.expect("a client panicked");
        }
    })
    .await
    .expect("the clients finished");
    let status = timeout(FAILSAFE, child.wait())
        .await
        .expect("the service exited after SIGINT")
        .unwrap();
    let lines = output.rest().await;
    assert!(status.success(), "exit status {status}: {lines:#?}");
    let outcomes = seen.outcomes.lock().unwrap().clone();
    Run {
        outcomes,
        slow: slow_outcomes,
        lines,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_mid_load_stops_the_service_cleanly() {
    let run = run_and_interrupt().await;
    let summary = run.summary();

    // Requests in flight across the signal were finished: their jobs could
    // no longer be queued, and they said so in a whole response.
    for outcome in &run.slow {
        match outcome {
            Outcome::Complete { status: 503, body } if body.contains("not queued") => {}
            other => panic!("a slow upload got {other:?}"),
        }
    }
    // axum returned only once no handler was running: every request it
    // took was answered by then, not after the group returned.
    let http = run.line("http: stopped");
    assert!(http.contains(SHUTDOWN), "{http}");
    assert_eq!(field(http, "in_flight"), Some(0), "{http}");
    assert_eq!(
        field(http, "requests"),
        Some(run.count("requests")),
        "{http}"
    );

    assert_eq!(run.outcomes.len(), REQUESTS);
    let cut: Vec<_> = run
        .outcomes
        .iter()
        .filter(|(o, _)| matches!(o, Outcome::Cut(_)))
        .collect();
    assert!(cut.is_empty(), "responses cut short: {cut:?}");
    for (outcome, signalled) in &run.outcomes {
        if !signalled {
            // Before the signal nothing is refused, and every job is queued.
            assert!(
                matches!(outcome, Outcome::Complete { status: 202, .. }),
                "before the signal: {outcome:?}"
            );
        }
    }
    let (accepted, unavailable) = (run.with_status(202), run.with_status(503));
    // Every request that reached a handler was answered whole: the server
    // counted as many requests as the clients got responses.
    assert_eq!(run.count("requests"), accepted + unavailable, "{summary}");
    assert_eq!(run.count("invalid"), 0, "{summary}");
    assert_eq!(run.count("in_flight"), 0, "{summary}");
    assert_eq!(run.count("queued"), accepted, "{summary}");
    assert_eq!(run.count("rejected"), unavailable, "{summary}");
    assert!(accepted >= SIGNAL_AFTER as u64, "{summary}");
    // Every queued job was done, or handed back by the worker's drain.
    assert_eq!(
        run.count("queued"),
        run.count("done") + run.count("handed_back"),
        "{summary}"
    );

    // The ticker ticked until the shutdown, then stopped for good.
    let lines = &run.lines;
    let ticks: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("tick "))
        .collect();
    let ticker = lines
        .iter()
        .position(|l| l.starts_with("ticker: stopped"))
        .expect("the ticker said it stopped");
    assert!(lines[ticker].contains(SHUTDOWN));
    assert!(
        ticks.iter().all(|&i| i < ticker),
        "a tick after the ticker stopped: {lines:#?}"
    );
    assert_eq!(run.count("ticks"), ticks.len() as u64, "{summary}");

    // Nothing the service started was still running once its group returned.
    assert_eq!(
        run.count("tasks_alive"),
        run.count("tasks_baseline"),
        "{summary}"
    );
    let unanswered = run.outcomes.iter().filter(|(o, _)| *o == Outcome::Nothing);
    eprintln!(
        "{} requests: {accepted} queued (202), {unavailable} refused while stopping (503), \
         {} never answered after the signal; {summary}",
        REQUESTS + SLOW,
        unanswered.count(),
    );
}
