//! Cancellation under load: 10,000 branches move messages
//! through two group channels at full speed (producers -> relays ->
//! consumers) when one consumer fails.
//!
//! What the group channel guarantees, and these tests hold it to: every
//! message a branch made is, exactly once,
//! - received by a consumer, or
//! - handed back to its sender by the failed `send` (`SendError::into_inner`), or
//! - dropped inside a channel's buffer: its `send` returned `Ok`, but the
//!   cancellation closed the channel before anyone received it. A `recv`
//!   called after the cancellation fails even with items buffered (by
//!   design); one already waiting when it came may still take one. At most
//!   a buffer's worth per channel.
//!
//! No message vanishes or is counted twice, and every producer gets its
//! last value back (its loop only ends on a failed send).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll};

use errgroup::{Receiver, Sender, errgroup};
use tokio::time::Instant;

mod common;
use common::{leak, within_failsafe};

const PRODUCERS: usize = 3_333;
const RELAYS: usize = 3_333;
const CONSUMERS: usize = 3_334;
/// Each channel's capacity.
const CAP: usize = 64;
/// The consumer that receives this many-th message fails.
const FAIL_AFTER: usize = 30_000;

/// Counts of what happened to the messages of one run.
#[derive(Default)]
struct Ledger {
    made: AtomicUsize,
    /// Successful sends, per channel.
    accepted: [AtomicUsize; 2],
    /// Handed back by a failed send, per channel.
    returned: [AtomicUsize; 2],
    /// Dropped unsettled, per channel: left in its buffer.
    dropped: [AtomicUsize; 2],
    /// Received from the first channel by a relay.
    relayed: AtomicUsize,
    /// Received from the second channel by a consumer.
    received: AtomicUsize,
    /// Set by the failing consumer, at the instant it fails.
    failed: AtomicBool,
    /// Polls of branch bodies after the failure.
    branch_polls: AtomicUsize,
    /// Polls of the group future after the failure.
    group_polls: AtomicUsize,
    /// Branch bodies started and not yet dropped.
    live: AtomicUsize,
    /// The producers whose last `send` handed its value back.
    producers_refunded: AtomicUsize,
}

/// A message that counts itself as dropped (in the buffer of the channel
/// it was last sent on) unless it was settled.
struct Msg {
    ledger: &'static Ledger,
    /// 0 on the first channel, 1 on the second.
    hop: usize,
    settled: bool,
}

impl Msg {
    fn new(ledger: &'static Ledger) -> Self {
        ledger.made.fetch_add(1, SeqCst);
        Msg {
            ledger,
            hop: 0,
            settled: false,
        }
    }

    fn settle(mut self, count: &AtomicUsize) {
        self.settled = true;
        count.fetch_add(1, SeqCst);
    }
}

impl Drop for Msg {
    fn drop(&mut self) {
        if !self.settled {
            self.ledger.dropped[self.hop].fetch_add(1, SeqCst);
        }
    }
}

#[derive(Debug)]
enum Stop {
    Failed,
    Cancelled,
}

/// Counts the polls of `fut` that happen after the failure.
struct Polled<'a, F> {
    fut: Pin<Box<F>>,
    failed: &'a AtomicBool,
    polls: &'a AtomicUsize,
}

impl<'a, F> Polled<'a, F> {
    fn new(fut: F, failed: &'a AtomicBool, polls: &'a AtomicUsize) -> Self {
        Polled {
            fut: Box::pin(fut),
            failed,
            polls,
        }
    }
}

impl<F: Future> Future for Polled<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if self.failed.load(SeqCst) {
            self.polls.fetch_add(1, SeqCst);
        }
        self.fut.as_mut().poll(cx)
    }
}

/// Counts a branch body as live until it is dropped.
struct Live(&'static Ledger);

impl Live {
    fn new(ledger: &'static Ledger) -> Self {
        ledger.live.fetch_add(1, SeqCst);
        Live(ledger)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, SeqCst);
    }
}

async fn produce(tx: Sender<Msg>, ledger: &'static Ledger) -> Result<(), Stop> {
    let branch = async {
        let _live = Live::new(ledger);
        loop {
            match tx.send(Msg::new(ledger)).await {
                Ok(()) => ledger.accepted[0].fetch_add(1, SeqCst),
                Err(e) => {
                    e.into_inner().settle(&ledger.returned[0]);
                    ledger.producers_refunded.fetch_add(1, SeqCst);
                    return Err(Stop::Cancelled);
                }
            };
        }
    };
    Polled::new(branch, &ledger.failed, &ledger.branch_polls).await
}

async fn relay(rx: Receiver<Msg>, tx: Sender<Msg>, ledger: &'static Ledger) -> Result<(), Stop> {
    let branch = async {
        let _live = Live::new(ledger);
        while let Some(mut msg) = rx.recv().await.map_err(|_| Stop::Cancelled)? {
            ledger.relayed.fetch_add(1, SeqCst);
            msg.hop = 1;
            match tx.send(msg).await {
                Ok(()) => ledger.accepted[1].fetch_add(1, SeqCst),
                Err(e) => {
                    e.into_inner().settle(&ledger.returned[1]);
                    return Err(Stop::Cancelled);
                }
            };
        }
        Ok(())
    };
    Polled::new(branch, &ledger.failed, &ledger.branch_polls).await
}

async fn consume(rx: Receiver<Msg>, ledger: &'static Ledger) -> Result<(), Stop> {
    let branch = async {
        let _live = Live::new(ledger);
        while let Some(msg) = rx.recv().await.map_err(|_| Stop::Cancelled)? {
            msg.settle(&ledger.received);
            if ledger.received.load(SeqCst) == FAIL_AFTER {
                ledger.failed.store(true, SeqCst);
                return Err(Stop::Failed);
            }
        }
        Ok(())
    };
    Polled::new(branch, &ledger.failed, &ledger.branch_polls).await
}

