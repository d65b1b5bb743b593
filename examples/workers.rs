//! Workers: a producer, a pool of workers on one channel, sub-workers for
//! big jobs, and results (and errors) as values over a channel.
//!
//! `pool` is one `errgroup!`: `produce` sends jobs into a group channel,
//! `work` is N spawned workers taking jobs from it, and `collect` reads the
//! results channel. A worker splits a big job into parts run by a nested
//! `errgroup!` of spawned sub-workers: it waits for them, and they are
//! cancelled with it. A job's error travels as a value; `collect` stops the
//! pool at the first one. `main` runs the pool in a group with
//! `shutdown_on = tokio::signal::ctrl_c();`: pressing Ctrl-C shuts the group
//! down on purpose, which cancels the pool, sub-workers included, and is
//! reported as a shutdown, not a failure.
//!
//! ```text
//! cargo run --example workers
//! ```

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, anyhow};
use errgroup::{Cancelled, Ctx, errgroup};
use tokio::sync::Notify;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn main() -> anyhow::Result<()> {
    println!("run 1: 20 jobs, every 5th one big, 4 workers; Ctrl-C stops it all");
    let log = Arc::new(Log::default());
    let outcome = errgroup! {
        type Error = anyhow::Error;
        // Ctrl-C shuts the group down on purpose: the pool and its
        // sub-workers are cancelled, with the cause "shut down by `shutdown_on`".
        shutdown_on = tokio::signal::ctrl_c();
        pool => Ok(pool(jobs(20, None), 4, Arc::clone(&log)).await?),
    };
    match outcome {
        Ok((results,)) => println!(
            "  {} results, sum {}; {} sub-workers ran",
            results.len(),
            results.iter().map(|(_, v)| v).sum::<u64>(),
            log.parts_started.load(Ordering::Relaxed),
        ),
        // Not a failure: the pool stopped because it was asked to.
        Err(stopped) if stopped.is_shutdown() => println!(
            "  {}; {} sub-workers cancelled",
            stopped.cause(),
            log.parts_cancelled.load(Ordering::Relaxed),
        ),
        Err(failed) => return Err(failed.into()),
    }

    println!("run 2: job 7 fails while job 0's 3 sub-workers are busy");
    let log = Arc::new(Log::default());
    let mut jobs = jobs(20, None);
    jobs[0].work = Work::Hang { parts: 3 };
    jobs[7].work = Work::FailOnceBusy(3);
    let err = pool(jobs, 4, Arc::clone(&log))
        .await
        .expect_err("job 7 fails");
    println!("  errgroup! returned Err: {err}");
    println!(
        "  sub-workers started {}, cancelled {}",
        log.parts_started.load(Ordering::Relaxed),
        log.parts_cancelled.load(Ordering::Relaxed),
    );
    Ok(())
}

/// `n` jobs; every 5th is big (4 parts); `fail` makes that job fail.
pub(crate) fn jobs(n: u64, fail: Option<u64>) -> Vec<Job> {
    (0..n)
        .map(|id| Job {
            id,
            work: match id {
                _ if Some(id) == fail => Work::Fail,
                _ if id % 5 == 0 => Work::Big { parts: 4 },
                _ => Work::Small,
            },
        })
        .collect()
}

/// A job for the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Job {
    pub(crate) id: u64,
    pub(crate) work: Work,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Work {
    /// Done by the worker itself: `2 * id`.
    Small,
    /// Split into `parts` sub-workers: the sum of `id * 100 + part`.
    Big { parts: u64 },
    /// `parts` sub-workers that never finish: only cancellation ends them.
    Hang { parts: u64 },
    /// Fails at once.
    Fail,
    /// Fails once this many sub-workers are running (lets a test fail a job
    /// while others' sub-workers are mid-flight, deterministically).
    FailOnceBusy(usize),
}

