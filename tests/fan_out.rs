//! Fan-out branches (`name => for x in items { .. }`): order, names, laziness under `limit`, cancellation, borrowing, `#[spawn]`, `#[blocking]`, supervisor mode.
//!
//! Ordering never relies on sleeping and hoping: tests run on tokio's paused
//! clock (a sleep is an exact step) or synchronise explicitly (counters,
//! spin barriers with a wall-clock failsafe). Waits that could hang if the
//! code were wrong are bounded by `FAILSAFE`, which only ever turns a hang
//! into a failure.

use std::cell::RefCell;
use std::panic::panic_any;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Mutex, OnceLock};
use std::thread::{self, ThreadId};
use std::time::Duration;

use errgroup::{Cause, TaskName, errgroup};
use tokio::task::yield_now;
use tokio::time::sleep;

mod common;
use common::{Gauge, catch_panic, leak, spin_until, within_failsafe};

/// A panic payload no `panic!` message could be mistaken for.
#[derive(Debug, PartialEq)]
struct Payload(u32);

/// `0..len`, counting every call to `next()` (the final `None` included).
struct Counted<'a> {
    next: usize,
    len: usize,
    pulls: &'a AtomicUsize,
}

impl<'a> Counted<'a> {
    fn new(len: usize, pulls: &'a AtomicUsize) -> Self {
        Counted {
            next: 0,
            len,
            pulls,
        }
    }
}

impl Iterator for Counted<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        self.pulls.fetch_add(1, SeqCst);
        (self.next < self.len).then(|| {
            self.next += 1;
            self.next - 1
        })
    }
}

/// Holds each of `n` threads until all `n` have arrived: they get through
/// only if they run at the same time. Panics after `FAILSAFE` instead of
/// hanging.
struct SpinBarrier {
    arrived: AtomicUsize,
    n: usize,
}

impl SpinBarrier {
    fn new(n: usize) -> Self {
        SpinBarrier {
            arrived: AtomicUsize::new(0),
            n,
        }
    }

    fn wait(&self) {
        self.arrived.fetch_add(1, SeqCst);
        spin_until("the items never ran at the same time", || {
            self.arrived.load(SeqCst) >= self.n
        });
    }
}

fn failed_item(name: &'static str, index: usize) -> Cause {
    Cause::Failed {
        task: TaskName::indexed(name, index),
    }
}

// Results and names.

#[tokio::test(start_paused = true)]
async fn values_come_back_in_iteration_order_whatever_the_completion_order() {
    let finished = RefCell::new(Vec::new());
    let (values,) = errgroup! {
        fetch => for (i, ms) in [30u64, 10, 20, 0].into_iter().enumerate() {
            sleep(Duration::from_millis(ms)).await;
            finished.borrow_mut().push(i);
            Ok::<_, ()>(format!("{ms}ms"))
        },
    }
    .unwrap();
    assert_eq!(values, ["30ms", "10ms", "20ms", "0ms"]);
    assert_eq!(
        *finished.borrow(),
        [3, 1, 2, 0],
        "the items did not finish out of order, so the test proves nothing"
    );
}

#[tokio::test]
async fn an_empty_iterator_gives_an_empty_vec() {
    let (values, other) = errgroup! {
        none => for i in std::iter::empty::<u32>() { Ok::<_, ()>(i) },
        other => Ok(1),
    }
    .unwrap();
    assert!(values.is_empty());
    assert_eq!(other, 1);
}

#[tokio::test]
async fn each_item_runs_as_a_task_named_after_its_branch_and_index() {
    let (names,) = errgroup! {
        fetch => for _ in 0..3 { Ok::<_, ()>(ctx.task().clone()) },
    }
    .unwrap();
    assert_eq!(names, ["fetch[0]", "fetch[1]", "fetch[2]"]);
    assert_eq!(names[2].name(), "fetch");
    assert_eq!(names[2].index(), Some(2));
}

