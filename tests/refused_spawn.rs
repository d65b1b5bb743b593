//! A refused `ctx.spawn` is the caller's business: the
//! caller got `Err(Cancelled)` and decided what to do with it. A branch that
//! heard the refusal and still returned `Ok` leaves the group's result as
//! its branches make it: `Ok` when every branch returned `Ok` after a
//! shutdown or a deadline (semantic 5), whatever kind of branch or task
//! asked, and through the typed and the untyped `spawn`.

use std::time::Duration;

use errgroup::{Cancelled, Ctx, Group, errgroup};

/// Shuts the group down as `ctx`, then asks for a task: refused.
fn shut_down_then_spawn(ctx: &Ctx) {
    ctx.shutdown();
    let refused = ctx.spawn("late", async { Ok::<(), Cancelled>(()) });
    assert!(refused.unwrap_err().cause().is_shutdown());
}

#[tokio::test]
async fn a_branch_that_heard_the_refusal_and_returned_ok_leaves_the_group_ok() {
    let (a, b) = errgroup! {
        type Error = Cancelled;
        asks => {
            ctx.shutdown();
            let refused = ctx.spawn("late", async { Ok(()) });
            assert!(refused.is_err());
            Ok(1)
        },
        other => { ctx.cancelled().await; Ok(2) },
    }
    .expect("every branch returned Ok: the refusal was the caller's");
    assert_eq!((a, b), (1, 2));
}

/// One group per kind of branch: a fan-out pulls no item once its group
/// is cancelled, so each asks in a group of its own.
#[tokio::test]
async fn the_same_from_spawn_and_blocking_branches_and_fan_out_items() {
    let (spawned,) = errgroup! {
        type Error = Cancelled;
        #[spawn] spawned => { shut_down_then_spawn(ctx); Ok(1) },
    }
    .expect("the #[spawn] branch returned Ok");
    assert_eq!(spawned, 1);
    let (blocking,) = errgroup! {
        type Error = Cancelled;
        #[blocking] blocking => { shut_down_then_spawn(ctx); Ok(2) },
    }
    .expect("the #[blocking] branch returned Ok");
    assert_eq!(blocking, 2);
    let (items,) = errgroup! {
        type Error = Cancelled;
        items => for i in 0..1 { shut_down_then_spawn(ctx); Ok(i) },
    }
    .expect("the item returned Ok");
    assert_eq!(items, [0]);
    let (items,) = errgroup! {
        type Error = Cancelled;
        #[spawn] items => for i in 0..1 { shut_down_then_spawn(ctx); Ok(i) },
    }
    .expect("the #[spawn] item returned Ok");
    assert_eq!(items, [0]);
    let (items,) = errgroup! {
        type Error = Cancelled;
        #[blocking] items => for i in 0..1 { shut_down_then_spawn(ctx); Ok(i) },
    }
    .expect("the #[blocking] item returned Ok");
    assert_eq!(items, [0]);
    let (typed,) = errgroup! {
        type Error = Cancelled;
        typed => {
            ctx.shutdown();
            assert!(ctx.spawn_with("late", |_| async { Ok(()) }).is_err());
            Ok(3)
        },
    }
    .expect("the branch returned Ok");
    assert_eq!(typed, 3);
}

#[tokio::test(start_paused = true)]
async fn a_spawn_refused_after_the_deadline_does_not_fail_the_group() {
    let (value,) = errgroup! {
        timeout = Duration::from_secs(1);
        type Error = Cancelled;
        late => {
            assert!(ctx.sleep(Duration::from_secs(5)).await.is_err());
            assert!(ctx.spawn("too_late", async { Ok(()) }).is_err());
            Ok(7)
        },
    }
    .expect("the branch returned Ok after the deadline");
    assert_eq!(value, 7);
}

#[tokio::test]
async fn a_group_task_whose_untyped_spawn_was_refused_leaves_wait_ok() {
    let mut group = Group::<Cancelled>::new();
    group.spawn("admin", |ctx| async move {
        shut_down_then_spawn(&ctx);
        Ok(())
    });
    group.spawn("server", |ctx| async move {
        ctx.cancelled().await;
        Ok(())
    });
    group.wait().await.expect("every task returned Ok");
}

#[tokio::test]
async fn a_task_whose_own_spawn_was_refused_leaves_the_group_ok() {
    let ((),) = errgroup! {
        type Error = Cancelled;
        parent => {
            ctx.spawn_with("child", |ctx| async move {
                shut_down_then_spawn(&ctx);
                Ok(())
            })?;
            Ok(())
        },
    }
    .expect("the task returned Ok");
}

#[tokio::test]
async fn a_nested_group_whose_spawn_was_refused_is_ok_and_so_is_its_parent() {
    let ((inner,),) = errgroup! {
        type Error = Cancelled;
        outer => {
            let inner = errgroup! {
                type Error = Cancelled;
                asks => { shut_down_then_spawn(ctx); Ok(5) },
            }
            .expect("the inner branch returned Ok");
            Ok(inner)
        },
    }
    .expect("the outer branch returned Ok");
    assert_eq!(inner, 5);
}
