//! Memory stays flat however many tasks a long-running group starts: a
//! pool's finished tasks, and a `Group`'s whose `Ok(())` nobody collects,
//! are freed at once. Counted by a counting global allocator (no `unsafe`):
//! the live heap after 20,000 short tasks is the live heap after 2,000.

use std::alloc::System;
use std::sync::Arc;
use std::sync::Mutex;

use errgroup::Group;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tokio::sync::Semaphore;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// One measurement at a time: the allocator is global to this binary.
static SERIAL: Mutex<()> = Mutex::new(());

const EARLY: usize = 2_000;
const TASKS: usize = 20_000;
/// Growth tolerated between the two readings: lazily grown runtime
/// buffers, never one block per task (18,000 tasks would be far more).
const MAX_GROWTH: isize = 16 * 1024;

fn live_bytes() -> isize {
    let stats = GLOBAL.stats();
    let signed = |n: usize| isize::try_from(n).expect("counter fits isize");
    signed(stats.bytes_allocated) - signed(stats.bytes_deallocated)
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A supervised pool, 4 tasks at a time, from a `Group` (which has no
/// driver to reap its tasks) and from an `errgroup!` branch.
#[test]
fn a_pools_finished_tasks_are_freed_at_once() {
    let _serial = SERIAL.lock().unwrap();
    let (early, late) = current_thread().block_on(async {
        let group = Group::<String>::new();
        let conns = group.pool().limit(4).supervise(|_, _| {});
        let mut early = 0;
        for i in 0..TASKS {
            if i == EARLY {
                early = live_bytes();
            }
            conns
                .spawn("conn", async {
                    tokio::task::yield_now().await;
                    Ok(())
                })
                .await
                .unwrap();
        }
        let late = live_bytes();
        group.wait().await.unwrap();
        (early, late)
    });
    assert!(late - early < MAX_GROWTH, "{early} -> {late} bytes");

    let (early, late) = current_thread().block_on(async {
        let (early, late) = errgroup::errgroup! {
            type Error = String;
            accept => {
                let conns = ctx.pool().limit(4);
                let mut early = 0;
                for i in 0..TASKS {
                    if i == EARLY {
                        early = live_bytes();
                    }
                    conns.spawn("conn", async { tokio::task::yield_now().await; Ok(()) }).await.unwrap();
                }
                Ok((early, live_bytes()))
            },
        }
        .unwrap()
        .0;
        (early, late)
    });
    assert!(late - early < MAX_GROWTH, "{early} -> {late} bytes");
}

/// `Group::spawn` in a loop, the group never `returning`: nothing is kept
/// of a task that returned `Ok(())`.
#[test]
fn a_groups_finished_tasks_are_freed_at_the_next_spawn() {
    let _serial = SERIAL.lock().unwrap();
    let (early, late) = current_thread().block_on(async {
        let mut group = Group::<String>::new();
        let slots = Arc::new(Semaphore::new(4));
        let mut early = 0;
        for i in 0..TASKS {
            if i == EARLY {
                early = live_bytes();
            }
            let slot = Arc::clone(&slots).acquire_owned().await.unwrap();
            group.spawn("conn", |_| async move {
                tokio::task::yield_now().await;
                drop(slot);
                Ok(())
            });
        }
        let late = live_bytes();
        assert!(group.len() <= 4);
        group.wait().await.unwrap();
        (early, late)
    });
    assert!(late - early < MAX_GROWTH, "{early} -> {late} bytes");
}

/// A burst of tasks, then no spawn while the group lives on (a server
/// between bursts of clients): once the burst has ended, the group holds
/// none of it, whether its tasks came from `Group::spawn`, from a pool or
/// from the group's `ctx.spawn`.
/// Measured as what one more spawn (which frees whatever has ended) would
/// still free: nothing.
#[test]
fn a_burst_is_freed_when_it_ends_without_another_spawn() {
    const BURST: usize = 5_000;
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for mode in ["pool", "Group::spawn", "ctx.spawn"] {
        let (ended_burst, after_spawn) = current_thread().block_on(async {
            let mut group = Group::<String>::new();
            let pool = group.pool().supervise(|_, _| {});
            let ctx = group.ctx();
            let gate = Arc::new(Semaphore::new(0));
            let ended = Arc::new(Semaphore::new(0));
            for _ in 0..BURST {
                let (gate, ended) = (Arc::clone(&gate), Arc::clone(&ended));
                let task = async move {
                    // Big, as a connection's future is: what a kept task costs.
                    let buffer = std::hint::black_box([0_u8; 1024]);
                    let _ = gate.acquire().await.unwrap();
                    std::hint::black_box(&buffer);
                    ended.add_permits(1);
                    Ok(())
                };
                match mode {
                    "pool" => pool.spawn("conn", task).await.unwrap(),
                    "Group::spawn" => group.spawn("conn", |_| task),
                    _ => ctx.spawn("conn", task).unwrap(),
                }
            }
            gate.add_permits(BURST);
            ended
                .acquire_many(u32::try_from(BURST).unwrap())
                .await
                .unwrap()
                .forget();
            // Each task has run to its end; let the runtime finish them.
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
            let ended_burst = live_bytes();
            // One more spawn frees whatever had ended and was still kept.
            match mode {
                "pool" => pool.spawn("next", async { Ok(()) }).await.unwrap(),
                _ => group.spawn("next", |_| async { Ok(()) }),
            }
            let after_spawn = live_bytes();
            drop(pool);
            group.wait().await.unwrap();
            (ended_burst, after_spawn)
        });
        assert!(
            ended_burst - after_spawn < MAX_GROWTH,
            "{mode}: the next spawn freed {} bytes of tasks that had ended",
            ended_burst - after_spawn
        );
    }
}
