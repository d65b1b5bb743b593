//! The group's shared state under loom: every interleaving of two or three
//! threads, up to `LOOM_MAX_PREEMPTIONS` preemptions each (`.ci/run`).
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test --release --lib loom
//! ```
//!
//! What loom sees: the cause slot and its flag, the hook list, the panic and
//! error slots, the task set's lock and its flag words (runtime/sync.rs),
//! the cancellation waiter list (`cancel::Cancellation`, under the hook
//! lock), and the channel underneath group channels (async-channel, through
//! the `loom` features of event-listener and concurrent-queue). What it does
//! not: the `limit` semaphore, timers, and tokio's `JoinSet`, replaced under loom by
//! a stand-in with the same contract (runtime/sync.rs) whose tasks run when
//! the driver polls the set.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use loom::future::block_on;
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::thread;
use tokio::sync::oneshot::error::TryRecvError as TryRecvClosed;
use tokio::time::Instant;

use crate::__private::{Config, InTask, Scope};
use crate::cancel::OnCancel;
use crate::channel::bound;
use crate::error::{Cancelled, Cause, Error, TaskName};
use crate::group::Group;
use crate::state::{Answer, Settings, State};
use crate::sync::{Arc, Mutex, Weak, lock};
use crate::{TryRecvError, TrySendError};

fn failed(task: &'static str) -> Cause {
    Cause::Failed {
        task: TaskName::new(task),
    }
}

fn parent(cause: Cause) -> Cause {
    Cause::Parent(Box::new(cause))
}

/// A root group with its core from birth, as these models are the core's
/// (an in-task group's inline state before it has one: the `place_*` models).
fn root<E: 'static>() -> Arc<State<E>> {
    let state = State::new(Settings::default());
    state.core();
    Arc::new(state)
}

fn child_of<E: 'static, P>(parent: &State<P>) -> Arc<State<E>> {
    Arc::new(State::new(Settings {
        parent: Some(Arc::clone(parent.core())),
        ..Settings::default()
    }))
}

/// A hook that counts its runs and keeps the cause it was given.
#[derive(Default)]
struct Counter {
    runs: AtomicUsize,
    cause: Mutex<Option<Cause>>,
}

impl OnCancel for Counter {
    fn on_cancel(&self, cause: &Cause) {
        self.runs.fetch_add(1, SeqCst);
        *lock(&self.cause) = Some(cause.clone());
    }
}

impl Counter {
    fn on(state: &State<impl Sized>) -> Arc<Counter> {
        let counter = Arc::new(Counter::default());
        let weak: Weak<Counter> = Arc::downgrade(&counter);
        state.core().node().on_cancel(weak);
        counter
    }

    fn runs(&self) -> usize {
        self.runs.load(SeqCst)
    }

    fn cause(&self) -> Option<Cause> {
        lock(&self.cause).clone()
    }
}

#[test]
fn loom_the_first_failure_cancels_the_group_once_and_is_the_error_returned() {
    loom::model(|| {
        let outer = root::<&'static str>();
        let group = child_of::<&'static str, _>(&outer);
        let hook = Counter::on(&group);
        let failing: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|name| {
                let group = Arc::clone(&group);
                thread::spawn(move || group.fail(TaskName::new(name), name, false))
            })
            .collect();
        outer.core().cancel(Cause::DeadlineExceeded);
        for thread in failing {
            thread.join().unwrap();
        }

        let cause = group.core().cause().expect("cancelled");
        assert_eq!(hook.runs(), 1);
        assert_eq!(hook.cause().as_ref(), Some(&cause));
        match group.finish::<()>(None) {
            Err(Error::Failed { task, error }) => {
                assert_eq!(task.name(), error, "the error is the winner's");
                assert_eq!(cause, failed(error));
            }
            Err(Error::Cancelled(cancelled)) => {
                assert_eq!(cause, parent(Cause::DeadlineExceeded));
                assert_eq!(cancelled.cause(), &cause);
            }
            Ok(()) => panic!("a failed group returned Ok"),
        }
    });
}

