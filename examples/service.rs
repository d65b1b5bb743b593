//! Service: an HTTP API, a background worker and a ticker in one
//! `errgroup!`, stopped by Ctrl-C (SIGINT) without losing a request or a job.
//!
//! - `http`: an axum server on 127.0.0.1 (port `SERVICE_PORT`, or a free
//!   one; the address is printed). `POST /jobs` queues its body as a job on
//!   a group channel and answers 202, or 503 once the service is stopping.
//! - `worker`: does the queued jobs one at a time.
//! - `ticker`: prints the service's counters every 50 ms.
//!
//! `shutdown_on = tokio::signal::ctrl_c();` shuts the group down on purpose
//! on Ctrl-C: every branch's ctx is cancelled with "shut down by
//! `shutdown_on`". axum stops accepting and finishes the requests in flight
//! (a handler still waiting for room in the queue gets its job back and
//! answers 503); the worker finishes the job in hand and hands back every
//! job still queued; the ticker stops. `grace` bounds how long the group waits for
//! that: past it, what still runs is dropped (axum's own connection tasks,
//! which no group owns, then end with the process). Once the group has
//! returned, the program prints a last line, `summary: requests=.. ..`,
//! with the tasks still alive, and exits 0.
//!
//! ```text
//! cargo run --example service
//! curl -d 'resize photo 7' http://127.0.0.1:PORT/jobs
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use errgroup::{AllowShutdown, Cancelled, Ctx, Receiver, Sender, errgroup};
use tokio::net::TcpListener;

/// Jobs the queue holds before a handler waits for room.
const QUEUE: usize = 64;
/// How long the branches get to stop once the group is shut down.
const GRACE: Duration = Duration::from_secs(10);
const TICK: Duration = Duration::from_millis(50);
/// What one job takes the worker.
const WORK: Duration = Duration::from_millis(1);
/// The largest job body accepted.
const MAX_BODY: usize = 64 * 1024;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let port = match std::env::var("SERVICE_PORT") {
        Ok(port) => port.parse()?,
        Err(_) => 0,
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on {}", listener.local_addr()?);
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    let stats = Arc::new(Stats::default());

    errgroup! {
        type Error = anyhow::Error;
        grace = GRACE;
        // Ctrl-C stops the service on purpose: a shutdown, not a failure.
        shutdown_on = tokio::signal::ctrl_c();
        let (jobs_tx, jobs_rx) = channel::<Job>(QUEUE);
        // Handlers run in axum's tasks: each request gets a clone of the
        // group's sender through the state.
        http => {
            let app = Router::new()
                .route("/jobs", post(enqueue))
                .with_state(App { jobs: jobs_tx, stats: Arc::clone(&stats) });
            // Stops accepting once the group is cancelled, then waits for
            // the requests in flight.
            axum::serve(listener, app)
                .with_graceful_shutdown(ctx.cancelled_owned())
                .await?;
            println!("http: stopped ({}): {}", cause(ctx), stats.counts());
            Ok(())
        },
        worker => {
            let stopped = work(&jobs_rx, &stats).await;
            // Sent but never received: after the cancellation nothing new
            // arrives, so one drain takes every job left.
            let handed_back = hand_back(jobs_rx.drain(), &stats);
            println!(
                "worker: stopped ({}): {} jobs done, {handed_back} handed back",
                cause(ctx),
                stats.done.load(SeqCst),
            );
            Ok(stopped?)
        },
        ticker => {
            let stopped = tick(ctx, &stats).await;
            println!("ticker: stopped ({})", cause(ctx));
            Ok(stopped?)
        },
    }
    // The branches return the cancellation's error once shut down: that is
    // the clean exit.
    .allow_shutdown()?;

    println!(
        "summary: {} tasks_alive={} tasks_baseline={baseline}",
        stats.counts(),
        tasks_left(&metrics, baseline).await,
    );
    Ok(())
}

/// A job: its id, in the order queued, and what to do.
#[derive(Debug)]
struct Job {
    id: u64,
    payload: Bytes,
}

/// What axum's handlers share.
#[derive(Clone)]
struct App {
    jobs: Sender<Job>,
    stats: Arc<Stats>,
}

