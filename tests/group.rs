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
