//! A group born inside a cancelled parent, or with a deadline already
//! passed, still starts its written branches (semantic 1):
//! they see their ctx cancelled and can clean up, as Go's `g.Go`, Trio's
//! nursery and tokio-graceful-shutdown start such tasks. What is not written
//! still never runs (semantic 9): items not yet pulled, branches waiting for
//! a `limit` slot, `ctx.spawn` after the cancellation.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use errgroup::{Cancelled, Cause, Group, errgroup};

/// A cleanup step: runs in a group made after its parent was shut down.
#[tokio::test]
async fn a_nested_group_made_during_a_shutdown_runs_every_kind_of_branch() {
    let ran = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&ran);
    let ((values,),) = errgroup! {
        type Error = Cancelled;
        stopping => {
            ctx.shutdown();
            let cleanup = errgroup! {
                type Error = Cancelled;
                #[spawn(clone(seen))] spawned => {
                    assert!(ctx.cause().unwrap().is_shutdown());
                    seen.fetch_add(1, SeqCst);
                    Ok(1)
                },
                #[blocking(clone(seen))] blocking => {
                    assert!(ctx.is_cancelled());
                    seen.fetch_add(1, SeqCst);
                    Ok(2)
                },
                in_task => {
                    assert!(matches!(ctx.cause(), Some(Cause::Parent(_))));
                    seen.fetch_add(1, SeqCst);
                    Ok(3)
                },
            }
            .expect("every cleanup branch ran and returned Ok");
            Ok((cleanup,))
        },
    }
    .expect("the branch returned Ok");
    assert_eq!(values, (1, 2, 3));
    assert_eq!(ran.load(SeqCst), 3, "every written branch ran");
}

#[tokio::test(start_paused = true)]
async fn a_zero_timeout_still_starts_the_branches_which_see_the_deadline() {
    let (cause, also) = errgroup! {
        timeout = Duration::ZERO;
        type Error = Cancelled;
        first => Ok(ctx.cause()),
        #[spawn] second => Ok(ctx.cause()),
    }
    .expect("both branches returned Ok");
    assert_eq!(cause, Some(Cause::DeadlineExceeded));
    assert_eq!(also, Some(Cause::DeadlineExceeded));
}

/// A branch that returns the cancellation makes the group's result the
/// cancellation, as after any deadline: it ran, and said so.
#[tokio::test(start_paused = true)]
async fn a_branch_that_returns_the_cancellation_leaves_the_group_cancelled() {
    let ran = AtomicUsize::new(0);
    let err = errgroup! {
        timeout = Duration::ZERO;
        type Error = Cancelled;
        checks => { ran.fetch_add(1, SeqCst); ctx.check() },
    }
    .unwrap_err();
    assert_eq!(ran.load(SeqCst), 1);
    assert_eq!(err.cause(), Cause::DeadlineExceeded);
}

#[tokio::test]
async fn a_group_made_under_a_cancelled_parent_starts_its_tasks() {
    let parent = Group::<Cancelled>::new();
    let parent_ctx = parent.ctx();
    drop(parent); // cancels it
    let mut child = Group::<Cancelled>::with_parent(&parent_ctx).returning::<u32>();
    child.spawn("cleanup", |ctx| async move {
        assert!(matches!(ctx.cause(), Some(Cause::Parent(_))));
        Ok(1)
    });
    assert!(child.try_spawn("also", |_| async { Ok(2) }));
    assert_eq!(child.wait_all().await.expect("both tasks ran"), [1, 2]);
}

#[tokio::test]
async fn a_group_task_spawned_after_the_group_failed_still_starts() {
    let ran = Arc::new(AtomicUsize::new(0));
    let mut group = Group::<&str>::new();
    group.spawn("fails", |_| async { Err("boom") });
    tokio::task::yield_now().await;
    let seen = Arc::clone(&ran);
    group.spawn("late", move |ctx| async move {
        ctx.cancelled().await;
        seen.fetch_add(1, SeqCst);
        Ok(())
    });
    let err = group.wait().await.unwrap_err();
    assert_eq!(err.task().unwrap(), "fails");
    assert_eq!(ran.load(SeqCst), 1, "as Go's g.Go, the late task ran");
}

/// Written branches start, items do not: a fan-out in a group born
/// cancelled pulls nothing and gives no value.
#[tokio::test(start_paused = true)]
async fn items_not_yet_pulled_still_never_run() {
    let pulled = AtomicUsize::new(0);
    let err = errgroup! {
        timeout = Duration::ZERO;
        type Error = Cancelled;
        items => for i in (0..3).inspect(|_| { pulled.fetch_add(1, SeqCst); }) { Ok(i) },
        plain => Ok(()),
    }
    .unwrap_err();
    assert_eq!(pulled.load(SeqCst), 0);
    assert_eq!(err.cause(), Cause::DeadlineExceeded);
}

/// Written branches start as `limit` allows: the one that finds a slot
/// runs, the one that would have to wait for one never does.
#[tokio::test(start_paused = true)]
async fn a_branch_waiting_for_a_limit_slot_still_never_runs() {
    let ran = AtomicUsize::new(0);
    let err = errgroup! {
        timeout = Duration::ZERO;
        limit = 1;
        type Error = Cancelled;
        first => { ran.fetch_add(1, SeqCst); Ok(()) },
        second => { ran.fetch_add(10, SeqCst); Ok(()) },
    }
    .unwrap_err();
    assert_eq!(ran.load(SeqCst), 1);
    assert_eq!(err.cause(), Cause::DeadlineExceeded);
}

#[tokio::test(start_paused = true)]
async fn a_ctx_spawn_in_a_group_born_cancelled_is_still_refused() {
    let (refused,) = errgroup! {
        timeout = Duration::ZERO;
        type Error = Cancelled;
        asks => Ok(ctx.spawn("task", async { Ok(()) }).is_err()),
    }
    .expect("the branch ran and returned Ok");
    assert!(refused);
}
