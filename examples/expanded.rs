//! What `errgroup!` writes for a small group, side by side with the block
//! it came from: `cargo run --example expanded` runs both and checks that
//! they agree. The expansion below is the macro's own output, token for
//! token (macros/src/tests.rs fails if they drift apart), formatted by
//! rustfmt.
//!
//! The shape: a `Scope` built from the headers (none here), one `ctx` per
//! branch, one constructor per branch (`InTask` polls the body in this
//! task, so it may borrow; `Spawn` makes it a tokio task; `Blocking` runs
//! it on the blocking pool), and `scope.run(..)`, the runtime's loop, which
//! polls the branches, waits for every one, and returns their values or the
//! first error. `ctx` is the only name the body sees; the `__errgroup_*`
//! names are invisible to it (mixed-site hygiene). The empty `fn ctx` in the
//! block around the branches shadows any item of yours named `ctx` (a
//! const, a unit struct), which would otherwise turn each `let ctx` into a
//! pattern match. Everything is reached
//! through `::errgroup::__private`, which is not public API. Each value and
//! name a branch mentions (`id`, `fetch_user(..)`, the `.await`'s output)
//! passes through a check of its type in code that never runs
//! (`pass_check(x, |v| ..)`, `match x { v => { if false { .. } v } }`):
//! the raw-channel and detached-spawn check (README, "Raw channels and
//! detached spawns"); it costs nothing at run time.

use std::time::Duration;

use errgroup::{Ctx, Error, errgroup};

async fn fetch_user(ctx: &Ctx, id: u64) -> anyhow::Result<String> {
    ctx.sleep(Duration::from_millis(5)).await?;
    Ok(format!("user {id}"))
}

async fn fetch_orders(id: u64) -> anyhow::Result<Vec<u64>> {
    tokio::time::sleep(Duration::from_millis(5)).await;
    Ok(vec![id * 10, id * 10 + 1])
}

/// The block as written.
async fn written(id: u64) -> Result<(String, Vec<u64>), Error<anyhow::Error>> {
    errgroup! {
        user => fetch_user(ctx, id).await,
        #[spawn] orders => fetch_orders(id).await,
    }
}

/// The same block, expanded.
#[allow(
    unused_parens,
    dead_code,
    unused_variables,
    clippy::all,
    clippy::pedantic,
    reason = "the expansion as the macro writes it: rustc and clippy do not lint a macro's own tokens, which here are written by hand"
)]
async fn expanded(id: u64) -> Result<(String, Vec<u64>), Error<anyhow::Error>> {
    {
        use ::errgroup::__private::lints::{self as errgroup_lints, via::*};
        let __errgroup_scope = ::errgroup::__private::Scope::<_>::new(
            ::errgroup::__private::Config::new().with_core(),
        );
        let __errgroup_ctx0 = __errgroup_scope.ctx("user");
        let __errgroup_ctx1 = __errgroup_scope.owned_ctx("orders");
        let __errgroup_branches = {
            fn ctx() {}
            ::errgroup::__private::join((
                ::errgroup::__private::InTask.branch(&__errgroup_scope, "user", async {
                    let ctx: &::errgroup::BranchCtx<_> = &__errgroup_ctx0;
                    (match (match fetch_user(
                        ctx,
                        errgroup_lints::pass_check(id, |errgroup_value| {
                            let errgroup_verdict =
                                (errgroup_lints::function(&errgroup_value)).errgroup_verdict();
                            errgroup_lints::GroupChannel::errgroup_bound(
                                (errgroup_verdict).channel(),
                            );
                            errgroup_lints::GroupTask::errgroup_bound((errgroup_verdict).task());
                        }),
                    ) {
                        errgroup_value => {
                            #[allow(unreachable_code)]
                            if false {
                                loop {}
                                let errgroup_verdict =
                                    (errgroup_lints::probe(&errgroup_value)).errgroup_verdict();
                                errgroup_lints::GroupChannel::errgroup_bound(
                                    (errgroup_verdict).channel(),
                                );
                                errgroup_lints::GroupTask::errgroup_bound(
                                    (errgroup_verdict).task(),
                                );
                            }
                            errgroup_value
                        }
                    })
                    .await
                    {
                        errgroup_value => {
                            #[allow(unreachable_code)]
                            if false {
                                loop {}
                                let errgroup_verdict =
                                    (errgroup_lints::probe(&errgroup_value)).errgroup_verdict();
                                errgroup_lints::GroupChannel::errgroup_bound(
                                    (errgroup_verdict).channel(),
                                );
                                errgroup_lints::GroupTask::errgroup_bound(
                                    (errgroup_verdict).task(),
                                );
                            }
                            errgroup_value
                        }
                    })
                }),
                ::errgroup::__private::Spawn.branch(&__errgroup_scope, "orders", async move {
                    let ctx: &::errgroup::BranchCtx<_> = &__errgroup_ctx1;
                    (match (match fetch_orders(errgroup_lints::pass_check(id, |errgroup_value| {
                        let errgroup_verdict =
                            (errgroup_lints::function(&errgroup_value)).errgroup_verdict();
                        errgroup_lints::GroupChannel::errgroup_bound((errgroup_verdict).channel());
                        errgroup_lints::GroupTask::errgroup_bound((errgroup_verdict).task());
                    })) {
                        errgroup_value => {
                            #[allow(unreachable_code)]
                            if false {
                                loop {}
                                let errgroup_verdict =
                                    (errgroup_lints::probe(&errgroup_value)).errgroup_verdict();
                                errgroup_lints::GroupChannel::errgroup_bound(
                                    (errgroup_verdict).channel(),
                                );
                                errgroup_lints::GroupTask::errgroup_bound(
                                    (errgroup_verdict).task(),
                                );
                            }
                            errgroup_value
                        }
                    })
                    .await
                    {
                        errgroup_value => {
                            #[allow(unreachable_code)]
                            if false {
                                loop {}
                                let errgroup_verdict =
                                    (errgroup_lints::probe(&errgroup_value)).errgroup_verdict();
                                errgroup_lints::GroupChannel::errgroup_bound(
                                    (errgroup_verdict).channel(),
                                );
                                errgroup_lints::GroupTask::errgroup_bound(
                                    (errgroup_verdict).task(),
                                );
                            }
                            errgroup_value
                        }
                    })
                }),
            ))
        };
        let __errgroup_branches = ::errgroup::__private::pin!(__errgroup_branches);
        __errgroup_scope.run(__errgroup_branches).await
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let by_macro = written(7).await?;
    let by_hand = expanded(7).await?;
    assert_eq!(by_macro, by_hand);
    println!("errgroup! gave {by_macro:?}, its expansion {by_hand:?}");
    Ok(())
}
