//! Regressions the properties found, as plain tests.

use std::sync::Mutex;
use std::time::Duration;

use errgroup::{Cause, Group, errgroup};
use tokio::time::Instant;

use crate::knobs::{Blk, KnobPath, Knobs, check_knobs};
use crate::oracle::Fail;
use crate::plan::{Behaviour, End};
use crate::run::units;
/// `Group::spawn` on a group that is already cancelled still starts its
/// task, which sees the cancellation (a group born cancelled runs its
/// written branches); a task that returns `Ok` leaves `wait` `Ok`.
#[tokio::test(start_paused = true)]
async fn a_group_born_past_its_deadline_still_runs_its_tasks() {
    let mut group = Group::<Fail>::new().timeout(Duration::ZERO);
    group.spawn("runs", |ctx| async move {
        assert_eq!(ctx.cause(), Some(Cause::DeadlineExceeded));
        Ok(())
    });
    group.wait().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_group_born_under_a_cancelled_parent_still_runs_its_tasks() {
    let parent = Group::<Fail>::new();
    let parent_ctx = parent.ctx();
    // Dropping a group cancels it: its child below is born cancelled.
    drop(parent);
    let mut child = Group::<Fail>::with_parent(&parent_ctx);
    child.spawn("checks", |ctx| async move {
        ctx.check().map_err(|_| Fail::Leaf("cancelled".into()))
    });
    let err = child.wait().await.unwrap_err();
    assert!(matches!(err.cause(), Cause::Parent(_)), "{err:?}");
}

async fn fail_late() -> Result<(), Fail> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    Err(Fail::Leaf("late".into()))
}

/// A `ctx.spawn` task that fails after a deadline cancelled its group did
/// not return `Ok`: its error is dropped, but the group is cancelled, not
/// `Ok`, on `errgroup!` as on `Group`.
#[tokio::test(start_paused = true)]
async fn a_task_failing_after_the_deadline_leaves_the_group_cancelled() {
    let result = errgroup! {
        timeout = Duration::from_secs(1);
        type Error = Fail;
        spawner => {
            ctx.spawn("late", fail_late()).unwrap();
            Ok(())
        },
    };
    assert_eq!(result.unwrap_err().cause(), Cause::DeadlineExceeded);

    let mut group = Group::<Fail>::new().timeout(Duration::from_secs(1));
    group.spawn("spawner", |ctx| async move {
        ctx.spawn("late", fail_late()).unwrap();
        Ok(())
    });
    assert_eq!(
        group.wait().await.unwrap_err().cause(),
        Cause::DeadlineExceeded
    );
}

// Bugs the second property found in the runtime, each kept as a test of
// its own: a `limit` permit stranded in a fan-out's own pending acquire
// (fixed in fanout.rs's `end_items`), and `#[spawn] for` items aborted by
// `grace` but not awaited (fixed by the engine's one shutdown rule).

/// The minimal plan of the property above: one `#[spawn] for` item that
/// ignores ctx for 3 units, the parent cancelled at 1, `grace = 0`; the
/// item's future is still alive when the group returns at 1.
#[test]
fn a_spawned_item_dropped_by_grace_has_stopped_when_the_group_returns() {
    let plan = Knobs {
        path: KnobPath::Spawn,
        items: vec![Behaviour {
            at: 3,
            coop: false,
            end: End::Ok,
        }],
        blocking: vec![],
        limit: None,
        grace: Some(0),
        supervise: false,
        deadline: None,
        parent: Some(1),
    };
    check_knobs(&plan).unwrap();
}

/// The minimal plan of the second property's check that no `limit` slot
/// stays free while an item waits, when fan-outs compete for slots.
#[test]
fn a_blocking_item_gets_the_slot_an_in_task_item_freed() {
    let leaf = |at| Behaviour {
        at,
        coop: false,
        end: End::Ok,
    };
    let plan = Knobs {
        path: KnobPath::InTask,
        items: vec![leaf(0), leaf(1)],
        blocking: vec![Blk::Now {
            coop: false,
            end: End::Ok,
        }],
        limit: Some(2),
        grace: None,
        supervise: false,
        deadline: None,
        parent: None,
    };
    check_knobs(&plan).unwrap();
}

/// Found by the second property (its minimal plan:
/// `limit = 2`, in-task items ending at 0 and 1 units, one `#[blocking]`
/// item, which started at 1 unit instead of 0).
///
/// A fan-out asks the semaphore for a permit before it pulls its next item,
/// so with every item running it waits in the semaphore's queue. When one of
/// its items ends, it reuses that item's permit (nobody else waits yet),
/// pulls, finds the iterator empty and drops the permit: the semaphore hands
/// it to the first waiter, the fan-out's own pending acquire, which nobody
/// polls again. The slot stays idle until the fan-out ends and drops its
/// `PollSemaphore`; `second` waits for it meanwhile.
#[tokio::test(start_paused = true)]
async fn a_permit_freed_as_a_fan_out_runs_out_of_items_is_not_stranded() {
    let start = Instant::now();
    let started = Mutex::new(None);
    let started = &started;
    errgroup! {
        limit = 2;
        type Error = Fail;
        first => for at in [0, 1] {
            tokio::time::sleep(units(at)).await;
            Ok(())
        },
        second => for _ in 0..1 {
            *started.lock().unwrap() = Some(Instant::now() - start);
            Ok(())
        },
    }
    .unwrap();
    assert_eq!(
        started.lock().unwrap().unwrap(),
        Duration::ZERO,
        "`second` waited while a slot was free"
    );
}

/// The same stranded permit, where it hurts: `first`'s second item waits
/// for `second`, which waits for a slot that `first` holds but no item
/// uses, so the group hangs until its deadline instead of returning `Ok`.
#[tokio::test(start_paused = true)]
async fn a_stranded_permit_does_not_hang_a_group() {
    let result = errgroup! {
        limit = 2;
        timeout = Duration::from_secs(3_600);
        type Error = Fail;
        let (tx, rx) = channel::<()>(1);
        first => for wait in [false, true] {
            if wait {
                rx.recv().await?;
            }
            Ok(())
        },
        second => for _ in 0..1 {
            tx.send(()).await.map_err(|_| Fail::Cancelled)?;
            Ok(())
        },
    };
    assert!(result.is_ok(), "{result:?}");
}
