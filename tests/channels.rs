//! Group-bound channels: `let (tx, rx) = channel(cap);` headers and
//! `ctx.channel(cap)`, closed by their group's cancellation.

use std::collections::HashSet;
use std::time::Duration;

use errgroup::{Cause, Group, errgroup};

mod common;
use tokio::time::Instant;

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Asserts that the tasks alive are back to `baseline`. A task that has
/// ended is released by its worker a moment after its joiner hears of it,
/// and on a loaded machine that worker may be preempted in between: the
/// wait is bounded by the failsafe (on the multi-thread runtimes), and by a
/// count of turns (the paused clock does not advance while this yields).
async fn assert_back_to(baseline: usize) {
    common::within_failsafe("tasks left running", async {
        for _ in 0..10_000_000 {
            if alive_tasks() == baseline {
                return;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(alive_tasks(), baseline, "tasks left running");
    })
    .await;
}

struct Block(u64);

fn blocks<C>(_ctx: &C) -> impl Iterator<Item = Block> + use<C> {
    (0..100).map(Block)
}

async fn store(stored: &std::sync::atomic::AtomicU64, b: Block) -> anyhow::Result<()> {
    stored.fetch_add(b.0, std::sync::atomic::Ordering::Relaxed);
    tokio::task::yield_now().await;
    Ok(())
}

#[tokio::test]
async fn the_header_works_as_the_design_shows() -> anyhow::Result<()> {
    let stored = std::sync::atomic::AtomicU64::new(0);
    let stored = &stored;
    // The README's Channels block: every branch there ends in `Ok(())`,
    // so only its `type Error` header fixes the error type.
    errgroup! {
        type Error = anyhow::Error;
        let (tx, rx) = channel::<Block>(1024);
        produce => { for b in blocks(&ctx) { tx.send(b).await?; } Ok(()) },
        consume => { while let Some(b) = rx.recv().await? { store(stored, b).await?; } Ok(()) },
    }?;
    assert_eq!(stored.load(std::sync::atomic::Ordering::Relaxed), 4950);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_thousand_branches_blocked_on_channels_return_at_once_when_one_fails() {
    let start = Instant::now();
    let blocked = std::sync::atomic::AtomicUsize::new(0);
    let blocked = &blocked;
    let result = errgroup! {
        type Error = anyhow::Error;
        let (full_tx, full_rx) = channel::<u32>(1);
        let (empty_tx, empty_rx) = channel::<u32>(1);
        // Keeps a receiver of the full channel and a sender of the empty one.
        hold => {
            full_tx.try_send(0).map_err(|e| anyhow::anyhow!("{e}"))?;
            let _ = (&full_rx, &empty_tx);
            ctx.cancelled().await;
            Ok(())
        },
        senders => for n in 0..500u32 {
            blocked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            full_tx.send(n).await?;
            Ok(())
        },
        receivers => for _ in 0..500 {
            blocked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            empty_rx.recv().await?;
            Ok(())
        },
        fail => {
            while blocked.load(std::sync::atomic::Ordering::SeqCst) < 1000 {
                tokio::task::yield_now().await;
            }
            // Let every one of them reach its wait.
            tokio::task::yield_now().await;
            Err::<(), _>(anyhow::anyhow!("boom"))
        },
    };
    let err = result.unwrap_err();
    assert_eq!(err.task().unwrap(), "fail");
    assert_eq!(Instant::now(), start, "no time passed on the paused clock");
}

#[tokio::test]
async fn a_consumer_loop_ends_cleanly_when_the_producers_finish_and_sees_every_item_once() {
    let ((), (), received) = errgroup! {
        type Error = anyhow::Error;
        let (tx, rx) = channel::<u64>(8);
        low => { for n in 0..5_000 { tx.send(n).await?; } Ok(()) },
        high => { for n in 5_000..10_000 { tx.send(n).await?; } Ok(()) },
        consume => {
            let mut seen = Vec::new();
            while let Some(x) = rx.recv().await? {
                seen.push(x);
            }
            Ok(seen)
        },
    }
    .unwrap();
    assert_eq!(received.len(), 10_000);
    let unique: HashSet<u64> = received.into_iter().collect();
    assert_eq!(unique.len(), 10_000);
}

#[tokio::test]
async fn a_sender_named_by_no_branch_does_not_keep_the_channel_open() {
    let (count,) = errgroup! {
        type Error = anyhow::Error;
        let (_unused_tx, rx) = channel::<u8>(4);
        drain => { let mut n = 0; while rx.recv().await?.is_some() { n += 1; } Ok(n) },
    }
    .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn a_failed_send_gives_its_value_back_and_says_why() {
    let (gone, cancelled) = errgroup! {
        type Error = anyhow::Error;
        no_receiver => {
            let (tx, rx) = ctx.channel::<String>(1);
            drop(rx);
            let err = tx.send("kept".to_string()).await.unwrap_err();
            assert!(err.cancelled().is_none());
            Ok(err.into_inner())
        },
        cancelled => {
            let inner = Group::<anyhow::Error>::new();
            let (tx, _rx) = ctx.channel::<String>(1);
            drop(inner);
            tx.try_send("first".to_string()).unwrap();
            Ok(tx)
        },
    }
    .unwrap();
    assert_eq!(gone, "kept");
    // The group has returned: its channels are closed with `Finished`.
    let err = cancelled.try_send("late".to_string()).unwrap_err();
    let errgroup::TrySendError::Closed(err) = err else {
        panic!("expected closed");
    };
    assert_eq!(err.cancelled().unwrap().cause(), &Cause::Finished);
    assert_eq!(err.into_inner(), "late");
}

#[tokio::test]
async fn send_errors_convert_into_anyhow_for_items_that_are_neither_debug_nor_sync() {
    struct NotDebug(#[allow(dead_code)] std::cell::Cell<u8>);
    let result: anyhow::Result<()> = async {
        errgroup! {
            type Error = anyhow::Error;
            send => {
                let (tx, rx) = ctx.channel::<NotDebug>(1);
                drop(rx);
                tx.send(NotDebug(std::cell::Cell::new(1))).await?;
                Ok(())
            },
        }?;
        Ok(())
    }
    .await;
    assert!(result.unwrap_err().to_string().contains("send"));
}

#[tokio::test(start_paused = true)]
async fn a_parent_cancellation_closes_the_channel() {
    let start = Instant::now();
    let causes = std::sync::Mutex::new(Vec::new());
    let causes = &causes;
    let result = errgroup! {
        type Error = anyhow::Error;
        outer => {
            errgroup! {
                type Error = anyhow::Error;
                let (full_tx, full_rx) = channel::<u8>(1);
                let (empty_tx, empty_rx) = channel::<u8>(1);
                hold => { let _ = (&full_rx, &empty_tx); ctx.cancelled().await; Ok(()) },
                send => {
                    full_tx.send(1).await?;
                    let err = full_tx.send(2).await.unwrap_err();
                    causes.lock().unwrap().push(err.cancelled().unwrap().cause().clone());
                    Ok(())
                },
                recv => {
                    let err = empty_rx.recv().await.unwrap_err();
                    causes.lock().unwrap().push(err.cause().clone());
                    Ok(())
                },
            }?;
            Ok(())
        },
        fail => {
            tokio::task::yield_now().await;
            Err::<(), _>(anyhow::anyhow!("boom"))
        },
    };
    assert_eq!(result.unwrap_err().task().unwrap(), "fail");
    let parent = Cause::Parent(Box::new(Cause::Failed {
        task: "fail".into(),
    }));
    assert_eq!(*causes.lock().unwrap(), [parent.clone(), parent]);
    assert_eq!(Instant::now(), start);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_closes_the_channel() {
    let start = Instant::now();
    let result = errgroup! {
        type Error = anyhow::Error;
        timeout = Duration::from_secs(5);
        let (tx, rx) = channel::<u8>(1);
        recv => { let _ = &tx; rx.recv().await?; Ok(()) },
    };
    let err = result.unwrap_err();
    assert!(err.is_cancelled());
    assert_eq!(err.cause(), Cause::DeadlineExceeded);
    assert_eq!(Instant::now(), start + Duration::from_secs(5));
}

/// producer -> `workers` workers -> collector; `fail_at` makes one worker fail.
async fn pipeline(
    workers: usize,
    fail_at: Option<u64>,
) -> Result<u64, errgroup::Error<anyhow::Error>> {
    let ((), _, sum) = errgroup! {
        type Error = anyhow::Error;
        let (jobs_tx, jobs_rx) = channel::<u64>(16);
        let (done_tx, done_rx) = unbounded::<u64>();
        produce => { for n in 0..1_000 { jobs_tx.send(n).await?; } Ok(()) },
        #[spawn] work => for _ in 0..workers {
            while let Some(n) = jobs_rx.recv().await? {
                if Some(n) == fail_at {
                    anyhow::bail!("bad job {n}");
                }
                done_tx.send(n * 2).await?;
            }
            Ok(())
        },
        collect => {
            let mut sum = 0;
            while let Some(n) = done_rx.recv().await? { sum += n; }
            Ok(sum)
        },
    }?;
    Ok(sum)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_shuts_down_cleanly_on_success() {
    let baseline = alive_tasks();
    assert_eq!(pipeline(4, None).await.unwrap(), 999 * 1_000);
    assert_back_to(baseline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_shuts_down_cleanly_on_a_worker_error() {
    let baseline = alive_tasks();
    let err = pipeline(4, Some(500)).await.unwrap_err();
    assert_eq!(err.task().unwrap().name(), "work");
    assert_back_to(baseline).await;
}

#[tokio::test(start_paused = true)]
async fn a_pipeline_shuts_down_cleanly_on_an_outer_timeout() {
    let baseline = alive_tasks();
    let outcome = tokio::time::timeout(Duration::from_secs(1), async {
        errgroup! {
            type Error = anyhow::Error;
            let (jobs_tx, jobs_rx) = channel::<u64>(4);
            produce => { for n in 0.. { jobs_tx.send(n).await?; } Ok(()) },
            #[spawn] work => for _ in 0..3 {
                while let Some(_n) = jobs_rx.recv().await? {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok(())
            },
        }
    })
    .await;
    assert!(outcome.is_err(), "the timeout fired");
    assert_back_to(baseline).await;
}

/// What `send` accepted but nobody received before the cancellation is
/// handed out by `drain`, not lost: every item is received, drained, or
/// handed back by its failed send, exactly once.
#[tokio::test(start_paused = true)]
async fn drain_hands_out_what_was_buffered_at_the_cancellation() {
    let mut received = Vec::new();
    let mut drained = Vec::new();
    let mut returned = Vec::new();
    let result = errgroup! {
        type Error = anyhow::Error;
        let (tx, rx) = channel::<u32>(4);
        produce => {
            for item in 0..100 {
                if let Err(err) = tx.send(item).await {
                    returned.push(err.into_inner());
                    break;
                }
            }
            Ok(())
        },
        consume => {
            // Takes two, then fails while the producer has filled the buffer.
            for _ in 0..2 {
                received.extend(rx.recv().await?);
            }
            while rx.len() < 4 {
                tokio::task::yield_now().await;
            }
            Err::<(), _>(anyhow::anyhow!("consumer failed"))
        },
        reclaim => {
            ctx.cancelled().await;
            drained.extend(rx.drain());
            Ok(())
        },
    };
    assert!(result.is_err());
    assert_eq!(received, [0, 1]);
    assert_eq!(drained, [2, 3, 4, 5], "the full buffer, in order");
    assert_eq!(
        returned,
        [6],
        "the send blocked on the full buffer fails with its value"
    );
}

/// A capacity of 0 (Go's unbuffered channel) is refused at once, with a
/// message that names the fix.
#[tokio::test]
#[should_panic(
    expected = "needs room for at least one item, got capacity 0 (Go's unbuffered channel has no equivalent here): use `channel(1)`"
)]
async fn a_zero_capacity_channel_is_refused_with_the_fix() {
    let group = Group::<()>::new();
    let _ = group.ctx().channel::<u8>(0);
}
