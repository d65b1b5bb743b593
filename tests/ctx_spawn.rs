//! `ctx.spawn(name, fut)`: a `'static` task the group waits for, whose error is the group's, that starts nothing after cancellation and dies with the group; on `errgroup!` and on the dynamic `Group`. In a branch, `ctx` is a `BranchCtx<E>`: its `spawn` and `spawn_with` take tasks of the group's error type only, and it passes wherever a `&Ctx` did.
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
use common::{BumpOnDrop, Counter, failed, leak, within_failsafe};

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
            // The test's own release, a raw oneshot, named in the branch.
            #[allow(raw_channel)] writer => {
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
            // The test's own release, a raw oneshot, named in the branch.
            #[allow(raw_channel)] root => {
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

/// In a branch `ctx.spawn` takes only the group's error type (tests/ui has
/// the compile error); an untyped `Ctx` (a clone) still takes any, and a
/// failure of another type stops the group as a cause, without a panic.
#[tokio::test]
async fn an_untyped_task_of_another_error_type_cancels_the_group_naming_it() {
    let result = within_failsafe("the group never returned", async {
        errgroup! {
            type Error = GroupError;
            spawner => {
                let untyped: Ctx = ctx.clone();
                untyped.spawn("mismatch", async { Err::<(), _>(TaskError) }).unwrap();
                ctx.cancelled().await;
                Ok(())
            },
        }
    })
    .await;
    match result {
        Err(Error::Cancelled(cancelled)) => assert_eq!(cancelled.cause(), &failed("mismatch")),
        other => panic!("expected the cancellation naming the task, got {other:?}"),
    }
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
async fn a_group_task_spawning_with_another_error_type_cancels_the_group_naming_it() {
    let mut group = Group::<GroupError>::new();
    group.spawn("parent", |ctx| async move {
        let _ = ctx.spawn("mismatch", async { Err::<(), _>(TaskError) });
        Ok(())
    });
    let result = within_failsafe("the group never returned", group.wait()).await;
    match result {
        Err(Error::Cancelled(cancelled)) => assert_eq!(cancelled.cause(), &failed("mismatch")),
        other => panic!("expected the cancellation naming the task, got {other:?}"),
    }
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

// The typed ctx of a branch: `ctx` is a `&BranchCtx<E>`, whose
// `spawn` takes a task of the group's error type `E`, so that its `Ok(())`
// needs no annotation (each test below compiled only with a turbofish
// before), and which passes wherever the `&Ctx` it replaced did.

impl From<TaskError> for GroupError {
    fn from(TaskError: TaskError) -> Self {
        GroupError("converted")
    }
}

/// A step of a task that fails with another error than the group's: `?`
/// converts it with `From`, as in a branch.
fn task_step() -> Result<(), TaskError> {
    Err(TaskError)
}

/// The group failed because the task `task` did, with the converted error.
fn assert_failed_by_converted<T: std::fmt::Debug>(
    result: Result<T, Error<GroupError>>,
    task: &str,
) {
    match result {
        Err(Error::Failed { task: by, error }) => {
            assert_eq!(by, task);
            assert_eq!(error, GroupError("converted"));
        }
        other => panic!("expected task `{task}`'s converted error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_in_task_branch_spawns_a_task_of_the_groups_error_type() {
    let result = errgroup! {
        type Error = GroupError;
        spawner => {
            ctx.spawn("task", async { task_step()?; Ok(()) }).unwrap();
            ctx.cancelled().await;
            Ok(())
        },
    };
    assert_failed_by_converted(result, "task");
}

#[tokio::test]
async fn the_tasks_error_type_is_inferred_with_the_groups() {
    // No header: `E` comes from the other branch, after the spawn.
    let result = errgroup! {
        spawner => {
            ctx.spawn("task", async { task_step()?; Ok(()) }).unwrap();
            ctx.cancelled().await;
            Ok(())
        },
        other => { ctx.cancelled().await; Err::<(), _>(GroupError("other")) },
    };
    assert_failed_by_converted(result, "task");
}

#[tokio::test]
async fn a_spawn_branch_spawns_a_task_of_the_groups_error_type() {
    let result = errgroup! {
        type Error = GroupError;
        #[spawn] spawner => {
            ctx.spawn("task", async { task_step()?; Ok(()) }).unwrap();
            ctx.cancelled().await;
            Ok(())
        },
    };
    assert_failed_by_converted(result, "task");
}

#[tokio::test]
async fn a_blocking_branch_spawns_a_task_of_the_groups_error_type() {
    let result = errgroup! {
        type Error = GroupError;
        #[blocking] spawner => {
            ctx.spawn("task", async { task_step()?; Ok(()) }).unwrap();
            Ok(())
        },
    };
    assert_failed_by_converted(result, "task");
}

#[tokio::test]
async fn fan_out_items_spawn_tasks_of_the_groups_error_type() {
    let in_task = errgroup! {
        type Error = GroupError;
        items => for i in 0..3 {
            ctx.spawn(format!("task{i}"), async move {
                if i == 1 {
                    task_step()?;
                }
                Ok(())
            })
            .unwrap();
            ctx.cancelled().await;
            Ok(())
        },
    };
    assert_failed_by_converted(in_task, "task1");
    let spawned = errgroup! {
        type Error = GroupError;
        #[spawn] items => for i in 0..3 {
            ctx.spawn(format!("task{i}"), async move {
                if i == 2 {
                    task_step()?;
                }
                Ok(())
            })
            .unwrap();
            ctx.cancelled().await;
            Ok(())
        },
    };
    assert_failed_by_converted(spawned, "task2");
    let blocking = errgroup! {
        type Error = GroupError;
        #[blocking] items => for i in 0..3 {
            let spawned = ctx.spawn(format!("task{i}"), async move {
                if i == 0 {
                    task_step()?;
                }
                Ok(())
            });
            // Blocking items run on threads of their own: `task0` may have
            // failed, cancelling the group, before a later item spawns, and
            // then that spawn is refused.
            assert!(spawned.is_ok() || ctx.is_cancelled());
            Ok(())
        },
    };
    assert_failed_by_converted(blocking, "task0");
}

