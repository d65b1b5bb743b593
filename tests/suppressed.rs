//! Later failures are kept: after the first failure (or a
//! cancellation from outside), a branch, item or task that fails of its own
//! is listed by `err.suppressed()`, in the order the failures happened,
//! while an `Err` that only passes on the cancellation the group handed it
//! (an echo) is not. `Display` stays the first failure's; `{:#}` and
//! `{:?}` list the others. A shutdown with a later failure is not a clean
//! stop. The rule holds for in-task, `#[spawn]`, `#[blocking]` branches,
//! fan-out items, `ctx.spawn` tasks, `Group` and nested groups.

use std::time::Duration;

use errgroup::{AllowShutdown, Cancelled, Error, Group, errgroup};
use tokio::time::sleep;

const HOUR: Duration = Duration::from_secs(3600);

fn names<E: 'static>(err: &Error<E>) -> Vec<String> {
    err.suppressed()
        .iter()
        .map(|s| s.task().to_string())
        .collect()
}

/// The case: the flush during the shutdown after a failure.
#[tokio::test(start_paused = true)]
async fn a_flush_that_fails_after_the_first_failure_is_kept() {
    let err = errgroup! {
        type Error = anyhow::Error;
        fetch => { sleep(Duration::from_secs(1)).await; Err(anyhow::anyhow!("timeout")) },
        store => {
            ctx.cancelled().await;
            sleep(Duration::from_secs(1)).await; // flushing
            Err::<(), _>(anyhow::anyhow!("flush failed: disk full"))
        },
        poll => { ctx.sleep(HOUR).await?; Ok(()) },
        watch => { ctx.cancelled().await; ctx.check()?; Ok(()) },
    }
    .unwrap_err();
    assert_eq!(err.to_string(), "task `fetch` failed: timeout");
    assert_eq!(
        names(&err),
        ["store"],
        "poll and watch only passed the cancellation on"
    );
    assert_eq!(
        err.suppressed()[0].error().to_string(),
        "flush failed: disk full"
    );
    assert_eq!(
        format!("{err:#}"),
        "task `fetch` failed: timeout; then task `store` failed: flush failed: disk full"
    );
    // (anyhow's own `Debug` may add a backtrace after the message.)
    let debug = format!("{err:?}");
    assert!(
        debug.starts_with("Failed { task: \"fetch\", error: timeout")
            && debug.ends_with(", suppressed: [\"store\"] }"),
        "{debug}"
    );
    // anyhow's `{:?}` prints the chain, later failures and all.
    let debug = format!("{:?}", anyhow::Error::from(err));
    assert!(
        debug.contains("then task `store` failed: flush failed: disk full"),
        "{debug}"
    );
}

#[tokio::test(start_paused = true)]
async fn later_failures_are_listed_in_the_order_they_happened() {
    let err = errgroup! {
        first => Err("first"),
        third => { ctx.cancelled().await; sleep(Duration::from_secs(3)).await; Err::<(), _>("third") },
        second => { ctx.cancelled().await; sleep(Duration::from_secs(1)).await; Err::<(), _>("second") },
    }
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "first");
    assert_eq!(names(&err), ["second", "third"]);
    let errors: Vec<_> = err.suppressed().iter().map(|s| *s.error()).collect();
    assert_eq!(errors, ["second", "third"]);
}

/// An item that fails first keeps its index with the later failures.
#[tokio::test(start_paused = true)]
async fn a_first_failing_item_keeps_its_index_and_the_later_failures() {
    let err = errgroup! {
        items => for i in 0..2u32 {
            if i == 1 { Err("item") } else { Ok(()) }
        },
        later => { ctx.cancelled().await; sleep(Duration::from_secs(1)).await; Err::<(), _>("later") },
    }
    .unwrap_err();
    let task = err.task().unwrap();
    assert_eq!((task.name(), task.index()), ("items", Some(1)));
    assert_eq!(task, "items[1]");
    assert_eq!(names(&err), ["later"]);
}