#[tokio::test]
async fn a_failing_item_is_the_groups_error_under_its_indexed_name() {
    let err = errgroup! {
        fetch => for i in 0..5 {
            yield_now().await;
            if i == 3 { Err(format!("item {i} failed")) } else { Ok(i) }
        },
    }
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "fetch[3]");
    assert_eq!(err.task().unwrap().index(), Some(3));
    assert_eq!(err.to_string(), "task `fetch[3]` failed: item 3 failed");
    assert_eq!(err.into_inner().unwrap(), "item 3 failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_and_blocking_items_are_named_after_their_branch_and_index_too() {
    let (spawned, blocking) = errgroup! {
        #[spawn] spawned => for _ in 0..2 { Ok::<_, ()>(ctx.task().to_string()) },
        #[blocking] blocking => for _ in 0..2 { Ok(ctx.task().to_string()) },
    }
    .unwrap();
    assert_eq!(spawned, ["spawned[0]", "spawned[1]"]);
    assert_eq!(blocking, ["blocking[0]", "blocking[1]"]);

    let err = errgroup! {
        #[spawn] spawned => for i in 0..3 { if i == 1 { Err("one") } else { Ok(()) } },
    }
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "spawned[1]");
    let err = errgroup! {
        #[blocking] blocking => for i in 0..3 { if i == 2 { Err("two") } else { Ok(()) } },
    }
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "blocking[2]");
}

// Laziness and limit.

#[tokio::test]
async fn limit_8_over_a_million_items_runs_8_bodies_at_once_and_pulls_items_lazily() {
    const ITEMS: usize = 1_000_000;
    let pulls = AtomicUsize::new(0);
    let finished = AtomicUsize::new(0);
    // The most items ever pulled but not finished, seen from inside a body.
    let ahead = AtomicUsize::new(0);
    let gauge = Gauge::default();
    let (values,) = errgroup! {
        limit = 8;
        lazy => for _i in Counted::new(ITEMS, &pulls) {
            gauge.enter();
            let pulled = pulls.load(SeqCst);
            ahead.fetch_max(pulled - finished.load(SeqCst), SeqCst);
            yield_now().await;
            finished.fetch_add(1, SeqCst);
            gauge.exit();
            Ok::<_, ()>(())
        },
    }
    .unwrap();
    assert_eq!(values.len(), ITEMS);
    assert_eq!(gauge.entered.load(SeqCst), ITEMS);
    assert_eq!(gauge.peak.load(SeqCst), 8, "8 bodies at once, never 9");
    let ahead = ahead.load(SeqCst);
    assert!(
        ahead <= 8,
        "{ahead} items were pulled but not finished at once: not lazy"
    );
    assert_eq!(
        pulls.load(SeqCst),
        ITEMS + 1,
        "next() is called once per item, plus the final None"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_bounds_spawn_items_and_their_pulls_too() {
    let pulls = leak(AtomicUsize::new(0));
    let finished = leak(AtomicUsize::new(0));
    let ahead = leak(AtomicUsize::new(0));
    let gauge = leak(Gauge::default());
    let (values,) = errgroup! {
        limit = 3;
        #[spawn] lazy => for _ in Counted::new(2_000, pulls) {
            gauge.enter();
            ahead.fetch_max(pulls.load(SeqCst) - finished.load(SeqCst), SeqCst);
            yield_now().await;
            finished.fetch_add(1, SeqCst);
            gauge.exit();
            Ok::<_, ()>(())
        },
    }
    .unwrap();
    assert_eq!(values.len(), 2_000);
    assert_eq!(gauge.entered.load(SeqCst), 2_000);
    assert!(
        gauge.peak.load(SeqCst) <= 3,
        "peak {}",
        gauge.peak.load(SeqCst)
    );
    let ahead = ahead.load(SeqCst);
    assert!(ahead <= 3, "{ahead} items pulled but not finished at once");
}

#[tokio::test]
async fn no_item_is_pulled_after_an_item_fails() {
    let pulls = AtomicUsize::new(0);
    let pulled_when_failing = AtomicUsize::new(0);
    let started = AtomicUsize::new(0);
    let err = errgroup! {
        limit = 2;
        items => for i in Counted::new(1_000_000, &pulls) {
            started.fetch_add(1, SeqCst);
            if i == 3 {
                pulled_when_failing.store(pulls.load(SeqCst), SeqCst);
                Err(format!("item {i}"))
            } else {
                yield_now().await;
                Ok(())
            }
        },
    }
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "items[3]");
    let when_failing = pulled_when_failing.load(SeqCst);
    assert!(when_failing >= 4);
    assert_eq!(
        pulls.load(SeqCst),
        when_failing,
        "items were pulled after the group was cancelled"
    );
    assert_eq!(started.load(SeqCst), when_failing);
}