/// The accounting every run must satisfy, once the group has returned:
/// at each channel, what was sent on it was received from it or is still
/// in its buffer (dropped with it), and what was not sent was handed back.
fn assert_every_message_accounted_for(ledger: &Ledger) {
    let n = |c: &AtomicUsize| c.load(SeqCst);
    let [accepted1, accepted2] = ledger.accepted.each_ref().map(n);
    let [returned1, returned2] = ledger.returned.each_ref().map(n);
    let [dropped1, dropped2] = ledger.dropped.each_ref().map(n);
    let (made, relayed, received) = (n(&ledger.made), n(&ledger.relayed), n(&ledger.received));
    assert!(
        received >= FAIL_AFTER,
        "the failure came too early: {received}"
    );
    assert_eq!(
        made,
        accepted1 + returned1,
        "made = sent on the first channel + handed back"
    );
    assert_eq!(
        accepted1,
        relayed + dropped1,
        "first channel: sent = received + left in the buffer"
    );
    assert_eq!(
        relayed,
        accepted2 + returned2,
        "relayed = sent on the second channel + handed back"
    );
    assert_eq!(
        accepted2,
        received + dropped2,
        "second channel: sent = received + left in the buffer"
    );
    assert_eq!(
        made,
        received + returned1 + returned2 + dropped1 + dropped2,
        "made = received + handed back + dropped in a buffer"
    );
    assert!(
        dropped1 <= CAP && dropped2 <= CAP,
        "more dropped than a buffer holds: {dropped1}, {dropped2}"
    );
    assert_eq!(
        n(&ledger.producers_refunded),
        PRODUCERS,
        "a producer's last send did not hand its value back"
    );
    assert_eq!(
        returned1, PRODUCERS,
        "only producers send on the first channel"
    );
    println!(
        "made {made}: received {received}, handed back {} ({returned1} to producers, \
         {returned2} to relays), dropped in a buffer {} ({dropped1} + {dropped2})",
        returned1 + returned2,
        dropped1 + dropped2
    );
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_branches_at_full_speed_return_at_once_when_one_fails_in_task() {
    let ledger: &'static Ledger = leak(Ledger::default());
    let start = Instant::now();
    let group = async {
        errgroup! {
            type Error = Stop;
            let (tx1, rx1) = channel::<Msg>(CAP);
            let (tx2, rx2) = channel::<Msg>(CAP);
            produce => for _ in 0..PRODUCERS { produce(tx1, ledger).await },
            relay => for _ in 0..RELAYS { relay(rx1, tx2, ledger).await },
            consume => for _ in 0..CONSUMERS { consume(rx2, ledger).await },
        }
    };
    // On the paused clock a hang jumps straight to the failsafe.
    let result = within_failsafe(
        "the group never returned",
        Polled::new(group, &ledger.failed, &ledger.group_polls),
    )
    .await;
    let err = result.unwrap_err();
    assert!(
        err.task().unwrap().to_string().starts_with("consume["),
        "{err:?}"
    );
    assert!(matches!(err.into_inner(), Some(Stop::Failed)));

    assert_eq!(ledger.live.load(SeqCst), 0, "branch bodies still alive");
    // Shutdown waited on no timer: on the paused clock, time only moves
    // when every task is idle and a timer is due.
    assert_eq!(Instant::now(), start, "virtual time passed during shutdown");
    // The failure closes both channels, which wakes every blocked branch;
    // each returns on its next poll, and the group on its next poll too
    // (measured: 9,999 branch polls and 1 group poll). A shutdown that spun,
    // re-polled, or waited on a timer would blow these bounds.
    let branch_polls = ledger.branch_polls.load(SeqCst);
    let group_polls = ledger.group_polls.load(SeqCst);
    println!("after the failure: {branch_polls} branch polls, {group_polls} group polls");
    assert!(
        branch_polls <= 2 * (PRODUCERS + RELAYS + CONSUMERS),
        "{branch_polls} branch polls after the failure"
    );
    assert!(
        group_polls <= 4,
        "{group_polls} polls of the group after the failure"
    );
    assert_every_message_accounted_for(ledger);
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_spawned_branches_on_two_workers_return_when_one_fails() {
    let ledger: &'static Ledger = leak(Ledger::default());
    let baseline = alive_tasks();
    let group = async {
        errgroup! {
            type Error = Stop;
            let (tx1, rx1) = channel::<Msg>(CAP);
            let (tx2, rx2) = channel::<Msg>(CAP);
            #[spawn] produce => for _ in 0..PRODUCERS { produce(tx1, ledger).await },
            #[spawn] relay => for _ in 0..RELAYS { relay(rx1, tx2, ledger).await },
            #[spawn] consume => for _ in 0..CONSUMERS { consume(rx2, ledger).await },
        }
    };
    // Only turns a hang into a failure; no assertion depends on timing.
    let result = within_failsafe("the group never returned", group).await;
    let err = result.unwrap_err();
    assert!(
        err.task().unwrap().to_string().starts_with("consume["),
        "{err:?}"
    );
    assert!(matches!(err.into_inner(), Some(Stop::Failed)));
    // Every branch was awaited: its body is gone by the time the group returns.
    assert_eq!(ledger.live.load(SeqCst), 0, "branch bodies still alive");
    // A finished task is released by the worker that ran it just after it
    // wakes the group, so the count may lag for a moment; a task left
    // running would never be released, and the failsafe turns that into
    // a failure.
    within_failsafe("tasks left running after the group returned", async {
        while alive_tasks() != baseline {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    })
    .await;
    assert_every_message_accounted_for(ledger);
}