#[tokio::test]
async fn supervised_branches_spawn_tasks_of_the_groups_error_type() {
    let ran = leak(Counter::default());
    let (plain, blocking, items) = errgroup! {
        on_error = continue;
        plain => {
            ctx.spawn("plain_task", async { ran.bump(); Ok(()) }).unwrap();
            Err::<(), _>(GroupError("plain"))
        },
        #[blocking] blocking => {
            ctx.spawn("blocking_task", async { ran.bump(); Ok(()) }).unwrap();
            Ok(())
        },
        #[spawn] items => for i in 0..2 {
            ctx.spawn(format!("item_task{i}"), async { ran.bump(); Ok(()) }).unwrap();
            Ok(i)
        },
    }
    .unwrap();
    assert_eq!(plain, Err(GroupError("plain")));
    assert_eq!(blocking, Ok(()));
    assert_eq!(items, [Ok(0), Ok(1)]);
    assert_eq!(ran.get(), 4, "the group returned before its tasks ran");
}

#[tokio::test]
async fn spawn_with_gives_the_task_its_own_typed_ctx() {
    let child_name = leak(OnceLock::new());
    let result = errgroup! {
        type Error = GroupError;
        parent => {
            ctx.spawn_with("child", |ctx| async move {
                child_name.set(ctx.task().to_string()).unwrap();
                // Typed too: the grandchild's `?` converts into the group's error.
                ctx.spawn("grandchild", async { task_step()?; Ok(()) }).unwrap();
                Ok(())
            })
            .unwrap();
            Ok(())
        },
    };
    assert_failed_by_converted(result, "grandchild");
    assert_eq!(child_name.get().unwrap(), "child");
}

#[tokio::test]
async fn spawn_with_after_cancellation_starts_nothing_and_never_calls_make() {
    let called = leak(AtomicBool::new(false));
    let err = errgroup! {
        fails => Err::<(), _>(GroupError("boom")),
        late => {
            ctx.cancelled().await;
            let refused = ctx.spawn_with("too_late", |_| {
                called.store(true, SeqCst);
                async { Ok(()) }
            });
            assert_eq!(refused.unwrap_err().cause(), &failed("fails"));
            Ok(())
        },
    }
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "fails");
    assert!(!called.load(SeqCst), "make ran for a refused task");
}

fn name_of(ctx: &Ctx) -> String {
    ctx.task().to_string()
}

fn owned(ctx: Ctx) -> Ctx {
    ctx
}

async fn wait_for(ctx: &Ctx) -> Option<Cause> {
    ctx.cancelled().await;
    ctx.cause()
}

