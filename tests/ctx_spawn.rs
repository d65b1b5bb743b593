//! `ctx.spawn(name, fut)` (issue 4): a `'static` task the group waits for, whose error is the group's, that starts nothing after cancellation and dies with the group; on `errgroup!` and on the dynamic `Group`.
//!
//! Ordering never relies on sleeping and hoping: tests run on tokio's paused
//! clock or synchronise explicitly (oneshots released from outside the
//! group, counters). Waits that could hang if the code were wrong are
//! bounded by `FAILSAFE`, which only ever turns a hang into a failure.

use std::future::{Future, pending};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::Duration;

use errgroup::{Cancelled, Cause, Ctx, Error, Group, TaskName, errgroup};
use tokio::sync::oneshot;
use tokio::task::yield_now;
use tokio::time::{Instant, sleep};

mod common;
use common::{BumpOnDrop, Counter, catch_panic, failed, leak, message, within_failsafe};

/// Polls `group` and, alongside it, `then` once `gate` is raised: the
/// release happens strictly after whatever raised the gate.
async fn run_with_release<G: Future>(
    group: G,
    gate: &AtomicBool,
    release: impl FnOnce(),
) -> G::Output {
    let releaser = async {
        while !gate.load(SeqCst) {
            yield_now().await;
        }
        // Give a group that does not wait for its tasks every chance to return.
        sleep(Duration::from_secs(1)).await;
        release();
    };
    let (output, ()) = tokio::join!(group, releaser);
    output
}