/// Every kind of branch and task, in one group: what each returns after
/// the failure of `first` is kept if it is its own, not if it is an echo.
#[tokio::test(start_paused = true)]
async fn every_kind_of_branch_and_task_keeps_its_own_failure_and_not_its_echo() {
    let err = errgroup! {
        type Error = String;
        #[spawn] spawned => {
            ctx.cancelled().await;
            sleep(Duration::from_secs(2)).await;
            Err::<(), _>("spawned".to_string())
        },
        #[spawn] spawned_echo => {
            ctx.sleep(HOUR).await.map_err(|c| c.to_string())?;
            Ok(())
        },
        #[blocking] blocking => {
            while !ctx.is_cancelled() {
                std::thread::yield_now();
            }
            Err::<(), _>("blocking".to_string())
        },
        #[blocking] blocking_echo => {
            while ctx.check().is_ok() {
                std::thread::yield_now();
            }
            ctx.check().map_err(|c| c.to_string())
        },
        items => for i in 0..2 {
            if i == 0 {
                ctx.cancelled().await;
                sleep(Duration::from_secs(3)).await;
                Err::<(), _>("items[0]".to_string())
            } else {
                ctx.sleep(HOUR).await.map_err(|c| c.to_string())
            }
        },
        tasks => {
            ctx.spawn("task", {
                let own = ctx.clone();
                async move {
                    own.cancelled().await;
                    sleep(Duration::from_secs(4)).await;
                    Err("task".to_string())
                }
            })
            .map_err(|c| c.to_string())?;
            ctx.spawn_with("task_echo", |ctx| async move {
                ctx.sleep(HOUR).await.map_err(|c| c.to_string())
            })
            .map_err(|c| c.to_string())?;
            Ok(())
        },
        // Last, so that every other branch has started, its items pulled
        // and its tasks spawned; at once, as the paused clock does not
        // advance while a blocking body runs, and these spin until it fails.
        first => Err("first".to_string()),
    }
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "first");
    let mut got = names(&err);
    // The blocking one runs on its own thread: its place among the others
    // depends on the pool, the rest on the paused clock.
    let at = got
        .iter()
        .position(|n| n == "blocking")
        .expect("blocking kept");
    got.remove(at);
    assert_eq!(got, ["spawned", "items[0]", "task"]);
}

/// A group channel's error after the cancellation is an echo too, whatever
/// the branch made of it; so is the error of a nested group the parent's
/// cancellation stopped.
#[tokio::test(start_paused = true)]
async fn channel_errors_and_nested_cancellations_are_echoes() {
    let err = errgroup! {
        type Error = anyhow::Error;
        let (tx, rx) = channel::<u32>(1);
        first => { sleep(Duration::from_secs(1)).await; Err(anyhow::anyhow!("first")) },
        consumer => {
            while let Some(n) = rx.recv().await? {
                let _ = n;
            }
            Ok(())
        },
        producer => {
            for n in 0..3 {
                tx.send(n).await?;
            }
            ctx.cancelled().await;
            tx.send(9).await?; // refused: the channel closed with the group
            Ok(())
        },
        nested => {
            errgroup! {
                type Error = Cancelled;
                inner => ctx.sleep(HOUR).await,
            }?;
            Ok(())
        },
    }
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "first");
    assert!(err.suppressed().is_empty(), "{err:?}");
}

/// A nested group whose own branch failed of its own while the parent
/// stopped: its failure reaches the parent as a failure, not an echo.
#[tokio::test(start_paused = true)]
async fn a_nested_group_failing_of_its_own_is_kept_by_its_parent() {
    let err = errgroup! {
        type Error = anyhow::Error;
        first => { sleep(Duration::from_secs(1)).await; Err(anyhow::anyhow!("first")) },
        nested => {
            errgroup! {
                type Error = anyhow::Error;
                cleanup => {
                    ctx.cancelled().await;
                    Err::<(), _>(anyhow::anyhow!("cleanup failed"))
                },
                echo => { ctx.sleep(HOUR).await?; Ok(()) },
            }?;
            Ok(())
        },
    }
    .unwrap_err();
    assert_eq!(names(&err), ["nested"]);
    // The nested group's error: cancelled by its parent, with its own
    // later failure, which makes it more than an echo.
    assert_eq!(
        format!("{:#}", err.suppressed()[0].error()),
        "group cancelled: parent group cancelled: task `first` failed: \
         then task `cleanup` failed: cleanup failed"
    );
    // And through the outer error's chain, as anyhow prints it.
    assert_eq!(
        format!("{:#}", anyhow::Error::from(err)),
        "task `first` failed: first: then task `nested` failed: \
         group cancelled: parent group cancelled: task `first` failed"
    );
}

