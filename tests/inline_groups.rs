//! In-task groups whose state stays in their own future until something
//! needs an owned group (`Place` in runtime/state.rs):
//! what needs one gets it on demand, and the code of the group sees no
//! difference.

use std::sync::Mutex;

use errgroup::{Cause, Ctx, Error, errgroup};

/// A helper written for the owned `Ctx`, as users write them.
async fn helper(ctx: &Ctx) -> Result<Option<Cause>, &'static str> {
    ctx.cancelled().await;
    Ok(ctx.cause())
}

/// Passing `ctx` as a `&Ctx` gives the group an owned state; a failure
/// recorded after that still reaches the helper, and is the group's.
#[tokio::test]
async fn a_ctx_passed_as_a_ctx_hears_a_later_failure() {
    let result = errgroup! {
        waiting => helper(ctx).await,
        failing => {
            tokio::task::yield_now().await;
            Err::<(), _>("boom")
        },
    };
    match result {
        Err(Error::Failed { task, error }) => {
            assert_eq!(task, "failing");
            assert_eq!(error, "boom");
        }
        other => panic!("{other:?}"),
    }
}

/// A group created in a branch of a group that had no owned state is its
/// child all the same: the parent's failure cancels it.
#[tokio::test]
async fn a_group_nested_in_an_in_task_branch_is_cancelled_with_it() {
    let seen = Mutex::new(None);
    let result = errgroup! {
        outer => {
            let inner = errgroup! {
                waiting => {
                    ctx.cancelled().await;
                    Ok::<_, &str>(ctx.cause())
                },
            };
            *seen.lock().unwrap() = Some(inner.map_err(|_| "inner")?.0);
            Ok(())
        },
        failing => {
            tokio::task::yield_now().await;
            Err("boom")
        },
    };
    assert_eq!(result.unwrap_err().task().unwrap(), "failing");
    let cause = seen
        .into_inner()
        .unwrap()
        .flatten()
        .expect("the inner group was cancelled");
    assert!(matches!(cause, Cause::Parent(_)), "{cause:?}");
}

/// A clone made in a branch outlives the group and says it finished.
#[tokio::test]
async fn a_clone_made_in_a_branch_reports_finished() {
    let mut kept = None;
    let result = errgroup! {
        a => {
            kept = Some(ctx.clone());
            Ok::<_, ()>(())
        },
    };
    assert!(result.is_ok());
    assert_eq!(kept.unwrap().cause(), Some(Cause::Finished));
}

/// What a branch reads and does on its ctx without an owned state:
/// a shutdown is seen at once, by every branch, and the group returns `Ok`.
#[tokio::test]
async fn a_shutdown_is_seen_without_an_owned_state() {
    let (seen, cause) = errgroup! {
        stop => {
            ctx.shutdown();
            Ok::<_, ()>(ctx.is_cancelled())
        },
        other => Ok(ctx.cause()),
    }
    .unwrap();
    assert!(seen);
    assert!(cause.unwrap().is_shutdown());
}