#[test]
fn loom_a_panic_a_failure_and_a_passed_deadline_cancel_the_group_once() {
    loom::model(|| {
        let group: Arc<State<&'static str>> = Arc::new(State::new(Settings {
            deadline: Some(Instant::now() - Duration::from_secs(1)),
            ..Settings::default()
        }));
        let hook = Counter::on(&group);
        let spinning = {
            let group = Arc::clone(&group);
            // A branch that spins on `is_cancelled()` sees the deadline
            // itself (a query: it cancels nothing), from then on.
            thread::spawn(move || {
                assert!(group.core().is_cancelled());
                assert!(group.core().cause().is_some());
            })
        };
        let panicking = {
            let group = Arc::clone(&group);
            thread::spawn(move || group.core().panicked(TaskName::new("p"), Box::new("boom")))
        };
        group.fail(TaskName::new("f"), "f", false);
        spinning.join().unwrap();
        panicking.join().unwrap();

        let cause = group.core().cause().expect("cancelled");
        assert!(
            [
                Cause::DeadlineExceeded,
                Cause::Panicked {
                    task: TaskName::new("p")
                },
                failed("f"),
            ]
            .contains(&cause),
            "{cause:?}"
        );
        assert_eq!(hook.runs(), 1);
        assert_eq!(hook.cause(), Some(cause));
        // The panic is resumed whoever won the cancellation.
        let payload = catch_unwind(AssertUnwindSafe(|| group.finish::<()>(None))).unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    });
}

#[test]
fn loom_a_hook_registered_during_the_cancellation_runs_exactly_once() {
    loom::model(|| {
        let group = root::<()>();
        let cancelling = {
            let group = Arc::clone(&group);
            thread::spawn(move || group.core().cancel(Cause::Finished))
        };
        let hook = Counter::on(&group);
        assert!(cancelling.join().unwrap());
        assert_eq!(hook.runs(), 1);
        assert_eq!(hook.cause(), Some(Cause::Finished));
    });
}

#[test]
fn loom_a_child_group_created_during_the_parents_cancellation_ends_up_cancelled() {
    loom::model(|| {
        let outer = root::<()>();
        let failing = {
            let outer = Arc::clone(&outer);
            thread::spawn(move || outer.fail(TaskName::new("a"), (), false))
        };
        let child = child_of::<(), _>(&outer);
        let hook = Counter::on(&child);
        failing.join().unwrap();
        assert_eq!(child.core().cause(), Some(parent(failed("a"))));
        assert_eq!(hook.runs(), 1);
    });
}