/// `POST /jobs`: queues the body as a job, waiting while the queue is full.
async fn enqueue(State(app): State<App>, body: Body) -> (StatusCode, String) {
    let stats = &app.stats;
    stats.requests.fetch_add(1, SeqCst);
    let _in_flight = InFlight::enter(stats);
    let payload = match to_bytes(body, MAX_BODY).await {
        Ok(payload) => payload,
        Err(err) => {
            stats.invalid.fetch_add(1, SeqCst);
            return (StatusCode::BAD_REQUEST, format!("bad body: {err}\n"));
        }
    };
    let id = stats.ids.fetch_add(1, SeqCst);
    match app.jobs.send(Job { id, payload }).await {
        Ok(()) => {
            stats.queued.fetch_add(1, SeqCst);
            (StatusCode::ACCEPTED, format!("queued job {id}\n"))
        }
        // The queue closed with the shutdown; the job comes back unsent.
        Err(refused) => {
            let job = refused.into_inner();
            stats.rejected.fetch_add(1, SeqCst);
            let message = format!("shutting down: job {} not queued\n", job.id);
            (StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }
}

/// Does jobs until the group is cancelled.
async fn work(jobs: &Receiver<Job>, stats: &Stats) -> Result<(), Cancelled> {
    while let Some(job) = jobs.recv().await? {
        // The job in hand is finished even if the shutdown comes meanwhile.
        tokio::time::sleep(WORK).await;
        let _sum = job.payload.iter().map(|&b| u64::from(b)).sum::<u64>();
        stats.done.fetch_add(1, SeqCst);
    }
    Ok(())
}

/// Gives queued jobs back to where they came from (a broker's nack, a
/// spool file); here, their ids are kept in the counters. Returns how many.
fn hand_back(jobs: impl Iterator<Item = Job>, stats: &Stats) -> u64 {
    let ids: Vec<u64> = jobs.map(|job| job.id).collect();
    let count = ids.len() as u64;
    stats.handed_back.fetch_add(count, SeqCst);
    count
}

/// Prints the counters every [`TICK`] until the group is cancelled.
async fn tick(ctx: &Ctx, stats: &Stats) -> Result<(), Cancelled> {
    loop {
        ctx.sleep(TICK).await?;
        let n = stats.ticks.fetch_add(1, SeqCst) + 1;
        println!("tick {n}: {}", stats.counts());
    }
}

fn cause(ctx: &Ctx) -> String {
    ctx.cause()
        .map_or_else(|| "not cancelled".into(), |c| c.to_string())
}

/// The tasks alive once the group has returned. A task that has just ended
/// on the other worker thread is reaped by that thread shortly after it
/// woke us, so this waits up to a second for the count to reach `baseline`.
async fn tasks_left(metrics: &tokio::runtime::RuntimeMetrics, baseline: usize) -> usize {
    for _ in 0..1000 {
        if metrics.num_alive_tasks() <= baseline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    metrics.num_alive_tasks()
}

/// The service's counters.
#[derive(Debug, Default)]
struct Stats {
    /// Requests that reached the handler.
    requests: AtomicU64,
    /// Handlers running now.
    in_flight: AtomicU64,
    /// Requests whose body could not be read.
    invalid: AtomicU64,
    ids: AtomicU64,
    /// Jobs the queue took (202).
    queued: AtomicU64,
    /// Jobs refused because the service was stopping (503).
    rejected: AtomicU64,
    done: AtomicU64,
    handed_back: AtomicU64,
    ticks: AtomicU64,
}

impl Stats {
    /// `name=value` pairs, for the tick lines and the summary.
    fn counts(&self) -> String {
        let counters = [
            ("requests", &self.requests),
            ("in_flight", &self.in_flight),
            ("invalid", &self.invalid),
            ("queued", &self.queued),
            ("rejected", &self.rejected),
            ("done", &self.done),
            ("handed_back", &self.handed_back),
            ("ticks", &self.ticks),
        ];
        let pairs: Vec<String> = counters
            .iter()
            .map(|(name, n)| format!("{name}={}", n.load(SeqCst)))
            .collect();
        pairs.join(" ")
    }
}

/// Counts a handler as in flight until it returns.
struct InFlight<'a>(&'a Stats);

impl<'a> InFlight<'a> {
    fn enter(stats: &'a Stats) -> Self {
        stats.in_flight.fetch_add(1, SeqCst);
        InFlight(stats)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, SeqCst);
    }
}
