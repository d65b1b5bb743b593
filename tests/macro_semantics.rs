//! Semantics 1-11 of the contract (the numbered list under "Semantics" in the
//! `errgroup!` rustdoc, runtime/lib.rs), on `errgroup!`.
//!
//! Ordering never relies on sleeping and hoping: tests run on tokio's paused
//! clock (time only moves when every task is idle, so a sleep is an exact
//! step) or synchronise explicitly (`Notify`, `Barrier`, counters). Waits
//! that could hang if the code were wrong are bounded by `FAILSAFE`, which
//! only ever turns a hang into a failure.

use std::cell::{Cell, RefCell};
use std::future::pending;
use std::panic::panic_any;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::thread::{self, ThreadId};
use std::time::Duration;

use errgroup::{Cancelled, Cause, Ctx, Error, Group, TaskName, errgroup};
use tokio::sync::{Barrier, Notify};
use tokio::task::yield_now;
use tokio::time::{Instant, sleep};

mod common;
use common::{
    BumpOnDrop, Counter, Gauge, SetOnDrop, catch_panic, failed, leak, spin_until, within_failsafe,
};

impl Gauge {
    /// An async branch body that stays active across several yields.
    async fn hold(&self) -> Result<(), String> {
        self.enter();
        for _ in 0..5 {
            yield_now().await;
        }
        self.exit();
        Ok(())
    }

    /// A synchronous branch body that stays active for a while.
    fn hold_blocking(&self) {
        self.enter();
        for _ in 0..1_000 {
            thread::yield_now();
        }
        self.exit();
    }
}

/// A panic payload no `panic!` message could be mistaken for.
#[derive(Debug, PartialEq)]
struct Payload(u32);

// 1. Concurrent start.

#[tokio::test(start_paused = true)]
async fn branches_start_concurrently_and_borrow_locals() {
    // Each branch waits at the barrier until all three are there: run one
    // after another, the first would wait forever (and the paused clock
    // would jump straight to the timeout).
    let barrier = Barrier::new(3);
    let name = String::from("errgroup");
    let mut lengths = Vec::new();
    let mut copies = Vec::new();
    let group = async {
        errgroup! {
            measure => { barrier.wait().await; lengths.push(name.len()); Ok::<_, ()>(1) },
            copy => { barrier.wait().await; copies.push(name.clone()); Ok(2) },
            third => { barrier.wait().await; Ok(3) },
        }
    };
    let values = tokio::time::timeout(Duration::from_secs(60), group)
        .await
        .expect("the branches never all waited at the barrier at once")
        .unwrap();
    assert_eq!(values, (1, 2, 3));
    assert_eq!(lengths, [8]);
    assert_eq!(copies, ["errgroup"]);
}

/// Raises `mine`, then holds this thread until `theirs` is raised: both
/// sides get through only if they run at the same time on two threads.
fn rendezvous(mine: &AtomicBool, theirs: &AtomicBool) {
    mine.store(true, SeqCst);
    spin_until("the other branch never ran at the same time", || {
        theirs.load(SeqCst)
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_branch_runs_in_parallel_on_a_worker_thread() {
    // The test body runs on the runtime's `block_on` thread, not a worker.
    let caller = thread::current().id();
    let here = leak(AtomicBool::new(false));
    let there = leak(AtomicBool::new(false));
    let (in_task, spawned) = errgroup! {
        in_task => {
            rendezvous(here, there);
            Ok::<_, ()>(thread::current().id())
        },
        #[spawn] spawned => {
            rendezvous(there, here);
            Ok(thread::current().id())
        },
    }
    .unwrap();
    assert_eq!(in_task, caller, "a plain branch runs in the calling task");
    assert_ne!(spawned, caller, "a #[spawn] branch runs on a worker");
}

#[tokio::test]
async fn blocking_branch_runs_on_the_blocking_pool_and_can_check_is_cancelled() {
    let caller = thread::current().id();
    let started = leak(Notify::new());
    let seen: &OnceLock<(ThreadId, Option<Cause>)> = leak(OnceLock::new());
    let err = within_failsafe("the group never returned", async {
        errgroup! {
            #[blocking] crunch => {
                started.notify_one();
                // Synchronous code holding its thread until the group is
                // cancelled: inline, it would starve `stop` forever.
                spin_until("the blocking body never saw the cancellation", || ctx.is_cancelled());
                seen.set((thread::current().id(), ctx.cause())).unwrap();
                Ok(())
            },
            stop => {
                started.notified().await;
                Err::<(), _>("stop")
            },
        }
    })
    .await
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "stop");
    let (thread, cause) = seen.get().unwrap();
    assert_ne!(
        *thread, caller,
        "a #[blocking] body runs on the blocking pool"
    );
    assert_eq!(*cause, Some(failed("stop")));
}

