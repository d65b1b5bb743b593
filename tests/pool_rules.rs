//! The general rules of a `Pool`, `Ctx::race` and a `Group` spawned from
//! for ever, each checked with explicit synchronisation (a paused clock
//! where a wait could hang): the held-out checks of the servers issue.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::Context;
use std::time::Duration;

use errgroup::{Failure, Group, TaskName, errgroup};
use tokio::sync::{Barrier, oneshot};

/// Polls `fut` once: whether it is still pending.
fn pending<F: Future>(fut: std::pin::Pin<&mut F>) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    fut.poll(&mut cx).is_pending()
}

/// Long enough that only a hang reaches it; the paused clock gets there
/// at once when everything else is idle.
const HANG: Duration = Duration::from_secs(3600);

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

/// A supervised task of a `Group` is awaited by `wait` after a shutdown:
/// `wait` does not return while it still runs (`TaskTracker`'s contract).
#[tokio::test(start_paused = true)]
async fn a_supervised_task_of_a_group_is_awaited_by_wait() {
    let (_log, handler) = log();
    let group = Group::<String>::new();
    let pool = group.pool().supervise(handler);
    let (release, gate) = oneshot::channel::<()>();
    pool.spawn("conn", async move {
        gate.await.ok();
        Ok(())
    })
    .await
    .unwrap();
    group.shutdown();
    let mut wait = pin!(group.wait());
    assert!(
        tokio::time::timeout(HANG, wait.as_mut()).await.is_err(),
        "wait returned while the task ran"
    );
    release.send(()).unwrap();
    wait.await.unwrap();
}

/// A supervised task is cancelled with the group when another part of it
/// fails, and its own error then is reported, not the group's.
#[tokio::test]
async fn a_supervised_task_sees_the_groups_failure() {
    let (log, handler) = log();
    let result = errgroup! {
        type Error = String;
        accept => {
            let conns = ctx.pool().supervise(handler);
            conns.spawn_with("conn", |ctx| async move {
                ctx.cancelled().await;
                Err("cut off".to_string())
            }).await.map_err(|e| e.to_string())?;
            Ok(())
        },
        failing => Err::<(), _>("boom".to_string()),
    };
    assert!(
        result
            .unwrap_err()
            .to_string()
            .ends_with("`failing` failed: boom")
    );
    assert_eq!(*log.lock().unwrap(), ["conn failed: cut off"]);
}

/// A spawn waiting for a slot returns `Err(Cancelled)` as soon as the group
/// stops, supervised or not, and its slot is not lost: once the running
/// task ends, every slot is free again.
#[tokio::test(start_paused = true)]
async fn a_waiting_spawn_is_refused_when_the_group_stops_and_keeps_no_slot() {
    for supervised in [false, true] {
        let group = Group::<String>::new();
        let mut pool = group.pool().limit(2);
        if supervised {
            pool = pool.supervise(|_, _| {});
        }
        for i in 0..2 {
            pool.spawn_with(format!("busy{i}"), |ctx| async move {
                ctx.cancelled().await;
                Ok(())
            })
            .await
            .unwrap();
        }
        let ran = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&ran);
        let mut waiting = pin!(pool.spawn("late", async move {
            counted.fetch_add(1, SeqCst);
            Ok(())
        }));
        assert!(pending(waiting.as_mut()), "spawned over the limit");
        group.shutdown();
        let refused = tokio::time::timeout(HANG, waiting)
            .await
            .expect("still waiting after the stop");
        assert!(refused.is_err(), "supervised={supervised}");
        let _ = group.wait().await;
        assert_eq!(ran.load(SeqCst), 0, "a refused task ran");
        assert_eq!(
            pool.available(),
            Some(2),
            "a slot was lost (supervised={supervised})"
        );
    }
}

/// A waiting spawn dropped (its caller's `select!` took another arm) gives
/// up its place: the slot goes to the next spawn, and the task never runs.
#[tokio::test(start_paused = true)]
async fn a_dropped_waiting_spawn_gives_up_its_place() {
    let group = Group::<String>::new();
    let pool = group.pool().limit(1);
    let (release, gate) = oneshot::channel::<()>();
    pool.spawn("busy", async move {
        gate.await.ok();
        Ok(())
    })
    .await
    .unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&ran);
    {
        let mut dropped = pin!(pool.spawn("dropped", async move {
            counted.fetch_add(1, SeqCst);
            Ok(())
        }));
        assert!(pending(dropped.as_mut()));
    }
    release.send(()).unwrap();
    tokio::time::timeout(HANG, pool.spawn("next", async { Ok(()) }))
        .await
        .expect("the slot went to the dropped spawn")
        .unwrap();
    group.wait().await.unwrap();
    assert_eq!(ran.load(SeqCst), 0);
    assert_eq!(pool.available(), Some(1));
}

