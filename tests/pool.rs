//! `Pool`: a set of a group's tasks with its own limit and failure policy;
//! `Ctx::race`, the first-to-finish form.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::Context;
use std::time::Duration;

use errgroup::{AllowShutdown, Cause, Error, Failure, Group, TaskName, errgroup};
use tokio::sync::{Barrier, oneshot};

/// Polls `fut` once: whether it is still pending.
fn pending<F: Future>(fut: std::pin::Pin<&mut F>) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    fut.poll(&mut cx).is_pending()
}

type Log = Arc<Mutex<Vec<String>>>;

fn log() -> (
    Log,
    impl Fn(&TaskName, Failure<String>) + Send + Sync + 'static,
) {
    let log = Log::default();
    let seen = Arc::clone(&log);
    (log, move |task: &TaskName, failure: Failure<String>| {
        seen.lock().unwrap().push(format!("{task} {failure}"));
    })
}

/// A supervised task's error goes to the handler with the task's name, and
/// neither cancels the group nor makes its result an error.
#[tokio::test]
async fn a_supervised_error_goes_to_the_handler_and_cancels_nothing() {
    let (log, handler) = log();
    let (cancelled,) = errgroup! {
        type Error = String;
        accept => {
            let conns = ctx.pool().supervise(handler);
            conns.spawn("conn1", async { Err("bad frame".to_string()) }).await.map_err(|e| e.to_string())?;
            conns.spawn("conn2", async { Ok(()) }).await.map_err(|e| e.to_string())?;
            Ok(ctx.is_cancelled())
        },
    }
    .unwrap();
    assert!(!cancelled);
    assert_eq!(*log.lock().unwrap(), ["conn1 failed: bad frame"]);
}

/// Without `supervise`, Go's rule: the task's error cancels the group and
/// is its error.
#[tokio::test]
async fn an_unsupervised_error_is_the_groups() {
    let group = Group::<String>::new();
    let pool = group.pool().limit(4);
    pool.spawn("conn1", async { Err("bad frame".to_string()) })
        .await
        .unwrap();
    let err = group.wait().await.unwrap_err();
    assert_eq!(err.to_string(), "task `conn1` failed: bad frame");
}

/// `catch_panics`: the panic is reported with its message, the group goes on.
/// Without it, a supervised pool's panic still resumes in the caller.
#[tokio::test]
async fn a_caught_panic_keeps_its_message_and_an_uncaught_one_resumes() {
    let (log, handler) = log();
    let group = Group::<String>::new();
    let pool = group.pool().catch_panics().supervise(handler);
    pool.spawn("conn1", async { panic!("index {} out of bounds", 7) })
        .await
        .unwrap();
    pool.spawn("conn2", async { std::panic::panic_any(42_u8) })
        .await
        .unwrap();
    group.wait().await.unwrap();
    let mut log = log.lock().unwrap().clone();
    log.sort();
    assert_eq!(
        log,
        [
            "conn1 panicked: index 7 out of bounds",
            "conn2 panicked: Box<dyn Any>"
        ]
    );

    let (_, handler) = self::log();
    let group = Group::<String>::new();
    let pool = group.pool().supervise(handler);
    pool.spawn("conn3", async { panic!("not caught") })
        .await
        .unwrap();
    let waited = tokio::spawn(group.wait()).await.unwrap_err();
    let payload = waited.into_panic();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"not caught"));
}

/// A supervised task is still cancelled with the group and awaited before
/// the group returns: what it does after seeing the cancellation is done
/// by then.
#[tokio::test]
async fn a_supervised_task_is_cancelled_with_the_group_and_awaited() {
    let finished = Arc::new(AtomicBool::new(false));
    let done = Arc::clone(&finished);
    let (log, handler) = log();
    let result = errgroup! {
        type Error = String;
        accept => {
            let conns = ctx.pool().supervise(handler);
            conns.spawn_with("conn", |ctx| async move {
                ctx.cancelled().await;
                tokio::task::yield_now().await;
                done.store(true, SeqCst);
                Err("stopped mid-request".to_string())
            })
            .await
            .map_err(|e| e.to_string())?;
            ctx.shutdown();
            Ok(())
        },
    };
    assert!(result.is_ok(), "{result:?}");
    assert!(finished.load(SeqCst), "the group returned before its task");
    assert_eq!(*log.lock().unwrap(), ["conn failed: stopped mid-request"]);
}