#[tokio::test]
async fn every_branch_starts_even_when_an_earlier_one_fails_at_once() {
    // `fails` returns on its first poll, before the driver polls the others
    // and (on this single thread) before the #[spawn] task is ever polled:
    // all of them were started with the group, so all of them run.
    let started = leak(Counter::default());
    let err = errgroup! {
        fails => Err::<(), _>("at once"),
        in_task => { started.bump(); Ok(()) },
        #[spawn] spawned => { started.bump(); Ok(()) },
        #[blocking] blocking => { started.bump(); Ok(()) },
    }
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "fails");
    assert_eq!(started.count.load(SeqCst), 3, "a branch never started");
}

// 2. First error wins.

#[tokio::test(start_paused = true)]
async fn first_error_by_time_wins_not_branch_order() {
    let start = Instant::now();
    let cause = Cell::new(None);
    let err = within_failsafe("the group never returned", async {
        errgroup! {
            // Listed first, fails second: it ignores the cancellation.
            one => { sleep(Duration::from_millis(20)).await; Err::<(), _>("one") },
            two => { sleep(Duration::from_millis(10)).await; Err::<(), _>("two") },
            observer => { ctx.cancelled().await; cause.set(ctx.cause()); Ok(()) },
        }
    })
    .await
    .unwrap_err();
    assert!(
        start.elapsed() >= Duration::from_millis(20),
        "the group returned before `one` did"
    );
    assert_eq!(err.task().unwrap(), "two");
    assert_eq!(err.into_inner(), Some("two"));
    assert_eq!(cause.take(), Some(failed("two")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_sibling_errors_never_replace_the_first() {
    // Every other branch fails only once it has seen the cancellation, on
    // every kind of branch, whatever thread it runs on.
    let err = within_failsafe("the group never returned", async {
        errgroup! {
            in_task => { ctx.cancelled().await; Err::<(), _>("in_task") },
            #[spawn] spawned => { ctx.cancelled().await; Err::<(), _>("spawned") },
            #[blocking] blocking => {
                spin_until("never cancelled", || ctx.is_cancelled());
                Err::<(), _>("blocking")
            },
            first => Err::<(), _>("first"),
        }
    })
    .await
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "first");
    assert_eq!(err.into_inner(), Some("first"));
}

#[tokio::test(start_paused = true)]
async fn ctx_cause_names_the_failed_task() {
    let seen = Cell::new(None);
    let err = within_failsafe("the group never returned", async {
        errgroup! {
            db => { yield_now().await; Err::<(), _>("connection refused") },
            observer => {
                let before = ctx.cause();
                ctx.cancelled().await;
                seen.set(Some((before, ctx.cause(), ctx.check())));
                Ok(())
            },
        }
    })
    .await
    .unwrap_err();
    let (before, after, check) = seen.take().unwrap();
    assert_eq!(before, None, "no cause while the group runs");
    assert_eq!(after, Some(failed("db")));
    assert_eq!(check.unwrap_err().cause(), &failed("db"));
    assert_eq!(err.cause(), failed("db"));
    assert_eq!(err.to_string(), "task `db` failed: connection refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctx_cause_names_a_failed_spawn_or_blocking_branch() {
    let seen = Cell::new(None);
    let err = within_failsafe("the group never returned", async {
        errgroup! {
            #[spawn] remote => Err::<(), _>("remote down"),
            observer => { ctx.cancelled().await; seen.set(ctx.cause()); Ok(()) },
        }
    })
    .await
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "remote");
    assert_eq!(seen.take(), Some(failed("remote")));

    let err = errgroup! {
        #[blocking] disk => Err::<(), _>("disk full"),
        observer => { ctx.cancelled().await; seen.set(ctx.cause()); Ok(()) },
    }
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "disk");
    assert_eq!(seen.take(), Some(failed("disk")));
}