/// Runs `jobs` on `workers` workers; every result, in completion order, or
/// the first error.
pub(crate) async fn pool(
    jobs: Vec<Job>,
    workers: usize,
    log: Arc<Log>,
) -> Result<Vec<(u64, u64)>, errgroup::Error<anyhow::Error>> {
    let ((), _, results) = errgroup! {
        type Error = anyhow::Error;
        // Bound to the group: a worker blocked on either returns at once
        // when the group is cancelled.
        let (jobs_tx, jobs_rx) = channel::<Job>(8);
        let (results_tx, results_rx) = channel::<(u64, anyhow::Result<u64>)>(8);
        // The producer's `jobs_tx` is dropped when it returns: the workers'
        // `while let` loops then end cleanly.
        produce => {
            for job in jobs {
                jobs_tx.send(job).await?;
            }
            Ok(())
        },
        // N tasks on one channel: each job goes to one of them. Owned data
        // goes through the iterator (`#[spawn]` is `'static`).
        #[spawn] work => for log in (0..workers).map(|_| Arc::clone(&log)) {
            while let Some(job) = jobs_rx.recv().await? {
                let id = job.id;
                // The job's error is a value, not this worker's failure.
                let result = run(ctx, job, &log).await;
                results_tx.send((id, result)).await?;
            }
            Ok(())
        },
        // Stops the pool at the first failed job: its `Err` cancels the group.
        collect => {
            let mut results = Vec::new();
            while let Some((id, result)) = results_rx.recv().await? {
                let value = result.with_context(|| format!("job {id}"))?;
                results.push((id, value));
            }
            Ok(results)
        },
    }?;
    Ok(results)
}

/// Does one job; big ones on sub-workers.
async fn run(ctx: &Ctx, job: Job, log: &Arc<Log>) -> anyhow::Result<u64> {
    let id = job.id;
    let value = match job.work {
        Work::Small => {
            tokio::task::yield_now().await;
            id * 2
        }
        // A nested group: a child of this worker's, so the worker waits for
        // its sub-workers and they are cancelled with it.
        Work::Big { parts } | Work::Hang { parts } => {
            let hang = matches!(job.work, Work::Hang { .. });
            let (values,) = errgroup! {
                type Error = anyhow::Error;
                #[spawn] part => for (part, log) in (0..parts).map(|p| (p, Arc::clone(log))) {
                    log.part_started();
                    let outcome = if hang {
                        ctx.run(std::future::pending::<()>()).await
                    } else {
                        ctx.run(tokio::task::yield_now()).await
                    };
                    log.part_ended(outcome.is_err());
                    outcome?;
                    Ok(id * 100 + part)
                },
            }?;
            values.iter().sum()
        }
        Work::Fail => return Err(anyhow!("corrupt input")),
        Work::FailOnceBusy(n) => {
            log.wait_running(ctx, n).await?;
            return Err(anyhow!("corrupt input"));
        }
    };
    log.processed.lock().unwrap().push(id);
    Ok(value)
}

/// What the pool did.
#[derive(Debug, Default)]
pub(crate) struct Log {
    /// The jobs done, each time one was.
    pub(crate) processed: Mutex<Vec<u64>>,
    pub(crate) parts_started: AtomicUsize,
    pub(crate) parts_running: AtomicUsize,
    /// Sub-workers stopped by cancellation.
    pub(crate) parts_cancelled: AtomicUsize,
    progress: Notify,
}

impl Log {
    fn part_started(&self) {
        self.parts_started.fetch_add(1, Ordering::SeqCst);
        self.parts_running.fetch_add(1, Ordering::SeqCst);
        self.progress.notify_waiters();
    }

    fn part_ended(&self, cancelled: bool) {
        if cancelled {
            self.parts_cancelled.fetch_add(1, Ordering::SeqCst);
        }
        self.parts_running.fetch_sub(1, Ordering::SeqCst);
    }

    /// Waits until `n` sub-workers run at once, or `ctx` is cancelled.
    pub(crate) async fn wait_running(&self, ctx: &Ctx, n: usize) -> Result<(), Cancelled> {
        ctx.run(self.running(n)).await
    }

    /// Completes once `n` sub-workers run at once.
    pub(crate) async fn running(&self, n: usize) {
        loop {
            let mut notified = pin!(self.progress.notified());
            notified.as_mut().enable();
            if self.parts_running.load(Ordering::SeqCst) >= n {
                return;
            }
            notified.await;
        }
    }
}