#[tokio::test(start_paused = true)]
async fn no_item_is_pulled_after_a_sibling_branch_fails() {
    let pulls = AtomicUsize::new(0);
    let ran_after_cancel = AtomicBool::new(false);
    let err = errgroup! {
        limit = 3;
        items => for _i in Counted::new(1_000_000, &pulls) {
            if ctx.is_cancelled() {
                ran_after_cancel.store(true, SeqCst);
            }
            sleep(Duration::from_millis(400)).await;
            Ok(())
        },
        // Holds one of the 3 slots; fails at 1s, while items 2 slots at a time run.
        fails => { sleep(Duration::from_secs(1)).await; Err::<(), _>("stop") },
    }
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "fails");
    // Two slots, 400ms each, until 1s: items started at 0, 400 and 800ms.
    assert_eq!(
        pulls.load(SeqCst),
        6,
        "items were pulled after the cancellation"
    );
    assert!(!ran_after_cancel.load(SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spawn_item_starts_after_an_item_fails() {
    let pulls = leak(AtomicUsize::new(0));
    let started = leak(AtomicUsize::new(0));
    let pulled_when_failing = leak(AtomicUsize::new(0));
    let err = within_failsafe("the group never returned", async {
        errgroup! {
            limit = 2;
            #[spawn] items => for i in Counted::new(1_000_000, pulls) {
                started.fetch_add(1, SeqCst);
                if i == 5 {
                    pulled_when_failing.store(pulls.load(SeqCst), SeqCst);
                    Err(format!("item {i}"))
                } else {
                    yield_now().await;
                    Ok(())
                }
            },
        }
    })
    .await
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "items[5]");
    let when_failing = pulled_when_failing.load(SeqCst);
    assert_eq!(
        pulls.load(SeqCst),
        when_failing,
        "items were pulled after the group was cancelled"
    );
    assert_eq!(started.load(SeqCst), when_failing);
}

// Borrowing, #[spawn], #[blocking].

#[tokio::test]
async fn in_task_items_may_borrow_locals() {
    let prefix = String::from("item-");
    let prefix_ref: &String = &prefix;
    let log = RefCell::new(Vec::new());
    let (labels,) = errgroup! {
        label => for i in 0..3 {
            yield_now().await;
            log.borrow_mut().push(i);
            Ok::<_, ()>(format!("{prefix_ref}{i}"))
        },
    }
    .unwrap();
    assert_eq!(labels, ["item-0", "item-1", "item-2"]);
    let mut log = log.into_inner();
    log.sort_unstable();
    assert_eq!(log, [0, 1, 2]);
    // Still ours after the group: it was only borrowed.
    let prefix: String = prefix;
    assert_eq!(prefix, "item-");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_items_run_in_parallel_as_tokio_tasks_with_owned_items() {
    // The test body runs on the runtime's `block_on` thread, not a worker.
    let caller = thread::current().id();
    let barrier = leak(SpinBarrier::new(2));
    let words = vec![String::from("left"), String::from("right")];
    let (shouted,) = errgroup! {
        #[spawn] shout => for word in words {
            // Both items must be here at once to get through.
            barrier.wait();
            let word: String = word;
            Ok::<_, ()>((word.to_uppercase(), thread::current().id()))
        },
    }
    .unwrap();
    let words: Vec<&str> = shouted.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(words, ["LEFT", "RIGHT"]);
    for (_, thread) in &shouted {
        assert_ne!(*thread, caller, "a #[spawn] item runs on a worker");
    }
    assert_ne!(shouted[0].1, shouted[1].1);
}

#[tokio::test]
async fn blocking_items_run_on_the_blocking_pool_and_can_check_is_cancelled() {
    let caller = thread::current().id();
    let seen: &Mutex<Vec<(ThreadId, Option<Cause>)>> = leak(Mutex::new(Vec::new()));
    let err = within_failsafe("the group never returned", async {
        errgroup! {
            #[blocking] crunch => for i in 0..3 {
                if i == 0 {
                    return Err("crunch failed");
                }
                // Synchronous code holding its thread until the group is
                // cancelled: run inline, it would starve the runtime.
                spin_until("a blocking item never saw the cancellation", || ctx.is_cancelled());
                seen.lock().unwrap().push((thread::current().id(), ctx.cause()));
                Ok(())
            },
        }
    })
    .await
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "crunch[0]");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    for (thread, cause) in seen.iter() {
        assert_ne!(
            *thread, caller,
            "a #[blocking] item runs on the blocking pool"
        );
        assert_eq!(*cause, Some(failed_item("crunch", 0)));
    }
}