/// Under `limit`, `spawn` waits for a slot and resolves once the task has
/// started; at most `limit` tasks run at once.
#[tokio::test]
async fn spawn_waits_for_a_slot() {
    let group = Group::<()>::new();
    let pool = group.pool().limit(2);
    let running = Arc::new(AtomicUsize::new(0));
    let mut gates = Vec::new();
    for i in 0..2 {
        let (open, gate) = oneshot::channel::<()>();
        gates.push(open);
        let running = Arc::clone(&running);
        pool.spawn(format!("t{i}"), async move {
            running.fetch_add(1, SeqCst);
            gate.await.ok();
            running.fetch_sub(1, SeqCst);
            Ok(())
        })
        .await
        .unwrap();
    }
    let started = Arc::new(AtomicBool::new(false));
    let third_started = Arc::clone(&started);
    let mut third = pin!(pool.spawn("t2", async move {
        third_started.store(true, SeqCst);
        Ok(())
    }));
    assert!(pending(third.as_mut()), "spawned over the limit");
    assert_eq!(pool.available(), Some(0));
    gates.remove(0).send(()).unwrap();
    third.await.unwrap(); // a slot came free
    drop(gates);
    group.wait().await.unwrap();
    assert!(started.load(SeqCst));
}

/// If the group stops while `spawn` waits, it returns `Cancelled` and the
/// task never runs.
#[tokio::test]
async fn spawn_waiting_for_a_slot_is_cancelled_with_the_group() {
    let group = Group::<()>::new();
    let pool = group.pool().limit(1);
    pool.spawn_with("busy", |ctx| async move {
        ctx.cancelled().await;
        Ok(())
    })
    .await
    .unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let late = Arc::clone(&ran);
    let mut waiting = pin!(pool.spawn("late", async move {
        late.store(true, SeqCst);
        Ok(())
    }));
    assert!(pending(waiting.as_mut()));
    group.shutdown();
    let refused = waiting.await.unwrap_err();
    assert_eq!(
        refused.cause(),
        &Cause::Shutdown {
            by: TaskName::new("group")
        }
    );
    // The refusal is the caller's, who heard it: the group's result is
    // what its tasks made it (`busy` returned `Ok`).
    group.wait().await.unwrap();
    assert!(!ran.load(SeqCst));
}

/// The pool's limit counts its tasks only: with `limit = 1` on the group
/// (held by the accept branch) and a pool of 3, three tasks run at once.
#[tokio::test]
async fn the_pools_limit_counts_its_tasks_not_the_groups_branches() {
    let barrier = Arc::new(Barrier::new(3));
    let (n,) = errgroup! {
        type Error = errgroup::Cancelled;
        limit = 1;
        accept => {
            let conns = ctx.pool().limit(3);
            for i in 0..3 {
                let barrier = Arc::clone(&barrier);
                // Each waits for the other two: only if all three run at once.
                conns.spawn(format!("conn{i}"), async move { barrier.wait().await; Ok(()) }).await?;
            }
            Ok(3)
        },
    }
    .unwrap();
    assert_eq!(n, 3);
}

