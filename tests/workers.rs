//! Runs the workers example (`examples/workers.rs`): its whole `main`, and its
//! pool with assertions on what ran, what stopped, and what is left running.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use errgroup::{Cause, TaskName, errgroup};
use tokio::time::timeout;

#[path = "../examples/workers.rs"]
mod workers;

use workers::{Log, Work, jobs, pool};

/// Only guards against a hang if cancellation were broken; no assertion
/// depends on it.
const HANG_GUARD: Duration = Duration::from_secs(30);

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Asserts that the tasks alive are back to `baseline`, giving the runtime
/// up to 5 s to reap tasks finishing on the other worker thread (the wait
/// only ends early; it never makes the test pass).
async fn assert_back_to(baseline: usize) {
    for _ in 0..5_000 {
        if alive_tasks() == baseline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(alive_tasks(), baseline, "tasks left running");
}

/// `n` jobs that start no sub-workers.
fn small_jobs(n: u64) -> Vec<workers::Job> {
    let mut jobs = jobs(n, None);
    for job in &mut jobs {
        job.work = Work::Small;
    }
    jobs
}

#[test]
fn the_example_runs_to_completion() {
    workers::main().expect("the workers example exits 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_is_processed_exactly_once() {
    let baseline = alive_tasks();
    let log = Arc::new(Log::default());
    let mut results = timeout(HANG_GUARD, pool(jobs(50, None), 4, Arc::clone(&log)))
        .await
        .expect("the pool returned")
        .expect("no job fails");

    results.sort_unstable();
    let expected: Vec<(u64, u64)> = (0..50)
        .map(|id| {
            let value = if id % 5 == 0 {
                (0..4).map(|p| id * 100 + p).sum()
            } else {
                id * 2
            };
            (id, value)
        })
        .collect();
    assert_eq!(results, expected, "one result per job, each job once");
    let mut processed = log.processed.lock().unwrap().clone();
    processed.sort_unstable();
    assert_eq!(processed, (0..50).collect::<Vec<_>>(), "each job done once");
    // 10 big jobs of 4 parts each, all finished normally.
    assert_eq!(log.parts_started.load(Ordering::SeqCst), 40);
    assert_eq!(log.parts_cancelled.load(Ordering::SeqCst), 0);
    assert_back_to(baseline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_job_stops_the_pool_and_the_sub_workers_in_flight() {
    let baseline = alive_tasks();
    let log = Arc::new(Log::default());
    // Only the jobs below start sub-workers.
    let mut jobs = small_jobs(20);
    // Job 0's sub-workers never finish; job 7 fails once they are running.
    jobs[0].work = Work::Hang { parts: 3 };
    jobs[7].work = Work::FailOnceBusy(3);
    let err = timeout(HANG_GUARD, pool(jobs, 4, Arc::clone(&log)))
        .await
        .expect("the pool did not stop: sub-workers were not cancelled")
        .expect_err("job 7 fails");

    // The error came back as a value; `collect` turned it into the pool's.
    assert_eq!(err.task().unwrap(), "collect");
    assert_eq!(
        format!("{:#}", err.into_inner().unwrap()),
        "job 7: corrupt input"
    );
    // The hanging job's three sub-workers were cancelled, none still runs.
    assert_eq!(log.parts_cancelled.load(Ordering::SeqCst), 3);
    assert_eq!(log.parts_running.load(Ordering::SeqCst), 0);
    assert!(!log.processed.lock().unwrap().contains(&0));
    assert_back_to(baseline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_stops_the_pool_and_leaves_nothing_running() {
    let baseline = alive_tasks();
    let log = Arc::new(Log::default());
    // Only the jobs below start sub-workers.
    let mut jobs = small_jobs(20);
    jobs[0].work = Work::Hang { parts: 3 };
    jobs[1].work = Work::Hang { parts: 2 };
    let log_in_pool = Arc::clone(&log);
    // As in the example's `main`, with Ctrl-C simulated: the group's
    // signal completes once the hanging jobs' five sub-workers are running.
    let result = timeout(HANG_GUARD, async {
        errgroup! {
            type Error = anyhow::Error;
            shutdown_on = log.running(5);
            pool => { pool(jobs, 4, log_in_pool).await?; Ok(()) },
        }
    })
    .await
    .expect("the pool did not stop when its group was shut down");

    // A shutdown, not a failure: the pool's cancellation error does not
    // replace it.
    let err = result.unwrap_err();
    assert!(err.is_shutdown(), "{err:?}");
    assert_eq!(
        err.cause(),
        Cause::Shutdown {
            by: TaskName::new("shutdown_on")
        }
    );
    assert_eq!(log.parts_cancelled.load(Ordering::SeqCst), 5);
    assert_eq!(log.parts_running.load(Ordering::SeqCst), 0);
    assert!(
        log.processed.lock().unwrap().len() < 20,
        "the pool was cut short"
    );
    assert_back_to(baseline).await;
}