// 3. Wait for all.

#[tokio::test(start_paused = true)]
async fn group_returns_only_after_every_branch_has_returned() {
    let start = Instant::now();
    let failing_done = AtomicBool::new(false);
    let lingering_done = AtomicBool::new(false);
    let spawned_done = leak(AtomicBool::new(false));
    let blocking_done = leak(AtomicBool::new(false));
    let err = within_failsafe("the group never returned", async {
        errgroup! {
            failing => { let _exit = SetOnDrop(&failing_done); Err::<(), _>("boom") },
            // Each of these keeps running a while after the cancellation.
            lingering => {
                let _exit = SetOnDrop(&lingering_done);
                ctx.cancelled().await;
                sleep(Duration::from_secs(5)).await;
                Ok(())
            },
            #[spawn] spawned => {
                let _exit = SetOnDrop(spawned_done);
                ctx.cancelled().await;
                sleep(Duration::from_secs(5)).await;
                Ok(())
            },
            #[blocking] blocking => {
                let _exit = SetOnDrop(blocking_done);
                spin_until("never cancelled", || ctx.is_cancelled());
                thread::sleep(Duration::from_millis(50));
                Ok(())
            },
        }
    })
    .await
    .unwrap_err();
    // Read right after the group returned: every branch already had.
    assert!(failing_done.load(SeqCst));
    assert!(lingering_done.load(SeqCst), "in-task branch still running");
    assert!(spawned_done.load(SeqCst), "#[spawn] branch still running");
    assert!(
        blocking_done.load(SeqCst),
        "#[blocking] branch still running"
    );
    assert!(start.elapsed() >= Duration::from_secs(5));
    assert_eq!(err.task().unwrap(), "failing");
}

#[tokio::test(start_paused = true)]
async fn group_waits_for_every_branch_on_success_too() {
    let slow_done = AtomicBool::new(false);
    let spawned_done = leak(AtomicBool::new(false));
    let (fast, slow, spawned) = within_failsafe("the group never returned", async {
        errgroup! {
            fast => Ok::<_, ()>(1),
            slow => {
                let _exit = SetOnDrop(&slow_done);
                sleep(Duration::from_secs(3)).await;
                Ok(2)
            },
            #[spawn] spawned => {
                let _exit = SetOnDrop(spawned_done);
                sleep(Duration::from_secs(4)).await;
                Ok(3)
            },
        }
    })
    .await
    .unwrap();
    assert_eq!((fast, slow, spawned), (1, 2, 3));
    assert!(slow_done.load(SeqCst) && spawned_done.load(SeqCst));
}

// 4. Outer cancellation.

