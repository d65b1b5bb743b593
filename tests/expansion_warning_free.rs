//! Lint-clean expansions: every branch kind and header of `errgroup!`, compiled under `#![deny(warnings, clippy::pedantic)]` (CI runs `cargo clippy --all-targets -- -D warnings`).

#![deny(warnings, clippy::pedantic)]

use std::time::Duration;

use errgroup::{Cancelled, Ctx, Error, errgroup};
use tokio::time::Instant;

#[derive(Debug, PartialEq)]
enum AppError {
    Cancelled,
    Invalid(&'static str),
}

impl From<Cancelled> for AppError {
    fn from(_: Cancelled) -> Self {
        AppError::Cancelled
    }
}

async fn double(ctx: &Ctx, n: u32) -> Result<u32, AppError> {
    ctx.sleep(Duration::from_millis(1)).await?;
    Ok(n * 2)
}

/// Every branch kind, with `timeout`, `limit` and `type Error`.
async fn branch_kinds(input: &[u32]) -> Result<(u32, u32, u32, u32, usize), Error<AppError>> {
    let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
    let len = input.len();
    errgroup! {
        timeout = Duration::from_secs(5);
        limit = 4;
        type Error = AppError;
        plain => double(ctx, input[0]).await,
        #[spawn] spawned => {
            ctx.check()?;
            Ok(7)
        },
        #[blocking] blocking => {
            if ctx.is_cancelled() {
                return Err(AppError::Cancelled);
            }
            len.try_into().map_err(|_| AppError::Invalid("too long"))
        },
        #[allow(raw_channel)] channel => {
            tx.send(3).map_err(|_| AppError::Invalid("closed"))?;
            rx.await.map_err(|_| AppError::Invalid("closed"))
        },
        #[allow(detached_spawn)] joined => {
            let handle = tokio::spawn(async { 5_usize });
            handle.await.map_err(|_| AppError::Invalid("join"))
        },
    }
}

/// `deadline`, `parent` and a nested group.
async fn deadline_and_parent() -> Result<(String,), Error<AppError>> {
    let at = Instant::now() + Duration::from_secs(5);
    errgroup! {
        deadline = at;
        outer => {
            let (name,) = errgroup! {
                parent = ctx;
                inner => Ok::<_, AppError>(ctx.task().to_string()),
            }
            .map_err(|_| AppError::Invalid("inner"))?;
            Ok(name)
        },
    }
}

/// `on_error = continue`.
async fn supervised() -> Result<(Result<u8, AppError>, Result<u8, AppError>), Error<AppError>> {
    errgroup! {
        on_error = continue;
        good => Ok(1),
        bad => Err(AppError::Invalid("bad")),
    }
}

/// `shutdown_on`, `crate` and a channel header.
async fn signalled() -> Result<(u32, Option<errgroup::Cause>), Error<AppError>> {
    errgroup! {
        crate = ::errgroup;
        shutdown_on = tokio::time::sleep(Duration::from_millis(1));
        let (tx, rx) = channel::<u32>(1);
        produce => {
            tx.send(1).await.map_err(|_| AppError::Cancelled)?;
            Ok(rx.recv().await?.unwrap_or(0))
        },
        serve => {
            ctx.cancelled().await;
            Ok(ctx.cause())
        },
    }
}

/// Fan-out branches of every kind, `grace`, and `ctx.spawn`.
async fn fan_outs(input: &[u32]) -> Result<(Vec<u32>, Vec<u32>, Vec<u32>, ()), Error<AppError>> {
    errgroup! {
        grace = Duration::from_secs(1);
        limit = 2;
        in_task => for &n in input { double(ctx, n).await },
        #[spawn] spawned => for _unused in 0..2_u32 { Ok(ctx.task().index().map_or(0, |i| u32::try_from(i).unwrap_or(0))) },
        #[blocking] blocking => for n in vec![1_u32, 2] { Ok(n + u32::from(ctx.is_cancelled())) },
        background => {
            ctx.spawn("flush", async { Ok::<_, AppError>(()) })
                .map_err(|_| AppError::Cancelled)?;
            Ok(())
        },
    }
}

#[tokio::test]
async fn every_branch_kind_and_header_expands_lint_clean() {
    let (doubled, indices, blocking, ()) = fan_outs(&[1, 2]).await.unwrap();
    assert_eq!(
        (doubled, indices, blocking),
        (vec![2, 4], vec![0, 1], vec![1, 2])
    );

    let (plain, spawned, blocking, channel, joined) = branch_kinds(&[21, 0]).await.unwrap();
    assert_eq!(
        (plain, spawned, blocking, channel, joined),
        (42, 7, 2, 3, 5)
    );

    let (name,) = deadline_and_parent().await.unwrap();
    assert_eq!(name, "inner");

    let (received, cause) = signalled().await.unwrap();
    assert_eq!(received, 1);
    assert!(cause.is_some_and(|c| c.is_shutdown()));

    let (good, bad) = supervised().await.unwrap();
    assert_eq!(good, Ok(1));
    assert_eq!(bad, Err(AppError::Invalid("bad")));
}