/// `spawn_queued` never waits; the queued tasks run under the limit, and
/// one still queued when the group stops never runs.
#[tokio::test]
async fn spawn_queued_queues_under_the_limit() {
    let group = Group::<()>::new();
    let pool = group.pool().limit(2);
    let (running, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    for i in 0..20 {
        let (running, max) = (Arc::clone(&running), Arc::clone(&max));
        pool.spawn_queued(format!("job{i}"), async move {
            let now = running.fetch_add(1, SeqCst) + 1;
            max.fetch_max(now, SeqCst);
            tokio::task::yield_now().await;
            running.fetch_sub(1, SeqCst);
            Ok(())
        })
        .unwrap();
    }
    group.wait().await.unwrap();
    assert_eq!(max.load(SeqCst), 2);

    let group = Group::<()>::new().grace(Duration::ZERO);
    let pool = group.pool().limit(1);
    let ran = Arc::new(AtomicBool::new(false));
    pool.spawn_queued("busy", async { std::future::pending().await })
        .unwrap();
    let late = Arc::clone(&ran);
    pool.spawn_queued("queued", async move {
        late.store(true, SeqCst);
        Ok(())
    })
    .unwrap();
    group.shutdown();
    let err = group.wait().await.expect_err("the busy task was aborted");
    // Work was abandoned when grace expired: not a clean stop.
    assert!(err.is_grace_expired() && !err.is_shutdown(), "{err:?}");
    assert!(!ran.load(SeqCst));
}

/// A spawn once the group has stopped is refused.
#[tokio::test]
async fn a_spawn_after_the_stop_is_refused() {
    let group = Group::<()>::new();
    let pool = group.pool();
    group.shutdown();
    assert!(pool.spawn("late", async { Ok(()) }).await.is_err());
    assert!(pool.spawn_queued("late", async { Ok(()) }).is_err());
    // The caller heard the refusal; the group's result is untouched.
    group.wait().await.unwrap();
    // Nor do a supervised pool's.
    let group = Group::<String>::new();
    let pool = group.pool().supervise(|_, _| {});
    group.shutdown();
    assert!(pool.spawn("late", async { Ok(()) }).await.is_err());
    group.wait().await.unwrap();
}

/// `race`: the first branch to finish stops the others, and the group is
/// `Ok` with its value; the others see `None`.
#[tokio::test(start_paused = true)]
async fn race_first_to_finish_stops_the_rest_and_the_group_is_ok() {
    let (up, down) = errgroup! {
        type Error = std::io::Error;
        up => ctx.race(async { tokio::time::sleep(Duration::from_secs(1)).await; Ok(1) }).await,
        down => ctx.race(std::future::pending::<std::io::Result<u32>>()).await,
    }
    .unwrap();
    assert_eq!((up, down), (Some(1), None));
}

/// `race` keeps errors' meaning: an `Err` stops nothing by itself, and
/// returned by the branch it is the group's failure.
#[tokio::test(start_paused = true)]
async fn race_keeps_errors_meaning() {
    let result = errgroup! {
        type Error = &'static str;
        up => { ctx.race(async { Err::<(), _>("reset by peer") }).await?; Ok(()) },
        down => { ctx.race(std::future::pending::<Result<(), &str>>()).await?; Ok(()) },
    };
    assert_eq!(
        result.unwrap_err().to_string(),
        "task `up` failed: reset by peer"
    );
}

/// A task's normal completion can stop the group too: "serve until this
/// completes", from a pool's task with its own ctx.
#[tokio::test]
async fn race_in_a_task_stops_the_group_as_that_task() {
    let group = Group::<String>::new();
    let pool = group.pool();
    let (cause_tx, cause) = oneshot::channel();
    pool.spawn_with("server", |ctx| async move {
        ctx.cancelled().await;
        cause_tx.send(ctx.cause()).unwrap();
        Ok(())
    })
    .await
    .unwrap();
    pool.spawn_with("admin", |ctx| async move {
        assert_eq!(ctx.race(async { Ok::<_, String>(7) }).await?, Some(7));
        Ok(())
    })
    .await
    .unwrap();
    group.wait().await.unwrap();
    assert_eq!(
        cause.await.unwrap(),
        Some(Cause::Shutdown {
            by: TaskName::new("admin")
        })
    );
}

/// `stop_signal()` is a `shutdown_on` signal like any other, and does
/// nothing until a signal comes.
#[tokio::test]
async fn stop_signal_waits_for_a_signal() {
    let (cause, ()) = errgroup! {
        type Error = ();
        shutdown_on = errgroup::stop_signal();
        server => { ctx.cancelled().await; Ok(ctx.cause()) },
        admin => { ctx.shutdown(); Ok(()) },
    }
    .allow_shutdown()
    .unwrap();
    assert_eq!(cause.unwrap().to_string(), "shut down by `admin`");
}

/// A `Group` without `returning` keeps nothing of a task that returned
/// `Ok(())`; its failures are still the group's.
#[tokio::test]
async fn a_group_reports_failures_and_keeps_no_ok() {
    let mut group = Group::<&str>::new().on_error_continue();
    group.spawn("ok", |_| async { Ok(()) });
    tokio::task::yield_now().await;
    group.spawn("bad", |_| async { Err("no") });
    let results = group.wait_results().await.unwrap();
    let results: Vec<_> = results
        .into_iter()
        .map(|(t, r)| (t.to_string(), r))
        .collect();
    assert_eq!(results, [("bad".to_owned(), Err("no"))]);

    let mut group = Group::<&str>::new();
    group.spawn("ok", |_| async { Ok(()) });
    tokio::task::yield_now().await;
    group.spawn("bad", |_| async { Err("no") });
    match group.wait().await.unwrap_err() {
        Error::Failed { task, error } => assert_eq!((task.name(), error), ("bad", "no")),
        other => panic!("{other:?}"),
    }
}

/// A `Watch` counts a pool's tasks in one line rather than naming each
/// (a server has thousands), and `Group::len` counts them.
#[tokio::test]
async fn a_pools_tasks_are_counted_not_named() {
    let group = Group::<()>::new();
    let pool = group.pool();
    for _ in 0..3 {
        pool.spawn_with("conn", |ctx| async move {
            ctx.cancelled().await;
            Ok(())
        })
        .await
        .unwrap();
    }
    assert_eq!(group.len(), 3);
    let running: Vec<String> = group
        .running()
        .iter()
        .map(|r| r.task().to_string())
        .collect();
    assert_eq!(running, ["3 pool tasks"]);
    group.shutdown();
    group.wait().await.unwrap();
}

/// The check against the branch's `ctx` moved into a `ctx.spawn` task
/// leaves alone a task with its own ctx and a closure binding `ctx`.
#[tokio::test]
async fn a_task_with_its_own_ctx_is_not_taken_for_a_moved_one() {
    let (cause,) = errgroup! {
        type Error = String;
        worker => {
            let stop = ctx.shutdown_handle();
            ctx.spawn("own", async move {
                let check = |ctx: &errgroup::Ctx| ctx.is_cancelled();
                let _ = check;
                stop.shutdown();
                Ok(())
            })
            .map_err(|e| e.to_string())?;
            ctx.spawn_with("with", |ctx| async move { ctx.cancelled().await; Ok(()) })
                .map_err(|e| e.to_string())?;
            ctx.cancelled().await;
            Ok(ctx.cause())
        },
    }
    .unwrap();
    assert_eq!(cause.unwrap().to_string(), "shut down by `worker`");
}

/// A waker that notes, each time it is woken, whether the group was
/// cancelled by then.
struct Witness {
    ctx: errgroup::Ctx,
    seen: Mutex<Vec<bool>>,
}

impl std::task::Wake for Witness {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let cancelled = self.ctx.is_cancelled();
        self.seen.lock().unwrap().push(cancelled);
    }
}