#[tokio::test(start_paused = true)]
async fn dropping_the_group_future_drops_every_in_task_branch_before_the_drop_returns() {
    let first_dropped = AtomicBool::new(false);
    let second_dropped = AtomicBool::new(false);
    let nested_dropped = AtomicBool::new(false);
    let stash = OnceLock::new();
    let outcome = tokio::time::timeout(Duration::from_secs(1), async {
        errgroup! {
            first => {
                let _guard = SetOnDrop(&first_dropped);
                stash.set(ctx.clone()).unwrap();
                pending::<()>().await;
                Ok::<_, ()>(())
            },
            second => {
                let _guard = SetOnDrop(&second_dropped);
                ctx.sleep(Duration::from_secs(3600)).await.ok();
                Ok(())
            },
            nested => {
                let inner = errgroup! {
                    deep => {
                        let _guard = SetOnDrop(&nested_dropped);
                        pending::<()>().await;
                        Ok::<_, ()>(())
                    },
                };
                inner.map_err(drop)?;
                Ok(())
            },
        }
    })
    .await;
    assert!(outcome.is_err(), "the group cannot finish on its own");
    // Checked at once: the drop of the group future has returned.
    assert!(first_dropped.load(SeqCst));
    assert!(second_dropped.load(SeqCst));
    assert!(nested_dropped.load(SeqCst), "a nested group's branches too");
    assert_eq!(stash.get().unwrap().cause(), Some(Cause::Dropped));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_group_future_aborts_every_spawn_branch() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    let started = leak(Counter::default());
    let dropped = leak(Counter::default());
    let local_dropped = AtomicBool::new(false);
    let group = async {
        errgroup! {
            #[spawn] first => {
                let _guard = BumpOnDrop(dropped);
                started.bump();
                pending::<()>().await;
                Ok::<_, ()>(())
            },
            #[spawn] second => {
                let _guard = BumpOnDrop(dropped);
                started.bump();
                pending::<()>().await;
                Ok(())
            },
            local => {
                let _guard = SetOnDrop(&local_dropped);
                pending::<()>().await;
                Ok(())
            },
        }
    };
    within_failsafe("the #[spawn] branches never started", async {
        tokio::select! {
            _ = group => panic!("the group cannot finish on its own"),
            () = started.reached(2) => {}
        }
    })
    .await;
    assert!(local_dropped.load(SeqCst), "in-task branch not dropped");
    within_failsafe(
        "the #[spawn] branches were never aborted",
        dropped.reached(2),
    )
    .await;
    within_failsafe("the group left tasks alive", async {
        while metrics.num_alive_tasks() != baseline {
            yield_now().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_group_future_cancels_the_ctx_of_its_blocking_branches() {
    let started = leak(Counter::default());
    let finished = leak(Counter::default());
    let seen = leak(OnceLock::new());
    let group = async {
        errgroup! {
            #[blocking] crunch => {
                started.bump();
                spin_until("the blocking body never saw the drop", || ctx.is_cancelled());
                seen.set(ctx.cause()).unwrap();
                finished.bump();
                Ok::<_, ()>(())
            },
        }
    };
    within_failsafe("the blocking body never started", async {
        tokio::select! {
            _ = group => panic!("the group cannot finish on its own"),
            () = started.reached(1) => {}
        }
    })
    .await;
    within_failsafe("the blocking body never returned", finished.reached(1)).await;
    assert_eq!(seen.get().unwrap(), &Some(Cause::Dropped));
}

// 5. Deadlines and parents.

#[tokio::test(start_paused = true)]
async fn timeout_cancels_the_group_with_cause_deadline_exceeded() {
    let start = Instant::now();
    let err = errgroup! {
        timeout = Duration::from_secs(10);
        type Error = Cancelled;
        quick => Ok(1),
        slow => { ctx.sleep(Duration::from_secs(3600)).await?; Ok(2) },
    }
    .unwrap_err();
    let elapsed = start.elapsed();
    assert!(
        (Duration::from_secs(10)..Duration::from_secs(11)).contains(&elapsed),
        "{elapsed:?}"
    );
    assert!(err.is_cancelled());
    assert!(err.task().is_none());
    assert!(matches!(&err, Error::Cancelled(c) if *c.cause() == Cause::DeadlineExceeded));
}

#[tokio::test(start_paused = true)]
async fn timeout_still_gives_ok_when_every_branch_returns_ok_after_the_deadline() {
    let (cause, woke_early) = within_failsafe("the group never returned", async {
        errgroup! {
            timeout = Duration::from_secs(1);
            watcher => { ctx.cancelled().await; Ok::<_, Cancelled>(ctx.cause()) },
            sleeper => Ok(ctx.sleep(Duration::from_secs(3600)).await.is_err()),
        }
    })
    .await
    .unwrap();
    assert_eq!(cause, Some(Cause::DeadlineExceeded));
    assert!(woke_early);
}

#[tokio::test(start_paused = true)]
async fn deadline_header_takes_an_instant() {
    let start = Instant::now();
    let at = start + Duration::from_secs(3);
    let seen = Cell::new(None);
    let err = errgroup! {
        deadline = at;
        type Error = Cancelled;
        waiter => {
            seen.set(ctx.deadline());
            ctx.sleep(Duration::from_secs(3600)).await?;
            Ok(())
        },
    }
    .unwrap_err();
    assert_eq!(seen.get(), Some(at));
    assert_eq!(err.cause(), Cause::DeadlineExceeded);
    assert!((Duration::from_secs(3)..Duration::from_secs(4)).contains(&start.elapsed()));
}

/// Semantic 1 holds in a group born cancelled too: its written branches
/// start and see the passed deadline.
#[tokio::test(start_paused = true)]
async fn a_deadline_already_passed_still_starts_the_branches() {
    let ran = AtomicBool::new(false);
    let err = errgroup! {
        deadline = Instant::now();
        body => { ran.store(true, SeqCst); ctx.check() },
    }
    .unwrap_err();
    assert!(ran.load(SeqCst));
    assert_eq!(err.cause(), Cause::DeadlineExceeded);
}

#[tokio::test(start_paused = true)]
async fn an_error_before_the_deadline_wins_over_the_deadline() {
    let err = errgroup! {
        timeout = Duration::from_secs(10);
        early => { sleep(Duration::from_secs(1)).await; Err::<(), _>("early") },
        // Still running when the deadline passes.
        late => { ctx.cancelled().await; sleep(Duration::from_secs(20)).await; Ok(()) },
    }
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "early");
}

#[tokio::test(start_paused = true)]
async fn parent_header_cancels_the_group_with_cause_parent() {
    // A parent with no relation to where the group is written.
    let mut supervisor = Group::new();
    let parent = supervisor.ctx();
    let go = leak(Notify::new());
    supervisor.spawn("shutdown", move |_| async move {
        go.notified().await;
        Err("shutting down")
    });
    let seen = Cell::new(None);
    let err = within_failsafe("the group never returned", async {
        errgroup! {
            parent = &parent;
            watcher => { go.notify_one(); ctx.cancelled().await; seen.set(ctx.cause()); Ok(()) },
            worker => { ctx.sleep(Duration::from_secs(3600)).await?; Ok::<_, Cancelled>(()) },
        }
    })
    .await
    .unwrap_err();
    let from_parent = Cause::Parent(Box::new(failed("shutdown")));
    assert_eq!(seen.take(), Some(from_parent.clone()));
    assert!(err.is_cancelled(), "no branch of this group failed first");
    assert_eq!(err.cause(), from_parent);
    assert_eq!(
        supervisor.wait().await.unwrap_err().task().unwrap(),
        "shutdown"
    );
}

// 6. Nesting is automatic.

#[tokio::test(start_paused = true)]
async fn nested_groups_inherit_cancellation_without_a_parent_header() {
    let inner_started = Notify::new();
    let inner_result = RefCell::new(None);
    // Boxed: two nested groups make a large future (clippy::large_futures).
    let err = within_failsafe("the group never returned", Box::pin(async {
        errgroup! {
            outer_fails => { inner_started.notified().await; Err::<(), _>("outer") },
            holder => {
                let inner = errgroup! {
                    deep => { inner_started.notify_one(); ctx.cancelled().await; Ok::<_, &str>(()) },
                    stuck => { ctx.cancelled().await; Err::<(), _>("stuck") },
                };
                *inner_result.borrow_mut() = Some(inner);
                Ok(())
            },
        }
    }))
    .await
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "outer_fails");
    let inner = inner_result.into_inner().unwrap().unwrap_err();
    assert!(
        inner.is_cancelled(),
        "the inner failure came after the cancellation"
    );
    assert_eq!(
        inner.cause(),
        Cause::Parent(Box::new(failed("outer_fails")))
    );
}

