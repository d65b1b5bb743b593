//! Stopping a group on purpose: from a branch (`ctx.shutdown()`), from a
//! `Group`, from anywhere through a `Shutdown` handle, when a signal future
//! completes, or through a `CancellationToken` parent; and handing the
//! group's cancellation to code that speaks `CancellationToken`.

use std::time::Duration;

use errgroup::{AllowShutdown, Cancelled, Cause, Error, Group, TaskName, errgroup};
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

fn shutdown_by(by: &'static str) -> Cause {
    Cause::Shutdown {
        by: TaskName::new(by),
    }
}

/// After a shutdown the group behaves as after a deadline: `Ok` when every
/// branch still returns `Ok`, with every ctx cancelled for the shutdown.
#[tokio::test]
async fn a_branch_shuts_the_group_down_and_it_returns_ok() {
    let (seen, ()) = errgroup! {
        server => { ctx.cancelled().await; Ok::<_, ()>(ctx.cause()) },
        admin => { assert!(ctx.shutdown()); Ok(()) },
    }
    .unwrap();
    assert_eq!(seen, Some(shutdown_by("admin")));
}

/// Branches that end with the cancellation's error make the group an error
/// the caller tells from a failure in one call, and turns into `Ok` in one.
#[tokio::test]
async fn a_shutdown_is_not_a_failure_and_allow_shutdown_makes_it_ok() {
    let stopped = errgroup! {
        type Error = Cancelled;
        worker => { ctx.cancelled().await; ctx.check() },
        ticker => {
            while ctx.sleep(Duration::from_millis(1)).await.is_ok() {}
            ctx.check()
        },
        admin => { ctx.shutdown(); Ok(()) },
    };
    let err = stopped.as_ref().unwrap_err();
    assert!(err.is_shutdown(), "{err:?}");
    assert!(err.is_cancelled());
    assert_eq!(err.cause(), shutdown_by("admin"));
    assert_eq!(stopped.allow_shutdown().unwrap(), ((), (), ()));
}

/// A failure that happened before the shutdown is still the group's error.
#[tokio::test]
async fn a_failure_before_the_shutdown_wins() {
    let result = errgroup! {
        failing => Err::<(), _>("disk full"),
        late => {
            ctx.cancelled().await;
            assert!(!ctx.shutdown(), "already cancelled by the failure");
            Ok(())
        },
    };
    let err = result.allow_shutdown().unwrap_err();
    assert!(!err.is_shutdown());
    assert_eq!(err.task().unwrap(), "failing");
}

/// A handle stops the group from another thread, under its own name, and
/// does not keep the group alive: after the group returned it does nothing.
#[tokio::test]
async fn a_handle_stops_the_group_from_anywhere_under_its_name() {
    let mut group = Group::<()>::new();
    let stop = group.shutdown_handle().by("SIGTERM");
    let ctx = group.ctx();
    group.spawn("server", |ctx| async move {
        ctx.cancelled().await;
        Ok(())
    });
    let stopper = std::thread::spawn({
        let stop = stop.clone();
        move || stop.shutdown()
    });
    group.wait().await.unwrap();
    assert!(stopper.join().unwrap());
    assert_eq!(ctx.cause(), Some(shutdown_by("SIGTERM")));
    assert!(!stop.shutdown(), "the group has returned");
}

/// `Group::shutdown` stops it with the name `group`; a task that returns
/// the cancellation's error makes `wait` an error that is a shutdown.
#[tokio::test]
async fn group_shutdown_is_a_shutdown_by_the_group() {
    let mut group = Group::<Cancelled>::new();
    group.spawn("server", |ctx| async move {
        ctx.cancelled().await;
        ctx.check()
    });
    assert!(group.shutdown());
    let err = group.wait().await.unwrap_err();
    assert!(err.is_shutdown());
    assert_eq!(err.cause(), shutdown_by("group"));
}