#[tokio::test]
#[allow(
    clippy::needless_borrow,
    reason = "`&ctx` is written in the wild (the crate's own first example), and must still pass"
)]
async fn a_branchs_ctx_passes_where_a_ctx_did() {
    let ((names, cause), ()) = errgroup! {
        type Error = GroupError;
        helpers => {
            let cloned: Ctx = ctx.clone();
            let as_ctx: &Ctx = ctx;
            let names = [
                name_of(ctx),
                name_of(&ctx),
                owned(ctx.clone()).task().to_string(),
                owned(Ctx::clone(ctx)).task().to_string(),
                cloned.task().to_string(),
                as_ctx.task().to_string(),
            ];
            let cause = wait_for(ctx).await;
            // The clone is the branch's ctx: cancelled with its group.
            assert_eq!(cloned.cause(), cause);
            Ok((names, cause))
        },
        stop => { ctx.shutdown(); Ok(()) },
    }
    .unwrap();
    assert_eq!(names, ["helpers"; 6]);
    assert!(cause.unwrap().is_shutdown());
}

#[tokio::test]
async fn a_branchs_ctx_is_a_parent_as_a_ctx_was() {
    let waiting = leak(Counter::default());
    let (causes, ()) = errgroup! {
        type Error = GroupError;
        outer => {
            let outer_ctx = ctx;
            // Inside `middle`, the ambient parent would be `middle`'s group:
            // the causes show that each nested group took `outer_ctx`'s.
            let (causes,) = errgroup! {
                middle => {
                    let by_ref = async {
                        errgroup! {
                            parent = outer_ctx;
                            leaf => { waiting.bump(); Ok::<_, GroupError>(wait_for(ctx).await) },
                        }
                    };
                    let by_ref_ref = async {
                        errgroup! {
                            parent = &outer_ctx;
                            leaf => { waiting.bump(); Ok::<_, GroupError>(wait_for(ctx).await) },
                        }
                    };
                    let from_group = async {
                        let mut group = Group::<GroupError>::with_parent(outer_ctx)
                            .returning::<Option<Cause>>();
                        group.spawn("leaf", |ctx| async move {
                            waiting.bump();
                            Ok(wait_for(&ctx).await)
                        });
                        group.wait_all().await
                    };
                    let (a, b, c) = tokio::join!(by_ref, by_ref_ref, from_group);
                    Ok::<_, Error<GroupError>>([a?.0, b?.0, c?.pop().unwrap()])
                },
            }
            .map_err(|_| GroupError("nested"))?;
            Ok(causes)
        },
        stop => { waiting.reached(3).await; ctx.shutdown(); Ok(()) },
    }
    .unwrap();
    let by_stop = Cause::Parent(Box::new(Cause::Shutdown {
        by: TaskName::new("stop"),
    }));
    assert_eq!(
        causes,
        [Some(by_stop.clone()), Some(by_stop.clone()), Some(by_stop)]
    );
}

#[tokio::test]
async fn a_branchs_ctx_prints_as_a_ctx() {
    let (printed, plain) = errgroup! {
        type Error = GroupError;
        branch => {
            let printed = format!("{ctx:?}");
            let plain = format!("{:?}", ctx.clone());
            Ok((printed, plain))
        },
    }
    .unwrap()
    .0;
    assert_eq!(printed, plain);
    assert!(printed.starts_with("Ctx { task: "), "{printed}");
}

#[test]
fn a_branch_ctx_is_send_and_sync_whatever_its_error_type() {
    fn send_sync<T: Send + Sync + 'static>() {}
    // `Rc` is neither: the ctx holds no `E`.
    send_sync::<errgroup::BranchCtx<std::rc::Rc<()>>>();
}

#[tokio::test]
async fn an_untyped_task_of_another_error_type_that_succeeds_changes_nothing() {
    let (value,) = errgroup! {
        type Error = GroupError;
        spawner => {
            Ctx::clone(ctx)
                .spawn("other", async { Ok::<(), TaskError>(()) })
                .unwrap();
            Ok(7)
        },
    }
    .unwrap();
    assert_eq!(value, 7);
}

#[tokio::test]
async fn a_branch_failure_before_an_untyped_task_of_another_error_type_stays_the_error() {
    let err = errgroup! {
        spawner => {
            let untyped = ctx.clone();
            let watch = ctx.clone();
            untyped.spawn("other", async move {
                watch.cancelled().await;
                Err::<(), _>(TaskError)
            })
            .unwrap();
            Err::<(), _>(GroupError("first"))
        },
    }
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "spawner");
    assert_eq!(err.into_inner(), Some(GroupError("first")));
}
