//! The dynamic `Group`: configured before it exists, its deadline in force
//! from its first use, and queries that change nothing.

use std::time::Duration;

use errgroup::{Cause, Group};
use tokio::time::Instant;

/// A `Group`'s deadline wakes a ctx waiting on it even before any task is
/// spawned or `wait` is called: the timer starts with the group.
#[tokio::test(start_paused = true)]
async fn a_group_deadline_wakes_a_ctx_that_waits_before_any_spawn() {
    let start = Instant::now();
    let group = Group::<()>::new().timeout(Duration::from_secs(1));
    let ctx = group.ctx();
    let slept = ctx.sleep(Duration::from_secs(3600)).await;
    assert_eq!(slept.unwrap_err().cause(), &Cause::DeadlineExceeded);
    assert_eq!(Instant::now() - start, Duration::from_secs(1));
    assert!(group.wait().await.is_ok(), "no task, nothing failed");
}

/// The builder-style calls configure a group that nobody refers to yet; a
/// child's deadline is the earliest of its own and its parent's.
#[tokio::test(start_paused = true)]
async fn builder_calls_configure_before_the_group_exists() {
    let start = Instant::now();
    let parent = Group::<()>::new().timeout(Duration::from_secs(5));
    let child = Group::<()>::with_parent(parent.ctx())
        .limit(2)
        .timeout(Duration::from_secs(10));
    assert_eq!(child.ctx().deadline(), Some(start + Duration::from_secs(5)));
    child.ctx().cancelled().await;
    assert_eq!(Instant::now() - start, Duration::from_secs(5));
    assert_eq!(
        child.ctx().cause(),
        Some(Cause::Parent(Box::new(Cause::DeadlineExceeded)))
    );
}

/// `is_cancelled()` sees a deadline that has passed before any timer turned
/// it into a cancellation, and changes nothing: the group's channels stay
/// open until the group is really cancelled. (It used to cancel the group,
/// closing its channels, as a side effect of the query.)
#[test]
fn is_cancelled_is_a_query_that_changes_nothing() {
    // No runtime: no timer will fire, only the queries see the deadline.
    let group = Group::<()>::new().deadline(Instant::now() - Duration::from_secs(1));
    let ctx = group.ctx();
    let (tx, rx) = ctx.channel::<u8>(1);
    assert!(ctx.is_cancelled());
    assert_eq!(ctx.cause(), Some(Cause::DeadlineExceeded));
    tx.try_send(7).expect("a query closed the group's channel");
    assert_eq!(rx.try_recv(), Ok(7));
}

/// `Group::grace`: after the failure, a task that ignores its ctx is
/// aborted `grace` later, and `wait` returns once it has stopped (its drop
/// guard has run); `len` counts the tasks running until then.
#[tokio::test(start_paused = true)]
async fn grace_aborts_a_stubborn_task_and_len_counts_the_running_ones() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

    struct SetOnDrop(Arc<AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, SeqCst);
        }
    }

    let dropped = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut group = Group::<&str>::new().grace(Duration::from_secs(5));
    assert!(group.is_empty());
    let guard = SetOnDrop(Arc::clone(&dropped));
    group.spawn("stubborn", move |_| async move {
        let _guard = guard;
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(())
    });
    group.spawn("failing", |_| async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Err("boom")
    });
    assert_eq!(group.len(), 2);
    let err = group.wait().await.unwrap_err();
    assert_eq!(err.task().unwrap(), "failing");
    assert_eq!(Instant::now() - start, Duration::from_secs(6));
    assert!(
        dropped.load(SeqCst),
        "the stubborn task still ran after wait returned"
    );
}

/// Values come back in spawn order whatever order the tasks end in.
#[tokio::test(start_paused = true)]
async fn wait_all_gives_values_in_spawn_order() {
    let mut group = Group::<()>::new().returning::<u64>();
    for n in 0..5u64 {
        group.spawn(format!("t{n}"), move |ctx| async move {
            ctx.sleep(Duration::from_millis(50 - n * 10))
                .await
                .map_err(drop)?;
            Ok(n * 10)
        });
    }
    assert_eq!(group.wait_all().await.unwrap(), [0, 10, 20, 30, 40]);
}