/// `shutdown_on` stops the group when its signal completes, at that
/// instant, whatever the signal outputs.
#[tokio::test(start_paused = true)]
async fn a_group_shuts_down_when_its_signal_completes() {
    let start = Instant::now();
    let mut group = Group::<()>::new().shutdown_on(sleep(Duration::from_secs(3)));
    group.spawn("server", |ctx| async move {
        ctx.cancelled().await;
        assert_eq!(ctx.cause(), Some(shutdown_by("shutdown_on")));
        Ok(())
    });
    group.wait().await.unwrap();
    assert_eq!(Instant::now() - start, Duration::from_secs(3));
}

/// Several `shutdown_on` signals and a deadline: the first to fire stops
/// the group, whichever it is, and the others change nothing after it.
#[tokio::test(start_paused = true)]
async fn the_first_of_several_signals_and_a_deadline_stops_the_group() {
    let start = Instant::now();
    let mut group = Group::<()>::new()
        .timeout(Duration::from_secs(10))
        .shutdown_on(sleep(Duration::from_secs(5)))
        .shutdown_on(sleep(Duration::from_secs(2)));
    group.spawn("server", |ctx| async move {
        ctx.cancelled().await;
        Ok(())
    });
    let ctx = group.ctx();
    group.wait().await.unwrap();
    assert_eq!(Instant::now() - start, Duration::from_secs(2));
    assert_eq!(ctx.cause(), Some(shutdown_by("shutdown_on")));

    // The deadline first, the signal later: the deadline's cause stays.
    let mut group = Group::<Cancelled>::new()
        .timeout(Duration::from_secs(1))
        .shutdown_on(sleep(Duration::from_secs(2)));
    group.spawn("waiting", |ctx| async move {
        ctx.sleep(Duration::from_secs(60)).await
    });
    let err = group.wait().await.unwrap_err();
    assert_eq!(err.cause(), Cause::DeadlineExceeded);
}

