//! Less typing in branches: a branch that never yields `Ok` needs no
//! turbofish (its value type is whatever the code around the group needs,
//! and the never-type fallback otherwise), and `#[spawn(clone(..))]` /
//! `#[blocking(clone(..))]` clone what a moving branch reads.
//!
//! Each group below compiles only because of the rule it shows: without
//! it, the branch's value type (or the moved value) is an error. The
//! assertions check that the expansion still behaves as written.

// A tail `return Err(..)` is one of the shapes the rule reads.
#![allow(clippy::needless_return)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use errgroup::{Cause, Error, errgroup};

fn failed<E: std::fmt::Debug>(error: Error<E>) -> (String, E) {
    match error {
        Error::Failed { task, error } => (task.to_string(), error),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_branch_ending_in_err_needs_no_turbofish() {
    let result = errgroup! {
        ok => { ctx.cancelled().await; Ok(1u8) },
        failing => Err("boom"),
    };
    assert_eq!(failed(result.unwrap_err()), ("failing".into(), "boom"));
}

#[tokio::test(start_paused = true)]
async fn a_branch_ending_in_return_err_needs_no_turbofish() {
    let stop = true;
    let result = errgroup! {
        wait => { ctx.cancelled().await; Ok(()) },
        with_semicolon => {
            ctx.sleep(Duration::from_secs(2)).await.map_err(|_| "cancelled")?;
            return Err("late");
        },
        without => {
            if !stop {
                return Err("not this one");
            }
            return Err("first")
        },
    };
    assert_eq!(failed(result.unwrap_err()), ("without".into(), "first"));
}

#[tokio::test(start_paused = true)]
async fn a_loop_without_break_needs_no_turbofish() {
    let ticks = AtomicU32::new(0);
    let result = errgroup! {
        timeout = Duration::from_millis(35);
        type Error = errgroup::Cancelled;
        ticker => loop {
            ctx.sleep(Duration::from_millis(10)).await?;
            ticks.fetch_add(1, SeqCst);
        },
        worker => { ctx.cancelled().await; Ok("done") },
    };
    // The deadline stops the ticker: it is the first (and only) error.
    assert!(matches!(
        result,
        Err(Error::Cancelled(c)) if *c.cause() == Cause::DeadlineExceeded
    ));
    assert_eq!(ticks.load(SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_labelled_loop_whose_inner_breaks_stay_inside_needs_no_turbofish() {
    let result = errgroup! {
        outer => 'outer: loop {
            for attempt in 0..3 {
                if attempt == 1 {
                    break; // leaves the `for`, not `'outer`
                }
            }
            let mut n = 0;
            loop {
                n += 1;
                if n == 2 {
                    break; // leaves the inner loop
                }
            }
            if ctx.is_cancelled() {
                continue 'outer;
            }
            return Err(String::from("gave up"));
        },
    };
    assert_eq!(
        failed(result.unwrap_err()),
        ("outer".into(), "gave up".to_string())
    );
}

#[tokio::test(start_paused = true)]
async fn every_arm_of_an_if_or_a_match_counts() {
    let which = 2;
    let result = errgroup! {
        by_if => if which > 5 { Err("big") } else { ctx.cancelled().await; Err("small") },
        by_match => match which {
            1 => Err("one"),
            2 => return Err("two"),
            _ => loop { ctx.sleep(Duration::from_secs(1)).await.map_err(|_| "late")?; },
        },
    };
    assert_eq!(failed(result.unwrap_err()), ("by_match".into(), "two"));
}

#[tokio::test(start_paused = true)]
async fn spawned_and_blocking_branches_too() {
    let result = errgroup! {
        type Error = String;
        #[spawn] spawned => loop {
            ctx.sleep(Duration::from_secs(1)).await.map_err(|c| c.to_string())?;
        },
        #[blocking] blocking => Err("sync".to_string()),
    };
    assert_eq!(
        failed(result.unwrap_err()),
        ("blocking".into(), "sync".to_string())
    );

    let result = errgroup! {
        #[blocking] polls => loop {
            if ctx.is_cancelled() {
                return Err("stopped");
            }
            std::thread::yield_now();
        },
        failing => Err("boom"),
    };
    assert_eq!(failed(result.unwrap_err()), ("failing".into(), "boom"));
}

#[tokio::test(start_paused = true)]
async fn fan_out_items_too() {
    let result = errgroup! {
        items => for i in 0..3u32 {
            ctx.sleep(Duration::from_secs(u64::from(i))).await.map_err(|_| 0u32)?;
            Err(i)
        },
    };
    assert_eq!(failed(result.unwrap_err()), ("items[0]".into(), 0));

    let result = errgroup! {
        #[spawn] spawned => for i in 0..2u32 { if i == 0 { return Err(i); } loop { ctx.check().map_err(|_| 9u32)?; tokio::task::yield_now().await; } },
        #[blocking] blocking => for _i in 0..2u32 { loop { if ctx.is_cancelled() { return Err(7); } std::thread::yield_now(); } },
    };
    assert_eq!(failed(result.unwrap_err()), ("spawned[0]".into(), 0));
}

#[tokio::test(start_paused = true)]
async fn supervised_branches_need_no_turbofish_either() {
    let (good, bad, ticker) = errgroup! {
        on_error = continue;
        good => Ok(1),
        bad => Err("no"),
        ticker => {
            let mut ticks = 0;
            loop {
                ctx.sleep(Duration::from_secs(1)).await.map_err(|_| "cancelled")?;
                ticks += 1;
                if ticks == 2 {
                    return Err("ticked");
                }
            }
        },
    }
    .unwrap();
    assert_eq!(good, Ok(1));
    assert_eq!(bad, Err("no"));
    assert_eq!(ticker, Err("ticked"));
}

/// What the caller says the value is wins: the rule never makes a type
/// that compiled before an error.
async fn supervised_with_types()
-> Result<(Result<u8, &'static str>, Result<u8, &'static str>), Error<&'static str>> {
    errgroup! {
        on_error = continue;
        good => Ok(1),
        bad => Err("bad"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_value_type_fixed_outside_the_group_is_kept() {
    let (good, bad) = supervised_with_types().await.unwrap();
    assert_eq!((good, bad), (Ok(1), Err("bad")));

    let (unit, number): ((), u32) = errgroup! {
        on_error = continue;
        unit => Err("unit"),
        #[blocking] number => Err("number"),
    }
    .map(|(unit, number)| (unit.unwrap_or(()), number.unwrap_or(7)))
    .unwrap();
    assert_eq!((unit, number), ((), 7));
}

#[tokio::test(start_paused = true)]
async fn a_branch_that_may_yield_ok_keeps_its_inferred_type() {
    // Each of these ends in `Err(..)` or a loop, but can yield `Ok` some
    // other way: its value type is still inferred from that `Ok`.
    let pick = 3;
    let (early, from_loop, named, in_macro) = errgroup! {
        on_error = continue;
        early => { if pick == 3 { return Ok(3u8); } Err("no") },
        from_loop => 'l: loop { if pick == 3 { break 'l Ok(4u16); } },
        named => Err::<u32, _>("named"),
        in_macro => {
            let mut polls = 0;
            loop {
                tokio::select! {
                    biased;
                    () = tokio::task::yield_now(), if polls == 2 => return Ok(5u64),
                    () = tokio::task::yield_now() => polls += 1,
                }
            }
        },
    }
    .unwrap();
    assert_eq!(early, Ok(3u8));
    assert_eq!(from_loop, Ok(4u16));
    assert_eq!(named, Err("named"));
    assert_eq!(in_macro, Ok(5u64));
}

#[tokio::test(start_paused = true)]
async fn the_error_type_still_comes_from_the_branches() {
    // No header: `Err(anyhow!(..))` fixes the error type of the group.
    let result = errgroup! {
        failing => Err(anyhow::anyhow!("disk full")),
        waiting => { ctx.cancelled().await; Ok(()) },
    };
    let (task, error) = failed(result.unwrap_err());
    assert_eq!(
        (task.as_str(), error.to_string().as_str()),
        ("failing", "disk full")
    );
}

/// A counter whose clones share the count: what `clone(..)` is for.
#[derive(Clone, Default)]
struct Db {
    reads: Arc<AtomicU32>,
}

impl Db {
    fn read(&self) -> u32 {
        self.reads.fetch_add(1, SeqCst) + 1
    }
}

#[tokio::test(start_paused = true)]
async fn a_clone_list_clones_before_the_branch_moves() {
    let db = Db::default();
    let cfg = Arc::new(String::from("cfg"));
    let (a, b, c) = errgroup! {
        type Error = ();
        #[spawn(clone(db, cfg))] a => { db.read(); Ok(cfg.len()) },
        #[blocking(clone(db, cfg))] b => { db.read(); Ok(cfg.len()) },
        #[spawn(clone(db))] c => Ok(db.read() > 0),
    }
    .unwrap();
    assert_eq!((a, b, c), (3, 3, true));
    // Every branch read through its own clone; the originals are still here.
    assert_eq!(db.read(), 4);
    assert_eq!(Arc::strong_count(&cfg), 1);
    assert_eq!(Arc::strong_count(&db.reads), 1);
}

#[tokio::test(start_paused = true)]
async fn a_fan_out_clones_once_per_item() {
    let db = Db::default();
    let (spawned, blocking) = errgroup! {
        type Error = ();
        #[spawn(clone(db))] spawned => for i in 0..3u32 { db.read(); Ok(i) },
        #[blocking(clone(db))] blocking => for i in 0..2u32 { db.read(); Ok(i) },
    }
    .unwrap();
    assert_eq!((spawned, blocking), (vec![0, 1, 2], vec![0, 1]));
    assert_eq!(db.read(), 6);
    assert_eq!(Arc::strong_count(&db.reads), 1);
}

#[tokio::test(start_paused = true)]
async fn clones_and_never_ok_together() {
    let db = Db::default();
    let result = errgroup! {
        #[spawn(clone(db))] ticker => loop {
            db.read();
            ctx.sleep(Duration::from_secs(1)).await.map_err(|_| "stopped")?;
        },
        #[blocking(clone(db))] failing => { db.read(); Err("boom") },
    };
    assert_eq!(failed(result.unwrap_err()).1, "boom");
    assert!(db.read() >= 3);
}
