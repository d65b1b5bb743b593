//! Never-`Ok` branches and the service pattern combine:
//! a `loop { ctx.sleep(d).await?; .. }` branch written without a type, in
//! a group ended with `.allow_shutdown()`, compiles (this file is the
//! test: it did not, under edition 2024, nor without the never-type
//! fallback lint under 2018/2021) and stops cleanly; for every kind of
//! branch. A tail of `panic!`, `unreachable!`, `todo!` or `unimplemented!`
//! never yields `Ok` either, and needs no type.

use std::time::Duration;

use errgroup::{AllowShutdown, Cancelled, errgroup};

const TICK: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn a_ticker_that_never_returns_ok_and_allow_shutdown_compile_together() {
    let ((), (), ()) = errgroup! {
        type Error = anyhow::Error;
        ticker => loop { ctx.sleep(TICK).await?; },
        checker => loop { ctx.check()?; ctx.sleep(TICK / 2).await?; },
        admin => { ctx.sleep(TICK * 3).await?; ctx.shutdown(); Ok(()) },
    }
    .allow_shutdown()
    .expect("stopped on purpose");
}

#[tokio::test(start_paused = true)]
async fn every_kind_of_never_ok_branch_combines_with_allow_shutdown() {
    let values = errgroup! {
        type Error = Cancelled;
        #[spawn] spawned => loop { ctx.sleep(TICK).await?; },
        #[blocking] blocking => loop {
            ctx.check()?;
            std::thread::yield_now();
        },
        items => for _ in 0..2 { loop { ctx.sleep(TICK).await?; } },
        nested => {
            errgroup! {
                type Error = Cancelled;
                inner => loop { ctx.sleep(TICK).await?; },
            }
            .allow_shutdown()
            .map_err(|_| ctx.check().unwrap_err())?;
            Ok(())
        },
        admin => { ctx.shutdown(); Ok(()) },
    }
    .allow_shutdown()
    .expect("stopped on purpose");
    assert_eq!(values.2, Vec::<()>::new());
}

fn stopped(ctx: &errgroup::Ctx) -> bool {
    ctx.is_cancelled()
}

/// Each tail below never completes; the branch needs no `Err::<(), _>`.
#[tokio::test]
async fn diverging_macro_tails_never_yield_ok() {
    let err = errgroup! {
        failing => Err("boom"),
        later => {
            if stopped(ctx) {
                return Err("stopped");
            }
            unreachable!("the group is cancelled before this runs")
        },
        todo => { if stopped(ctx) { return Err("todo"); } todo!() },
        unimplemented => { if stopped(ctx) { return Err("unimplemented"); } std::unimplemented!() },
        panics => { if stopped(ctx) { return Err("panics"); } core::panic!("never") },
        statement => { if stopped(ctx) { return Err("statement"); } panic!("never"); },
    }
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "failing");
}

#[tokio::test]
#[should_panic(expected = "the branch panicked")]
async fn a_panic_tail_still_panics_through_the_group() {
    let _ = errgroup! {
        type Error = Cancelled;
        panics => panic!("the branch panicked"),
    };
}