#[test]
fn loom_a_channel_created_during_the_cancellation_is_closed_with_its_cause() {
    loom::model(|| {
        let group = root::<()>();
        let failing = {
            let group = Arc::clone(&group);
            thread::spawn(move || group.fail(TaskName::new("a"), (), false))
        };
        let (tx, rx) = bound::<u8>(group.core().node(), Some(1));
        failing.join().unwrap();
        match rx.try_recv() {
            Err(TryRecvError::Cancelled(c)) => assert_eq!(c.cause(), &failed("a")),
            other => panic!("{other:?}"),
        }
        match tx.try_send(1) {
            Err(TrySendError::Closed(e)) => {
                assert_eq!(e.cancelled().map(Cancelled::cause), Some(&failed("a")));
                assert_eq!(e.into_inner(), 1);
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn loom_a_task_spawned_while_a_group_waits_is_awaited_or_refused() {
    loom::model(|| {
        let group = Group::<()>::new();
        let ctx = group.ctx();
        let ran = Arc::new(AtomicUsize::new(0));
        let spawning = {
            let ran = Arc::clone(&ran);
            thread::spawn(move || {
                ctx.spawn("late", async move {
                    ran.fetch_add(1, SeqCst);
                    Ok::<(), ()>(())
                })
                .is_ok()
            })
        };
        let result = block_on(group.wait());
        let accepted = spawning.join().unwrap();
        assert!(result.is_ok(), "{result:?}, accepted: {accepted}");
        assert_eq!(
            ran.load(SeqCst),
            usize::from(accepted),
            "accepted: {accepted}"
        );
    });
}

#[test]
fn loom_a_task_spawned_while_a_macro_group_returns_is_awaited_or_refused() {
    loom::model(|| {
        let scope = Scope::<()>::new(Config::new());
        // Sent to another thread: an owned ctx, as a `#[spawn]` branch's.
        let ctx = scope.owned_ctx("branch");
        let ran = Arc::new(AtomicUsize::new(0));
        let spawning = {
            let ran = Arc::clone(&ran);
            thread::spawn(move || {
                ctx.spawn("late", async move {
                    ran.fetch_add(1, SeqCst);
                    Ok::<(), ()>(())
                })
                .is_ok()
            })
        };
        // The loop `errgroup!` runs, its only branch done at once.
        let branch = InTask.branch(&scope, scope.ctx("branch"), async { Ok::<(), ()>(()) });
        assert!(block_on(scope.run((branch,))).is_ok());
        let accepted = spawning.join().unwrap();
        assert_eq!(
            ran.load(SeqCst),
            usize::from(accepted),
            "accepted: {accepted}"
        );
    });
}

/// The group's one "finished" record (`flags::FINISHED`) against a
/// `Watch`'s question: a question asked while the group finishes is
/// answered, at once or by the dropped answer, never left waiting.
#[test]
fn loom_a_question_asked_while_the_group_finishes_is_never_left_waiting() {
    loom::model(|| {
        let group = root::<()>();
        group.core().watched();
        let asking = {
            let group = Arc::clone(&group);
            thread::spawn(move || group.core().ask())
        };
        assert!(group.finish::<()>(Some(())).is_ok());
        match asking.join().unwrap() {
            Answer::Now(running) => assert!(running.is_empty()),
            Answer::Later(mut answer) => assert!(
                answer.try_recv().is_ok_and(|running| running.is_empty())
                    || matches!(answer.try_recv(), Err(TryRecvClosed::Closed)),
                "a question was left waiting on a finished group"
            ),
        }
    });
}

#[test]
fn loom_a_group_waits_for_a_task_woken_from_another_thread() {
    loom::model(|| {
        let mut group = Group::<()>::new();
        let (tx, rx) = group.ctx().channel::<u8>(1);
        // async-channel's `Arc` is std's, invisible to loom: the channel must
        // be freed where loom sees the other threads' accesses end (a join).
        let keep = rx.clone();
        let done = Arc::new(AtomicUsize::new(0));
        {
            let done = Arc::clone(&done);
            group.spawn("receiver", move |_| async move {
                assert_eq!(rx.recv().await, Ok(Some(7)));
                done.fetch_add(1, SeqCst);
                Ok(())
            });
        }
        let sending = thread::spawn(move || tx.try_send(7).unwrap());
        assert!(block_on(group.wait()).is_ok());
        assert_eq!(done.load(SeqCst), 1);
        sending.join().unwrap();
        drop(keep);
    });
}

#[test]
fn loom_a_ctx_waiting_for_the_cancellation_wakes_however_it_races_the_cancel() {
    loom::model(|| {
        let state = root::<()>();
        let ctx = crate::Ctx::new(Arc::clone(state.core()), TaskName::new("waiter"));
        // A second waiter that registers, then leaves while the cancel runs:
        // its slot is freed or drained, never woken into a freed waiter.
        let leaving = {
            let ctx = ctx.clone();
            thread::spawn(move || {
                let mut waiting = std::pin::pin!(ctx.cancelled());
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                let _ = waiting.as_mut().poll(&mut cx);
            })
        };
        let cancelling = {
            let state = Arc::clone(&state);
            thread::spawn(move || assert!(state.core().cancel(failed("a"))))
        };
        block_on(ctx.cancelled());
        assert_eq!(ctx.cause(), Some(failed("a")));
        cancelling.join().unwrap();
        leaving.join().unwrap();
    });
}

/// A node's hooks (its hook list, waiters and token) are made by the first
/// registration and taken whole by the cancellation: a hook and a token
/// registered from two threads as the group is cancelled each fire once,
/// whether they landed before the drain (and went with it) or after (and
/// saw the node fired).
#[test]
fn loom_a_hook_and_a_token_registered_during_the_cancellation_both_fire() {
    loom::model(|| {
        let state = root::<()>();
        let cancelling = {
            let state = Arc::clone(&state);
            thread::spawn(move || assert!(state.core().cancel(failed("a"))))
        };
        let hooking = {
            let state = Arc::clone(&state);
            thread::spawn(move || Counter::on(&state))
        };
        let token = state.core().node().token();
        let hook = hooking.join().unwrap();
        cancelling.join().unwrap();
        assert!(token.is_cancelled());
        assert_eq!(hook.runs(), 1);
        assert_eq!(hook.cause(), Some(failed("a")));
    });
}

#[test]
fn loom_a_receive_blocked_on_an_empty_channel_wakes_with_the_cancellation() {
    loom::model(|| {
        let group = root::<()>();
        let (tx, rx) = bound::<u8>(group.core().node(), Some(1));
        let failing = {
            let group = Arc::clone(&group);
            thread::spawn(move || group.fail(TaskName::new("a"), (), false))
        };
        let cancelled = block_on(rx.recv()).unwrap_err();
        assert_eq!(cancelled.cause(), &failed("a"));
        failing.join().unwrap();
        drop(tx);
    });
}

#[test]
fn loom_a_send_blocked_on_a_full_channel_wakes_with_the_cancellation_and_gives_the_value_back() {
    loom::model(|| {
        let group = root::<()>();
        let (tx, rx) = bound::<u8>(group.core().node(), Some(1));
        tx.try_send(1).unwrap();
        let failing = {
            let group = Arc::clone(&group);
            thread::spawn(move || group.fail(TaskName::new("a"), (), false))
        };
        let error = block_on(tx.send(2)).unwrap_err();
        assert_eq!(error.cancelled().map(Cancelled::cause), Some(&failed("a")));
        assert_eq!(error.into_inner(), 2);
        failing.join().unwrap();
        drop(rx);
    });
}

#[test]
fn loom_no_value_is_lost_between_a_sender_a_receiver_and_the_cancellation() {
    loom::model(|| {
        let group = root::<()>();
        let (tx, rx) = bound::<u8>(group.core().node(), Some(1));
        let sending = thread::spawn(move || {
            let (mut sent, mut back) = (Vec::new(), Vec::new());
            for value in [1, 2] {
                match block_on(tx.send(value)) {
                    Ok(()) => sent.push(value),
                    Err(error) => {
                        assert_eq!(error.cancelled().map(Cancelled::cause), Some(&failed("a")));
                        back.push(error.into_inner());
                    }
                }
            }
            (sent, back)
        });
        let receiving = {
            let rx = rx.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                while let Ok(Some(value)) = block_on(rx.recv()) {
                    got.push(value);
                }
                got
            })
        };
        group.fail(TaskName::new("a"), (), false);
        let (sent, back) = sending.join().unwrap();
        let got = receiving.join().unwrap();

        // Every value sent was received or is still buffered (a cancelled
        // channel drops its buffer, as documented); every other one came back.
        assert_eq!(
            sent.len(),
            got.len() + rx.len(),
            "sent {sent:?}, got {got:?}"
        );
        assert!(got.iter().all(|v| sent.contains(v)));
        let mut all: Vec<u8> = sent.into_iter().chain(back).collect();
        all.sort_unstable();
        assert_eq!(all, [1, 2]);
    });
}

#[test]
fn loom_receivers_drain_the_buffer_then_see_the_end_once_the_last_sender_is_gone() {
    loom::model(|| {
        let group = root::<()>();
        let (tx, rx) = bound::<u8>(group.core().node(), Some(1));
        let senders: Vec<_> = [1, 2]
            .into_iter()
            .map(|value| {
                let tx = tx.clone();
                thread::spawn(move || block_on(tx.send(value)).unwrap())
            })
            .collect();
        drop(tx);
        let mut got = Vec::new();
        while let Some(value) = block_on(rx.recv()).unwrap() {
            got.push(value);
        }
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        for sender in senders {
            sender.join().unwrap();
        }
        assert!(!group.core().is_cancelled());
    });
}

/// An in-task group without a core, lent to a scoped thread: a
/// cancellation racing the promotion is never lost (it lands inline and
/// moves with the rest, or in the core), and the first cause wins.
#[test]
fn place_a_cancellation_racing_a_promotion_is_kept() {
    loom::model(|| {
        let group = Arc::new(State::<()>::new(Settings::default()));
        let cancel = {
            let group = Arc::clone(&group);
            thread::spawn(move || group.place.cancel(failed("a")))
        };
        let core = Arc::clone(group.core());
        let won = cancel.join().unwrap();
        assert!(won, "the only cancellation");
        assert_eq!(core.cause(), Some(failed("a")));
        assert_eq!(group.place.cause(), Some(failed("a")));
    });
}