#[tokio::test(start_paused = true)]
async fn nested_groups_inherit_inside_spawn_branches_too() {
    let started = leak(Counter::default());
    let seen = leak(OnceLock::new());
    let err = within_failsafe("the group never returned", async {
        errgroup! {
            outer_fails => { started.reached(1).await; Err::<(), _>("outer") },
            #[spawn] holder => {
                let inner = errgroup! {
                    deep => { started.bump(); ctx.cancelled().await; Ok::<_, ()>(ctx.cause()) },
                };
                seen.set(inner.unwrap().0).unwrap();
                Ok(())
            },
        }
    })
    .await
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "outer_fails");
    let from_outer = Cause::Parent(Box::new(failed("outer_fails")));
    assert_eq!(seen.get().unwrap(), &Some(from_outer));
}

#[tokio::test(start_paused = true)]
async fn a_dynamic_group_created_in_a_branch_is_a_child_of_that_group() {
    let started = leak(Counter::default());
    let seen = leak(OnceLock::new());
    let err = within_failsafe("the group never returned", async {
        errgroup! {
            outer_fails => { started.reached(1).await; Err::<(), _>("outer") },
            holder => {
                let mut group = Group::<()>::new();
                group.spawn("child", move |ctx| async move {
                    started.bump();
                    ctx.cancelled().await;
                    seen.set(ctx.cause()).unwrap();
                    Ok(())
                });
                group.wait().await.map_err(|_| "child group failed")?;
                Ok(())
            },
        }
    })
    .await
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "outer_fails");
    let from_outer = Cause::Parent(Box::new(failed("outer_fails")));
    assert_eq!(seen.get().unwrap(), &Some(from_outer));
}