/// `join_next` gives results as tasks end; a failure taken there still
/// cancels the others, and `wait` then reports the cancellation.
#[tokio::test(start_paused = true)]
async fn join_next_gives_results_as_they_come_and_a_failure_still_cancels() {
    let mut group = Group::<&str>::new().returning::<u32>();
    group.spawn("slow", |ctx| async move {
        ctx.cancelled().await;
        Err("stopped")
    });
    group.spawn("fast", |_| async { Ok(1) });
    group.spawn("failing", |ctx| async move {
        ctx.sleep(Duration::from_secs(1))
            .await
            .map_err(|_| "cancelled")?;
        Err("boom")
    });
    assert_eq!(group.len(), 3);
    let (task, result) = group.join_next().await.unwrap();
    assert_eq!((task.to_string(), result), ("fast".to_owned(), Ok(1)));
    let (task, result) = group.join_next().await.unwrap();
    assert_eq!(
        (task.to_string(), result),
        ("failing".to_owned(), Err("boom"))
    );
    let (task, result) = group.join_next().await.unwrap();
    assert_eq!(
        (task.to_string(), result),
        ("slow".to_owned(), Err("stopped"))
    );
    assert!(group.join_next().await.is_none());
    let err = group.wait().await.unwrap_err();
    assert!(err.is_cancelled(), "the failure's error was taken: {err:?}");
    assert_eq!(
        err.cause(),
        Cause::Failed {
            task: errgroup::TaskName::new("failing")
        }
    );
}

/// `wait_all` fails with the first failing task's error.
#[tokio::test]
async fn wait_all_fails_with_the_first_error() {
    let mut group = Group::<String>::new().returning::<u32>();
    group.spawn("good", |_| async { Ok(1) });
    group.spawn("bad", |_| async { Err("bad input".to_owned()) });
    let err = group.wait_all().await.unwrap_err();
    assert_eq!(err.to_string(), "task `bad` failed: bad input");
}

/// A supervisor's failures cancel nothing: every task runs to its end and
/// its own result comes back.
#[tokio::test(start_paused = true)]
async fn a_supervisor_gives_every_result_and_cancels_nothing() {
    let mut group = Group::<&str>::new().returning::<u32>().on_error_continue();
    group.spawn("bad", |_| async { Err("no") });
    group.spawn("patient", |ctx| async move {
        ctx.sleep(Duration::from_secs(1))
            .await
            .map_err(|_| "cancelled")?;
        Ok(7)
    });
    let results = group.wait_results().await.unwrap();
    let results: Vec<_> = results
        .into_iter()
        .map(|(t, r)| (t.to_string(), r))
        .collect();
    assert_eq!(
        results,
        [("bad".to_owned(), Err("no")), ("patient".to_owned(), Ok(7))]
    );
}

/// Tasks that end free those that ended before them while `join_next`
/// and further spawns run on other threads: every result comes back once,
/// none is lost or doubled, on a multi-threaded runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_result_comes_back_once_while_tasks_free_each_other() {
    const TASKS: usize = 2_000;
    let mut group = Group::<usize>::new()
        .on_error_continue()
        .returning::<usize>();
    let mut seen = vec![0_u8; TASKS];
    let mut taken = 0;
    for i in 0..TASKS {
        group.spawn(format!("t{i}"), move |_| async move {
            tokio::task::yield_now().await;
            if i % 7 == 0 { Err(i) } else { Ok(i) }
        });
        if i % 3 == 0 {
            if let Some((_, result)) = group.join_next().await {
                seen[result.unwrap_or_else(|i| i)] += 1;
                taken += 1;
            }
        }
    }
    while let Some((_, result)) = group.join_next().await {
        seen[result.unwrap_or_else(|i| i)] += 1;
        taken += 1;
    }
    assert_eq!(taken, TASKS);
    assert!(seen.iter().all(|&n| n == 1), "a result was lost or doubled");
    group.wait().await.unwrap();
}