/// A task of a pool with `limit = 1` fails (or panics, unsupervised)
/// while a `spawn` waits for its slot: what the waiting spawn's waker
/// saw as it was woken; the waiting spawn is then refused, its task never
/// runs. The group, to wait for.
async fn seen_by_a_waiting_spawn(panics: bool) -> (Vec<bool>, Group<String>) {
    let group = Group::<String>::new();
    let pool = group.pool().limit(1);
    let (open, gate) = oneshot::channel::<()>();
    pool.spawn("fails", async move {
        gate.await.ok();
        assert!(!panics, "the task's panic");
        Err("boom".to_string())
    })
    .await
    .unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let late = Arc::clone(&ran);
    let mut waiting = pin!(pool.spawn("late", async move {
        late.store(true, SeqCst);
        Ok(())
    }));
    let witness = Arc::new(Witness {
        ctx: group.ctx(),
        seen: Mutex::default(),
    });
    let waker = std::task::Waker::from(Arc::clone(&witness));
    let mut cx = Context::from_waker(&waker);
    assert!(
        waiting.as_mut().poll(&mut cx).is_pending(),
        "waits for the slot"
    );
    open.send(()).unwrap();
    // On this one thread, the failed task's poll, its slot handed back
    // and all, is over when this wakes.
    group.ctx().cancelled().await;
    assert!(waiting.await.is_err(), "refused: the group was cancelled");
    assert!(!ran.load(SeqCst));
    let seen = witness.seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "the waiting spawn was woken");
    (seen, group)
}

/// A task's failure is recorded (cancelling the group) before its slot is
/// handed back, as a branch's before its `limit` permit: the spawn its
/// hand-back wakes, maybe on another thread, sees the cancellation.
#[tokio::test]
async fn a_failed_task_hands_its_slot_back_once_the_group_is_cancelled() {
    let (seen, group) = seen_by_a_waiting_spawn(false).await;
    assert!(seen.iter().all(|&cancelled| cancelled), "{seen:?}");
    let err = group.wait().await.unwrap_err();
    assert_eq!(err.to_string(), "task `fails` failed: boom");
}

/// The same for an unsupervised task's panic.
#[tokio::test]
async fn a_panicked_task_hands_its_slot_back_once_the_group_is_cancelled() {
    let (seen, group) = seen_by_a_waiting_spawn(true).await;
    assert!(seen.iter().all(|&cancelled| cancelled), "{seen:?}");
    let waited = tokio::spawn(group.wait()).await.unwrap_err();
    assert!(waited.is_panic());
}

/// A group created while a pool's task runs is a child of the pool's group
/// (nesting is automatic, as in any branch or task): cancelled with it.
#[tokio::test]
async fn a_group_created_in_a_pool_task_is_a_child_of_the_pools_group() {
    let group = Group::<String>::new();
    let (made, inner) = oneshot::channel();
    group
        .pool()
        .spawn("conn", async move {
            made.send(Group::<()>::new()).ok();
            Ok(())
        })
        .await
        .unwrap();
    let inner = inner.await.unwrap();
    let ctx = inner.ctx();
    assert!(!ctx.is_cancelled());
    group.shutdown();
    assert_eq!(
        ctx.cause(),
        Some(Cause::Parent(Box::new(Cause::Shutdown {
            by: TaskName::new("group")
        })))
    );
    group.wait().await.unwrap();
}