#[tokio::test(start_paused = true)]
async fn parent_header_overrides_the_automatic_parent() {
    let mut other = Group::<&str>::new();
    let other_ctx = other.ctx();
    let release = leak(Notify::new());
    other.spawn("other_task", move |_| async move {
        release.notified().await;
        Err("other")
    });
    let started = Notify::new();
    let inner_ctx = OnceLock::<Ctx>::new();
    let cancelled_with_outer = Cell::new(None);
    let inner_result = RefCell::new(None);
    // Boxed: two nested groups make a large future (clippy::large_futures).
    let err = within_failsafe(
        "the group never returned",
        Box::pin(async {
            errgroup! {
                outer_fails => { started.notified().await; Err::<(), _>("outer") },
                checker => {
                    ctx.cancelled().await;
                    // Cancellation reaches children synchronously: a child of the
                    // outer group would already be cancelled here.
                    cancelled_with_outer.set(Some(inner_ctx.get().unwrap().is_cancelled()));
                    release.notify_one();
                    Ok(())
                },
                holder => {
                    let inner = errgroup! {
                        parent = &other_ctx;
                        deep => {
                            inner_ctx.set(ctx.clone()).unwrap();
                            started.notify_one();
                            ctx.cancelled().await;
                            Ok::<_, &str>(ctx.cause())
                        },
                    };
                    *inner_result.borrow_mut() = Some(inner);
                    Ok(())
                },
            }
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "outer_fails");
    assert_eq!(cancelled_with_outer.take(), Some(false));
    let (cause,) = inner_result.into_inner().unwrap().unwrap();
    assert_eq!(cause, Some(Cause::Parent(Box::new(failed("other_task")))));
    assert_eq!(
        other.wait().await.unwrap_err().task().unwrap(),
        "other_task"
    );
}

#[tokio::test]
async fn an_inner_failure_does_not_cancel_the_outer_group() {
    let ((inner_failed, outer_cancelled),) = errgroup! {
        holder => {
            let inner = errgroup! { bad => Err::<(), _>("inner") };
            Ok::<_, ()>((inner.is_err(), ctx.is_cancelled()))
        },
    }
    .unwrap();
    assert!(inner_failed);
    assert!(!outer_cancelled);
}

// 7. Panics.

#[tokio::test(start_paused = true)]
async fn a_panic_resumes_in_the_caller_with_its_original_payload_after_siblings_returned() {
    let sibling_done = leak(AtomicBool::new(false));
    let sibling_saw = leak(OnceLock::new());
    let joined = within_failsafe(
        "the group never returned",
        tokio::spawn(async move {
            errgroup! {
                boom => {
                    yield_now().await;
                    if std::hint::black_box(true) {
                        panic_any(Payload(7));
                    }
                    Ok::<_, ()>(())
                },
                sibling => {
                    ctx.cancelled().await;
                    sibling_saw.set(ctx.cause()).unwrap();
                    sleep(Duration::from_secs(1)).await; // still running after the panic
                    sibling_done.store(true, SeqCst);
                    Ok(())
                },
            }
        }),
    )
    .await;
    let payload = joined.unwrap_err().into_panic();
    assert_eq!(payload.downcast_ref::<Payload>(), Some(&Payload(7)));
    assert!(
        sibling_done.load(SeqCst),
        "the panic resumed before the sibling returned"
    );
    let panicked = Cause::Panicked {
        task: TaskName::new("boom"),
    };
    assert_eq!(sibling_saw.get().unwrap(), &Some(panicked));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_in_spawn_and_blocking_branches_resume_with_their_payload() {
    let spawned = within_failsafe(
        "the group never returned",
        catch_panic(async {
            errgroup! {
                #[spawn] boom => {
                    if std::hint::black_box(true) {
                        panic_any(Payload(1));
                    }
                    Ok::<_, ()>(())
                },
                waiter => { ctx.cancelled().await; Ok(()) },
            }
        }),
    )
    .await;
    let payload = spawned.unwrap_err();
    assert_eq!(payload.downcast_ref::<Payload>(), Some(&Payload(1)));

    let blocking = within_failsafe(
        "the group never returned",
        catch_panic(async {
            errgroup! {
                #[blocking] boom => {
                    if std::hint::black_box(true) {
                        panic_any(Payload(2));
                    }
                    Ok::<_, ()>(())
                },
                waiter => { ctx.cancelled().await; Ok(()) },
            }
        }),
    )
    .await;
    let payload = blocking.unwrap_err();
    assert_eq!(payload.downcast_ref::<Payload>(), Some(&Payload(2)));
}

// 8. Limits.

#[tokio::test]
async fn limit_never_lets_a_third_branch_run_at_once() {
    let gauge = Gauge::default();
    let result = errgroup! {
        limit = 2;
        a => gauge.hold().await,
        b => gauge.hold().await,
        c => gauge.hold().await,
        d => gauge.hold().await,
        e => gauge.hold().await,
        f => gauge.hold().await,
    };
    result.unwrap();
    assert_eq!(gauge.entered.load(SeqCst), 6);
    assert_eq!(gauge.peak.load(SeqCst), 2, "two at once, never three");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_applies_to_spawn_and_blocking_branches_too() {
    let gauge = leak(Gauge::default());
    let result = errgroup! {
        limit = 2;
        #[spawn] s1 => gauge.hold().await,
        #[spawn] s2 => gauge.hold().await,
        #[spawn] s3 => gauge.hold().await,
        #[blocking] b1 => { gauge.hold_blocking(); Ok(()) },
        #[blocking] b2 => { gauge.hold_blocking(); Ok(()) },
        #[blocking] b3 => { gauge.hold_blocking(); Ok(()) },
        local => gauge.hold().await,
    };
    result.unwrap();
    assert_eq!(gauge.entered.load(SeqCst), 7);
    assert!(
        gauge.peak.load(SeqCst) <= 2,
        "peak {}",
        gauge.peak.load(SeqCst)
    );
}

#[tokio::test]
async fn a_branch_waiting_for_a_limit_slot_never_starts_after_cancellation() {
    let ran = AtomicBool::new(false);
    let err = errgroup! {
        limit = 1;
        fails => { yield_now().await; Err::<(), _>("boom") },
        queued => { ran.store(true, SeqCst); Ok(()) },
    }
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "fails");
    assert!(
        !ran.load(SeqCst),
        "a queued branch started after the cancellation"
    );
}

// 10. Supervisor mode.

#[tokio::test(start_paused = true)]
async fn on_error_continue_returns_each_result_and_cancels_nothing() {
    let (a, b, c, d) = within_failsafe("the group never returned", async {
        errgroup! {
            on_error = continue;
            a => Err::<u32, _>("a failed"),
            // Looks after both failures.
            b => { sleep(Duration::from_secs(1)).await; Ok(ctx.cause()) },
            #[spawn] c => Err::<(), _>("c failed"),
            #[blocking] d => Ok(ctx.is_cancelled()),
        }
    })
    .await
    .unwrap();
    assert_eq!(a, Err("a failed"));
    assert_eq!(b, Ok(None), "a failure cancelled the group");
    assert_eq!(c, Err("c failed"));
    assert_eq!(d, Ok(false));
}

// 11. The nearest `ctx` wins.

#[tokio::test]
async fn the_nearest_ctx_wins_in_nested_groups() {
    let ((outer_before, inner, outer_after),) = errgroup! {
        outer => {
            let before = ctx.task().to_string();
            let (inner,) = errgroup! {
                inner => Ok::<_, ()>(ctx.task().to_string()),
            }
            .unwrap();
            Ok::<_, ()>((before, inner, ctx.task().to_string()))
        },
    }
    .unwrap();
    assert_eq!(outer_before, "outer");
    assert_eq!(inner, "inner");
    assert_eq!(outer_after, "outer");
}

// What the block evaluates to.

#[derive(Debug)]
enum AppError {
    Parse(std::num::ParseIntError),
    Cancelled,
}

impl From<std::num::ParseIntError> for AppError {
    fn from(e: std::num::ParseIntError) -> Self {
        AppError::Parse(e)
    }
}

impl From<Cancelled> for AppError {
    fn from(_: Cancelled) -> Self {
        AppError::Cancelled
    }
}

#[tokio::test]
async fn type_error_header_fixes_the_error_type_for_question_marks() {
    // No branch names its error type: only the header fixes it.
    let (n, m) = errgroup! {
        type Error = AppError;
        n => { let n: u32 = "42".parse()?; Ok(n) },
        m => { ctx.check()?; Ok(1u8) },
    }
    .unwrap();
    assert_eq!((n, m), (42, 1));

    let err = errgroup! {
        type Error = AppError;
        bad => { let n: u32 = "forty-two".parse()?; Ok(n) },
    }
    .unwrap_err();
    match err {
        Error::Failed {
            task,
            error: AppError::Parse(e),
        } => {
            assert_eq!(task, "bad");
            assert_eq!(e.to_string(), "invalid digit found in string");
        }
        other => panic!("expected the parse error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_one_branch_group_gives_a_one_tuple() {
    let result: Result<(u8,), Error<()>> = errgroup! { only => Ok::<_, ()>(7) };
    assert_eq!(result.unwrap(), (7,));
}

#[tokio::test(start_paused = true)]
async fn values_come_back_in_branch_order_not_completion_order() {
    let values = errgroup! {
        a => { sleep(Duration::from_secs(3)).await; Ok::<_, ()>("a") },
        b => { sleep(Duration::from_secs(2)).await; Ok("b") },
        #[spawn] c => { sleep(Duration::from_secs(1)).await; Ok("c") },
        d => Ok("d"),
    }
    .unwrap();
    assert_eq!(values, ("a", "b", "c", "d"));
}

#[tokio::test]
async fn all_three_delimiters_are_accepted() {
    let braces = errgroup! { a => Ok::<_, ()>(1) };
    let parens = errgroup!( a => Ok::<_, ()>(2) );
    let brackets = errgroup![a => Ok::<_, ()>(3)];
    assert_eq!(
        (braces.unwrap(), parens.unwrap(), brackets.unwrap()),
        ((1,), (2,), (3,))
    );
}