/// A waiting spawn resolves only once the slot is free and its task is in
/// the group: pending while the limit is reached, and the group's `len`
/// counts the task as soon as it returns.
#[tokio::test(start_paused = true)]
async fn a_waiting_spawn_resolves_once_its_task_has_started() {
    let group = Group::<String>::new();
    let pool = group.pool().limit(1);
    let (release, gate) = oneshot::channel::<()>();
    pool.spawn("first", async move {
        gate.await.ok();
        Ok(())
    })
    .await
    .unwrap();
    let (started_tx, started) = oneshot::channel::<()>();
    let (stop, stopped) = oneshot::channel::<()>();
    let mut second = pin!(pool.spawn("second", async move {
        started_tx.send(()).unwrap();
        stopped.await.ok();
        Ok(())
    }));
    for _ in 0..10 {
        assert!(
            pending(second.as_mut()),
            "resolved while `first` held the only slot"
        );
        tokio::task::yield_now().await;
    }
    release.send(()).unwrap();
    tokio::time::timeout(HANG, second)
        .await
        .expect("never got the slot")
        .unwrap();
    assert_eq!(pool.available(), Some(0));
    tokio::time::timeout(HANG, started)
        .await
        .expect("a task that resolved its spawn never ran")
        .unwrap();
    stop.send(()).unwrap();
    group.wait().await.unwrap();
}

/// The pool's limit and the group's `limit` are independent: a group of
/// `limit = 1` (held by its accept branch) still runs a pool's 3 tasks at
/// once, and a pool of limit 1 does not hold back a second branch.
#[tokio::test(start_paused = true)]
async fn the_pools_limit_and_the_groups_are_independent() {
    let barrier = Arc::new(Barrier::new(4));
    let result = tokio::time::timeout(HANG, async {
        errgroup! {
            type Error = String;
            limit = 1;
            accept => {
                let conns = ctx.pool().limit(3);
                for i in 0..3 {
                    let barrier = Arc::clone(&barrier);
                    conns.spawn(format!("conn{i}"), async move { barrier.wait().await; Ok(()) })
                        .await
                        .map_err(|e| e.to_string())?;
                }
                barrier.wait().await; // all three run while this branch holds the group's slot
                Ok(())
            },
        }
    })
    .await
    .expect("the group's limit counted the pool's tasks");
    assert!(result.is_ok(), "{result:?}");

    let both = Arc::new(Barrier::new(2));
    let (a, b) = (Arc::clone(&both), Arc::clone(&both));
    let result = tokio::time::timeout(HANG, async {
        errgroup! {
            type Error = String;
            first => {
                let conns = ctx.pool().limit(1);
                conns.spawn("conn", async move { a.wait().await; Ok(()) }).await.map_err(|e| e.to_string())?;
                Ok(())
            },
            second => {
                let conns = ctx.pool().limit(1);
                conns.spawn("conn", async move { b.wait().await; Ok(()) }).await.map_err(|e| e.to_string())?;
                Ok(())
            },
        }
    })
    .await
    .expect("two pools shared a limit");
    assert!(result.is_ok(), "{result:?}");

    let group = Group::<String>::new().limit(1);
    let pool = group.pool().limit(2);
    let barrier = Arc::new(Barrier::new(3));
    for i in 0..2 {
        let barrier = Arc::clone(&barrier);
        pool.spawn(format!("conn{i}"), async move {
            barrier.wait().await;
            Ok(())
        })
        .await
        .unwrap();
    }
    tokio::time::timeout(HANG, barrier.wait())
        .await
        .expect("Group::limit counted the pool's tasks");
    group.wait().await.unwrap();
}

/// `catch_panics` keeps the message of a formatted panic (a `String`
/// payload) and of a literal one; a payload that is no string is named.
#[tokio::test]
async fn a_caught_panic_keeps_its_message_whatever_its_payload() {
    let (log, handler) = log();
    let group = Group::<String>::new();
    let pool = group.pool().catch_panics().supervise(handler);
    pool.spawn("a", async { panic!("index {} out of bounds", 7) })
        .await
        .unwrap();
    pool.spawn("b", async { std::panic::panic_any(42_u32) })
        .await
        .unwrap();
    group.wait().await.unwrap();
    let mut seen = log.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            "a panicked: index 7 out of bounds",
            "b panicked: Box<dyn Any>"
        ]
    );
}