#[tokio::test]
async fn a_blocking_item_panic_resumes_with_its_payload_after_the_other_items_return() {
    let returned = leak(AtomicUsize::new(0));
    let result = within_failsafe(
        "the group never returned",
        catch_panic(async {
            errgroup! {
                #[blocking] crunch => for i in 0..3 {
                    if i == 1 && std::hint::black_box(true) {
                        panic_any(Payload(11));
                    }
                    spin_until("a blocking item never saw the panic", || ctx.is_cancelled());
                    // Still running well after the panic.
                    thread::sleep(Duration::from_millis(20));
                    returned.fetch_add(1, SeqCst);
                    Ok::<_, ()>(())
                },
            }
        }),
    )
    .await;
    let payload = result.unwrap_err();
    assert_eq!(payload.downcast_ref::<Payload>(), Some(&Payload(11)));
    assert_eq!(
        returned.load(SeqCst),
        2,
        "the panic resumed before the other items returned"
    );
}

#[tokio::test]
async fn limit_bounds_blocking_items() {
    let gauge = leak(Gauge::default());
    let (values,) = errgroup! {
        limit = 2;
        #[blocking] crunch => for i in 0..8u32 {
            gauge.enter();
            thread::sleep(Duration::from_millis(2));
            gauge.exit();
            Ok::<_, ()>(i * i)
        },
    }
    .unwrap();
    assert_eq!(values, [0, 1, 4, 9, 16, 25, 36, 49]);
    assert_eq!(gauge.entered.load(SeqCst), 8);
    assert!(
        gauge.peak.load(SeqCst) <= 2,
        "peak {}",
        gauge.peak.load(SeqCst)
    );
}

// Supervisor mode and siblings.

#[tokio::test(start_paused = true)]
async fn on_error_continue_gives_a_result_per_item_and_cancels_nothing() {
    let (parsed, sibling) = errgroup! {
        on_error = continue;
        parse => for (i, s) in ["1", "x", "3", "y"].into_iter().enumerate() {
            // Later items finish after earlier ones have failed.
            sleep(Duration::from_secs(i as u64)).await;
            s.parse::<u32>().map_err(|e| format!("{s}: {e}"))
        },
        sibling => { sleep(Duration::from_secs(10)).await; Ok(ctx.cause()) },
    }
    .unwrap();
    assert_eq!(
        parsed,
        [
            Ok(1),
            Err("x: invalid digit found in string".to_owned()),
            Ok(3),
            Err("y: invalid digit found in string".to_owned()),
        ]
    );
    assert_eq!(sibling, Ok(None), "a failing item cancelled the group");
}

#[tokio::test]
async fn on_error_continue_works_for_spawn_and_blocking_fan_outs() {
    let (spawned, blocking) = errgroup! {
        on_error = continue;
        #[spawn] spawned => for i in 0..3 { if i == 1 { Err(i) } else { Ok(i) } },
        #[blocking] blocking => for i in 0..3 { if i == 2 { Err(i) } else { Ok(i) } },
    }
    .unwrap();
    assert_eq!(spawned, [Ok(0), Err(1), Ok(2)]);
    assert_eq!(blocking, [Ok(0), Ok(1), Err(2)]);
}

#[tokio::test(start_paused = true)]
async fn a_failing_item_cancels_a_sibling_plain_branch() {
    let seen = OnceLock::new();
    let err = errgroup! {
        items => for i in 0..4 {
            sleep(Duration::from_secs(1)).await;
            if i == 2 { Err("bad item") } else { Ok(i) }
        },
        watcher => {
            ctx.cancelled().await;
            seen.set(ctx.cause()).unwrap();
            Ok(0)
        },
    }
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "items[2]");
    assert_eq!(seen.get().unwrap(), &Some(failed_item("items", 2)));
}

/// `limit` is shared fairly: a fan-out hands a finished item's permit to the
/// next item only while nobody else waits for one, so a task queued behind
/// the fan-out gets its turn in order, not after the last item.
#[tokio::test]
async fn a_fan_out_does_not_keep_its_permits_from_a_task_waiting_for_one() {
    let order: &Mutex<Vec<String>> = leak(Mutex::new(Vec::new()));
    let (items,) = errgroup! {
        limit = 1;
        items => for i in 0..5 {
            order.lock().unwrap().push(format!("item {i}"));
            if i == 0 {
                ctx.spawn("queued", async move {
                    order.lock().unwrap().push("queued".to_owned());
                    Ok::<_, errgroup::Cancelled>(())
                })?;
                // Lets the spawned task run up to its wait for the permit.
                for _ in 0..10 {
                    yield_now().await;
                }
            }
            Ok::<_, errgroup::Cancelled>(i)
        },
    }
    .unwrap();
    assert_eq!(items, [0, 1, 2, 3, 4]);
    assert_eq!(
        *order.lock().unwrap(),
        ["item 0", "item 1", "queued", "item 2", "item 3", "item 4"],
        "first come, first served: the fan-out asked for item 1's permit \
         before the task was spawned, the task before item 2's",
    );
}