#[tokio::test(start_paused = true)]
async fn group_wait_keeps_later_failures_too() {
    let mut group = Group::<String>::new();
    group.spawn("first", |_| async {
        sleep(Duration::from_secs(1)).await;
        Err("first".to_string())
    });
    group.spawn("flush", |ctx| async move {
        ctx.cancelled().await;
        Err("flush".to_string())
    });
    group.spawn("echo", |ctx| async move {
        ctx.sleep(HOUR).await.map_err(|c| c.to_string())
    });
    let err = group.wait().await.unwrap_err();
    assert_eq!(err.task().unwrap(), "first");
    assert_eq!(names(&err), ["flush"]);
}

/// A `Group`'s own tasks take their rank among the later failures as they
/// fail, not in the order they were spawned, and among a `ctx.spawn`
/// task's.
#[tokio::test(start_paused = true)]
async fn group_wait_lists_later_failures_in_the_order_they_happened() {
    let mut group = Group::<String>::new();
    let fails_after = |secs| {
        move |ctx: errgroup::Ctx| async move {
            ctx.cancelled().await;
            sleep(Duration::from_secs(secs)).await;
            Err::<(), _>(format!("after {secs}s"))
        }
    };
    group.spawn("third", fails_after(3));
    group.spawn("first", fails_after(1));
    let ctx = group.ctx();
    ctx.spawn("second", fails_after(2)(ctx.clone())).unwrap();
    group.spawn("cause", |_| async { Err("cause".to_string()) });
    let err = group.wait().await.unwrap_err();
    assert_eq!(err.task().unwrap(), "cause");
    assert_eq!(names(&err), ["first", "second", "third"]);
}

/// After a shutdown (a cancellation from outside, no failure first), a
/// branch that fails of its own is kept, and the stop is not clean:
/// `allow_shutdown` keeps the error.
#[tokio::test(start_paused = true)]
async fn a_failure_during_a_shutdown_is_kept_and_the_stop_is_not_clean() {
    let result = errgroup! {
        type Error = anyhow::Error;
        server => { ctx.sleep(HOUR).await?; Ok(()) },
        store => {
            ctx.cancelled().await;
            Err::<(), _>(anyhow::anyhow!("flush failed"))
        },
        admin => { ctx.shutdown(); Ok(()) },
    };
    let err = result.as_ref().unwrap_err();
    assert!(err.cause().is_shutdown());
    assert_eq!(names(err), ["store"]);
    assert!(
        !err.is_shutdown(),
        "a failure during the stop is not a clean stop"
    );
    assert_eq!(err.to_string(), "group cancelled: shut down by `admin`");
    assert_eq!(
        format!("{err:#}"),
        "group cancelled: shut down by `admin`; then task `store` failed: flush failed"
    );
    assert!(result.allow_shutdown().is_err());
}

/// The clean stop is still clean: echoes only.
#[tokio::test(start_paused = true)]
async fn a_shutdown_with_echoes_only_is_clean() {
    let ((), (), ()) = errgroup! {
        type Error = anyhow::Error;
        server => { ctx.sleep(HOUR).await?; Ok(()) },
        #[spawn] worker => loop { ctx.check()?; sleep(Duration::from_secs(1)).await; },
        admin => { ctx.shutdown(); Ok(()) },
    }
    .allow_shutdown()
    .expect("echoes only: a clean stop");
}

/// The boundary of the rule: a branch handed a `Cancelled` that then fails
/// otherwise returns one `Err`, taken as the echo it cannot be told from.
#[tokio::test(start_paused = true)]
async fn a_branch_handed_a_cancellation_that_then_fails_counts_as_an_echo() {
    let err = errgroup! {
        type Error = String;
        first => { sleep(Duration::from_secs(1)).await; Err("first".to_string()) },
        boundary => {
            if ctx.sleep(HOUR).await.is_err() {
                return Err("flush failed".to_string()); // after a Cancelled: an echo
            }
            Ok(())
        },
    }
    .unwrap_err();
    assert!(err.suppressed().is_empty());
}

/// A single failure keeps nothing more (and allocates nothing for it:
/// tests/allocations.rs).
#[tokio::test]
async fn a_single_failure_has_nothing_suppressed() {
    let err = errgroup! {
        a => Err("a"),
        b => Ok(()),
    }
    .unwrap_err();
    assert!(err.suppressed().is_empty());
    assert_eq!(format!("{err:#}"), "task `a` failed: a");
    assert_eq!(format!("{err:?}"), "Failed { task: \"a\", error: \"a\" }");
}