/// A signal that never completes keeps nothing running once the group ends.
#[tokio::test]
async fn a_pending_signal_does_not_hold_the_group() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let mut group = Group::<()>::new().shutdown_on(std::future::pending::<()>());
    group.spawn("quick", |_| async { Ok(()) });
    group.wait().await.unwrap();
    // The watcher ends with the group: aborted by `wait` when it returns.
    for _ in 0..10_000 {
        if metrics.num_alive_tasks() == 0 {
            return;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(
        metrics.num_alive_tasks(),
        0,
        "the signal's watcher outlived the group"
    );
}

/// A `CancellationToken` can be the parent of a macro group: its
/// cancellation is a shutdown from outside, under `Parent`.
#[tokio::test]
async fn a_token_parent_shuts_a_macro_group_down() {
    let token = CancellationToken::new();
    let (cause, ()) = errgroup! {
        parent = &token;
        server => { ctx.cancelled().await; Ok::<_, ()>(ctx.cause().unwrap()) },
        outside => { token.cancel(); Ok(()) },
    }
    .unwrap();
    assert_eq!(cause, Cause::Parent(Box::new(shutdown_by("token"))));
    assert!(cause.is_shutdown());
}

/// ... and of a `Group`; a token cancelled before the group starts makes it
/// born cancelled: its tasks still start and see the shutdown, and a task
/// that returns it makes the error a shutdown.
#[tokio::test]
async fn a_token_parent_shuts_a_group_down_and_a_cancelled_one_still_starts() {
    let token = CancellationToken::new();
    let mut group = Group::<()>::with_parent(&token);
    group.spawn("server", |ctx| async move {
        ctx.cancelled().await;
        Ok(())
    });
    token.cancel();
    group.wait().await.unwrap();

    let mut born = Group::<()>::with_parent(token.clone());
    born.spawn("stops", |ctx| async move { ctx.check().map_err(drop) });
    let err = born.wait().await.unwrap_err();
    assert!(err.is_shutdown(), "{err:?}");
}

/// The group hands out a child token cancelled with it, and an owned
/// `'static` future for APIs that take a shutdown signal; cancelling the
/// child token cancels nothing in the group.
#[tokio::test]
async fn the_group_hands_out_a_token_and_an_owned_cancellation() {
    let result: Result<((), ()), Error<&str>> = errgroup! {
        holder => {
            let token = ctx.token();
            token.cancel(); // a child: the group goes on
            assert!(!ctx.is_cancelled());
            let theirs = ctx.token();
            let owned = ctx.cancelled_owned();
            // Another task owns the future, as axum's graceful shutdown would.
            ctx.spawn("graceful", async move {
                owned.await;
                assert!(theirs.is_cancelled());
                Ok::<(), &str>(())
            })
            .unwrap();
            Ok(())
        },
        failing => { tokio::task::yield_now().await; Err("boom") },
    };
    assert_eq!(result.unwrap_err().task().unwrap(), "failing");
}

/// A token handed out after the group was cancelled is cancelled already.
#[tokio::test]
async fn a_token_from_a_cancelled_group_is_cancelled() {
    let group = Group::<()>::new();
    let ctx = group.ctx();
    group.shutdown();
    assert!(ctx.token().is_cancelled());
}

/// A signal that is `IntoFuture` without being a future.
struct After(Duration);

impl std::future::IntoFuture for After {
    type Output = ();
    type IntoFuture = tokio::time::Sleep;

    fn into_future(self) -> Self::IntoFuture {
        sleep(self.0)
    }
}

/// The `shutdown_on` header: the group is shut down on purpose when its
/// signal (any `IntoFuture`) completes, at that instant, and returns `Ok`
/// when every branch still does.
#[tokio::test(start_paused = true)]
async fn the_shutdown_on_header_stops_the_group_when_its_signal_completes() {
    let start = Instant::now();
    let (cause, ticks) = errgroup! {
        shutdown_on = After(Duration::from_millis(2500));
        server => { ctx.cancelled().await; Ok::<_, Cancelled>(ctx.cause()) },
        ticker => {
            let mut ticks = 0;
            while ctx.sleep(Duration::from_secs(1)).await.is_ok() {
                ticks += 1;
            }
            Ok(ticks)
        },
    }
    .unwrap();
    assert_eq!(cause, Some(shutdown_by("shutdown_on")));
    assert_eq!(ticks, 2);
    assert_eq!(Instant::now() - start, Duration::from_millis(2500));
}

/// The signal may borrow (a token's `cancelled()`), and its output is
/// ignored (a oneshot receiver whose sender is dropped gives `Err`).
#[tokio::test]
async fn a_borrowed_signal_or_one_with_an_output_shuts_the_group_down() {
    let token = CancellationToken::new();
    let (cause, ()) = errgroup! {
        shutdown_on = token.cancelled();
        server => { ctx.cancelled().await; Ok::<_, ()>(ctx.cause()) },
        admin => { token.cancel(); Ok(()) },
    }
    .unwrap();
    assert_eq!(cause, Some(shutdown_by("shutdown_on")));

    let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
    let (cause, ()) = errgroup! {
        shutdown_on = rx;
        server => { ctx.cancelled().await; Ok::<_, ()>(ctx.cause()) },
        #[allow(raw_channel)] admin => { drop(tx); Ok(()) },
    }
    .unwrap();
    assert_eq!(cause, Some(shutdown_by("shutdown_on")));
}

/// A failure before the signal completes wins; a signal that never
/// completes changes nothing.
#[tokio::test(start_paused = true)]
async fn with_shutdown_on_a_failure_still_wins_and_a_quiet_signal_changes_nothing() {
    let failed = errgroup! {
        shutdown_on = sleep(Duration::from_secs(10));
        fails => { sleep(Duration::from_secs(1)).await; Err::<(), _>("boom") },
        waits => { ctx.cancelled().await; Ok(()) },
    };
    let err = failed.unwrap_err();
    assert_eq!(err.task().unwrap(), "fails");
    assert_eq!(err.into_inner(), Some("boom"));

    let quiet = errgroup! {
        shutdown_on = std::future::pending::<()>();
        quick => Ok::<_, ()>(1),
    };
    assert_eq!(quiet.unwrap(), (1,));
}