#[derive(Debug, PartialEq)]
struct GroupError(&'static str);

#[derive(Debug)]
struct TaskError;

// Waiting for tasks.

#[tokio::test(start_paused = true)]
async fn the_group_waits_for_a_spawned_task_that_outlives_its_branch() {
    let (release, released) = oneshot::channel::<()>();
    let task_done = leak(AtomicBool::new(false));
    let branch_returned = AtomicBool::new(false);
    let start = Instant::now();
    let group = async {
        let result = errgroup! {
            type Error = String;
            writer => {
                ctx.spawn("flush", async move {
                    released.await.expect("the test dropped the release");
                    task_done.store(true, SeqCst);
                    Ok::<_, String>(())
                })
                .map_err(|e| e.to_string())?;
                branch_returned.store(true, SeqCst);
                Ok(7)
            },
        };
        // Checked the moment the group returns.
        assert!(
            task_done.load(SeqCst),
            "the group returned before its spawned task finished"
        );
        result
    };
    let result = within_failsafe(
        "the group never returned",
        run_with_release(group, &branch_returned, || release.send(()).unwrap()),
    )
    .await;
    assert_eq!(result.unwrap(), (7,));
    assert_eq!(Instant::now() - start, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_task_spawned_from_a_spawned_task_is_also_waited_for() {
    let (release, released) = oneshot::channel::<()>();
    let grandchild_done = leak(AtomicBool::new(false));
    let child_returned = leak(AtomicBool::new(false));
    let group = async {
        let result = errgroup! {
            type Error = Cancelled;
            root => {
                let outer = ctx.clone();
                ctx.spawn("child", async move {
                    yield_now().await;
                    outer.spawn("grandchild", async move {
                        released.await.expect("the test dropped the release");
                        grandchild_done.store(true, SeqCst);
                        Ok::<_, Cancelled>(())
                    })?;
                    child_returned.store(true, SeqCst);
                    Ok::<_, Cancelled>(())
                })?;
                Ok(())
            },
        };
        assert!(
            grandchild_done.load(SeqCst),
            "the group returned before the grandchild task finished"
        );
        result
    };
    within_failsafe(
        "the group never returned",
        run_with_release(group, child_returned, || release.send(()).unwrap()),
    )
    .await
    .unwrap();
}

// Errors.

#[tokio::test(start_paused = true)]
async fn a_spawned_tasks_error_cancels_the_group_and_is_its_error_when_first() {
    let seen = OnceLock::new();
    let err = errgroup! {
        writer => {
            ctx.spawn(format!("flush{}", 1), async {
                sleep(Duration::from_secs(1)).await;
                Err(GroupError("disk full"))
            })
            .unwrap();
            ctx.cancelled().await;
            // Loses: the group is already cancelled.
            Err::<(), _>(GroupError("writer gave up"))
        },
        watcher => {
            ctx.cancelled().await;
            seen.set(ctx.cause()).unwrap();
            Ok(())
        },
    }
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "flush1");
    let cause = Cause::Failed {
        task: TaskName::from(String::from("flush1")),
    };
    assert_eq!(seen.get().unwrap(), &Some(cause));
    match err {
        Error::Failed { error, .. } => assert_eq!(error, GroupError("disk full")),
        other => panic!("expected the task's error, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_branch_error_before_a_task_error_stays_the_groups_error() {
    let err = errgroup! {
        spawner => {
            ctx.spawn("late", async {
                sleep(Duration::from_secs(2)).await;
                Err(GroupError("late task"))
            })
            .unwrap();
            Ok(())
        },
        fails => { sleep(Duration::from_secs(1)).await; Err::<(), _>(GroupError("branch first")) },
    }
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "fails");
    assert_eq!(err.into_inner(), Some(GroupError("branch first")));
}

#[tokio::test]
async fn after_cancellation_ctx_spawn_returns_cancelled_and_never_polls_the_future() {
    let polled = leak(AtomicBool::new(false));
    let refused = OnceLock::new();
    let stash: OnceLock<Ctx> = OnceLock::new();
    let err = errgroup! {
        fails => Err::<(), _>("boom"),
        late => {
            ctx.cancelled().await;
            stash.set(ctx.clone()).unwrap();
            let result = ctx.spawn("too_late", async {
                polled.store(true, SeqCst);
                Ok::<_, &str>(())
            });
            refused.set(result).unwrap();
            Ok(())
        },
    }
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "fails");
    let refused: Cancelled = refused.into_inner().unwrap().unwrap_err();
    assert_eq!(refused.cause(), &failed("fails"));

    // After the group has returned, too.
    let after = stash.get().unwrap().spawn("after", async {
        polled.store(true, SeqCst);
        Ok::<_, &str>(())
    });
    assert!(
        after.is_err(),
        "ctx.spawn accepted a task after the group returned"
    );
    for _ in 0..10 {
        yield_now().await;
    }
    assert!(!polled.load(SeqCst), "a refused task was polled");
}

#[tokio::test]
async fn a_task_with_another_error_type_panics_naming_both_types() {
    let result = within_failsafe(
        "the group never returned",
        catch_panic(async {
            errgroup! {
                type Error = GroupError;
                spawner => {
                    let _ = ctx.spawn("mismatch", async { Err::<(), _>(TaskError) });
                    Ok(())
                },
            }
        }),
    )
    .await;
    let payload = result.expect_err("a mismatched error type was accepted");
    let message = message(&*payload);
    assert!(message.contains("TaskError"), "{message}");
    assert!(message.contains("GroupError"), "{message}");
}

// Outer cancellation.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_group_future_aborts_its_spawned_tasks() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    let started = leak(Counter::default());
    let dropped = leak(Counter::default());
    let group = async {
        errgroup! {
            spawner => {
                for i in 0..3 {
                    ctx.spawn(format!("task{i}"), async {
                        let _guard = BumpOnDrop(dropped);
                        started.bump();
                        pending::<()>().await;
                        Ok::<_, ()>(())
                    })
                    .unwrap();
                }
                pending::<()>().await;
                Ok::<_, ()>(())
            },
        }
    };
    within_failsafe("the spawned tasks never started", async {
        tokio::select! {
            _ = group => panic!("the group cannot finish on its own"),
            () = started.reached(3) => {}
        }
    })
    .await;
    within_failsafe("the spawned tasks were never aborted", dropped.reached(3)).await;
    within_failsafe("the group left tasks alive", async {
        while metrics.num_alive_tasks() != baseline {
            yield_now().await;
        }
    })
    .await;
}

// The dynamic `Group`.

#[tokio::test(start_paused = true)]
async fn a_group_task_may_spawn_through_its_ctx_and_the_group_waits_for_it() {
    let (release, released) = oneshot::channel::<()>();
    let grandchild_done = leak(AtomicBool::new(false));
    let parent_returned = leak(AtomicBool::new(false));
    let mut group = Group::<GroupError>::new();
    group.spawn("parent", move |ctx| async move {
        ctx.spawn("child", async move {
            released.await.expect("the test dropped the release");
            grandchild_done.store(true, SeqCst);
            Ok::<_, GroupError>(())
        })
        .map_err(|_| GroupError("refused"))?;
        parent_returned.store(true, SeqCst);
        Ok(())
    });
    let wait = async {
        let result = group.wait().await;
        assert!(
            grandchild_done.load(SeqCst),
            "wait returned before the task spawned via ctx finished"
        );
        result
    };
    within_failsafe(
        "the group never returned",
        run_with_release(wait, parent_returned, || release.send(()).unwrap()),
    )
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_group_tasks_spawned_error_is_the_groups_error() {
    let mut group = Group::<GroupError>::new();
    group.spawn("parent", |ctx| async move {
        ctx.spawn("child", async { Err(GroupError("child failed")) })
            .map_err(|_| GroupError("refused"))?;
        ctx.cancelled().await;
        Ok(())
    });
    group.spawn("sibling", |ctx| async move {
        ctx.sleep(Duration::from_secs(3600))
            .await
            .map_err(|_| GroupError("sibling cancelled"))
    });
    let err = within_failsafe("the group never returned", group.wait())
        .await
        .unwrap_err();
    assert_eq!(err.task().unwrap(), "child");
    assert_eq!(err.into_inner(), Some(GroupError("child failed")));
}

#[tokio::test]
async fn a_group_task_spawning_with_another_error_type_panics_naming_both_types() {
    let mut group = Group::<GroupError>::new();
    group.spawn("parent", |ctx| async move {
        let _ = ctx.spawn("mismatch", async { Err::<(), _>(TaskError) });
        Ok(())
    });
    let result = within_failsafe("the group never returned", catch_panic(group.wait())).await;
    let payload = result.expect_err("a mismatched error type was accepted");
    let message = message(&*payload);
    assert!(message.contains("TaskError"), "{message}");
    assert!(message.contains("GroupError"), "{message}");
}

#[tokio::test]
async fn after_a_group_is_cancelled_its_ctx_spawn_starts_nothing() {
    let polled = leak(AtomicBool::new(false));
    let mut group = Group::<GroupError>::new();
    let ctx = group.ctx();
    group.spawn("fails", |_| async { Err(GroupError("boom")) });
    group.spawn("late", move |ctx| async move {
        ctx.cancelled().await;
        let refused = ctx.spawn("too_late", async {
            polled.store(true, SeqCst);
            Ok::<_, GroupError>(())
        });
        assert_eq!(refused.unwrap_err().cause(), &failed("fails"));
        Ok(())
    });
    let err = within_failsafe("the group never returned", group.wait())
        .await
        .unwrap_err();
    assert_eq!(err.task().unwrap(), "fails");
    assert!(
        ctx.spawn("after", async { Ok::<_, GroupError>(()) })
            .is_err(),
        "ctx.spawn accepted a task after wait returned"
    );
    yield_now().await;
    assert!(!polled.load(SeqCst), "a refused task was polled");
}