/// Without `catch_panics`, a supervised task's panic still cancels the
/// group and resumes in the caller with its payload (Go's rule); so does
/// `catch_panics` without `supervise`.
#[tokio::test]
async fn an_uncaught_panic_resumes_in_the_caller() {
    for catch in [false, true] {
        let handle = tokio::spawn(async move {
            let group = Group::<String>::new();
            let mut pool = group.pool();
            if catch {
                pool = pool.catch_panics(); // without supervise: no effect
            } else {
                pool = pool.supervise(|_, _| {});
            }
            let ctx = group.ctx();
            pool.spawn("conn", async { panic!("handler bug") })
                .await
                .unwrap();
            ctx.cancelled().await; // the panic cancelled the group
            let _ = group.wait().await;
        });
        let payload = handle.await.unwrap_err().into_panic();
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"handler bug"),
            "catch={catch}"
        );
    }
}

/// `race` from a pool task's own ctx: its completion stops the group,
/// which returns `Ok`, and the others' `race` give `Ok(None)`.
#[tokio::test(start_paused = true)]
async fn race_in_a_pool_task_stops_the_group_and_it_is_ok() {
    let losers = Arc::new(AtomicUsize::new(0));
    let lost = Arc::clone(&losers);
    let result = errgroup! {
        type Error = String;
        accept => {
            let conns = ctx.pool().supervise(|_, _| {});
            let winner = conns.clone();
            winner.spawn_with("done", |ctx| async move {
                ctx.race(async { Ok::<_, String>(1) }).await?;
                Ok(())
            }).await.map_err(|e| e.to_string())?;
            let lost = Arc::clone(&lost);
            conns.spawn_with("slow", |ctx| async move {
                let raced = ctx.race(std::future::pending::<Result<(), String>>()).await?;
                assert!(raced.is_none());
                lost.fetch_add(1, SeqCst);
                Ok(())
            }).await.map_err(|e| e.to_string())?;
            ctx.cancelled().await;
            Ok(())
        },
        serve => { ctx.race(std::future::pending::<Result<(), String>>()).await?; Ok(()) },
    };
    assert!(result.is_ok(), "{result:?}");
    assert!(losers.load(SeqCst) <= 1);
}

/// `race` from a `ctx.spawn` task and from a `Group`'s ctx: `Ok` stops the
/// group and it returns `Ok`; an `Err` keeps its meaning (the group fails).
#[tokio::test(start_paused = true)]
async fn race_in_a_task_ok_stops_the_group_and_err_fails_it() {
    let result = errgroup! {
        type Error = String;
        main => {
            ctx.spawn_with("copy", |ctx| async move {
                ctx.race(async { Ok::<_, String>(()) }).await?;
                Ok(())
            }).map_err(|e| e.to_string())?;
            ctx.race(std::future::pending::<Result<(), String>>()).await?;
            Ok(())
        },
    };
    assert!(result.is_ok(), "{result:?}");

    let result = errgroup! {
        type Error = String;
        main => {
            ctx.spawn_with("copy", |ctx| async move {
                ctx.race(async { Err::<(), _>("reset".to_string()) }).await?;
                Ok(())
            }).map_err(|e| e.to_string())?;
            ctx.race(std::future::pending::<Result<(), String>>()).await?;
            Ok(())
        },
    };
    assert_eq!(result.unwrap_err().to_string(), "task `copy` failed: reset");

    let mut group = Group::<String>::new();
    group.spawn("down", |ctx| async move {
        ctx.race(async { Ok::<_, String>(()) }).await?;
        Ok(())
    });
    group.spawn("up", |ctx| async move {
        ctx.race(std::future::pending::<Result<(), String>>())
            .await?;
        Ok(())
    });
    tokio::time::timeout(HANG, group.wait())
        .await
        .expect("race did not stop the group")
        .unwrap();
}

/// A `spawn_with` whose `make` panics (in the caller, once a slot was
/// found) gives its slot back: the pool is not a slot short for ever.
#[tokio::test]
async fn a_panicking_make_gives_its_slot_back() {
    let group = Group::<String>::new();
    let pool = group.pool().limit(1);
    let mut spawn = pin!(
        pool.spawn_with("conn", |_ctx| -> std::future::Ready<Result<(), String>> {
            panic!("bad socket option")
        })
    );
    let panicked =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pending(spawn.as_mut())));
    assert!(panicked.is_err());
    assert_eq!(pool.available(), Some(1), "the slot was lost");
    pool.spawn("next", async { Ok(()) }).await.unwrap();
    group.wait().await.unwrap();
}
