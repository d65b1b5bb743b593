//! Randomized schedules: proptest builds groups
//! with random behaviours and delays on tokio's paused clock, runs each on a
//! fresh current-thread runtime, and checks the run against an oracle
//! computed from the plan alone. "Semantic N" is the numbered list in the
//! `errgroup!` rustdoc (runtime/lib.rs).
//!
//! The first property: groups of 1-20 branches. Behaviours: ok / error /
//! panic, each either cooperative (`ctx.sleep`) or ignoring ctx
//! (`tokio::time::sleep`, so it still acts after the cancellation); blocked
//! on a group channel (a `recv` on an empty one or a `send` on a full one);
//! `ctx.spawn` sub-tasks with behaviours of their own; a nested group
//! (dynamic `Group` or `errgroup!`); and producers and consumers on one
//! shared group channel. A case may have a deadline and a parent group
//! cancelled at a random instant. Each case runs one of three paths: the
//! dynamic `Group`, an `errgroup!` fan-out of in-task items, or an
//! `errgroup!` `#[spawn]` fan-out.
//!
//! The second property adds the headers that change when bodies start and
//! end: 1-10 in-task or `#[spawn]` items and 0-4 `#[blocking]` items under
//! a random `limit`, `grace` and `on_error = continue`, with a deadline and
//! a parent as above (the dynamic `Group` path: `limit` only). Blocking
//! bodies run on real threads, and the paused clock stands still while one
//! runs, so they take no virtual time and wait only on explicit
//! synchronisation: they act at once, poll `ctx.check()` a few times first,
//! or (a holdout) spin until the group is cancelled and `grace = 0` has
//! dropped every other item, and keep running after that. The oracle is
//! the first one's, fed each body's observed start: under `limit` who
//! starts when depends on the scheduler, so the run is checked against
//! what `limit` allows instead.
//!
//! Checked after every run:
//! - the result is one the oracle allows: the earliest failure by virtual
//!   time, or the deadline / parent cause, or `Ok` when every branch still
//!   returned `Ok`; at an instant where several things happen at once, any
//!   of them;
//! - a panic resumes with the payload of the earliest panic, also one that
//!   happened after the cancellation in a branch that ignores ctx;
//! - each branch acted (or not) and ended at the instant the oracle says,
//!   and the group returned at the instant its last branch ended;
//! - no branch future is alive when the group returns, `#[blocking]` ones
//!   included (semantic 3), every one has been dropped, and
//!   `num_alive_tasks()` is back to its baseline;
//! - every message is accounted for exactly once: received, handed back by
//!   a failed send, or dropped in a buffer it was accepted into (never one
//!   whose send failed; never without a cancellation while consumers run);
//! - `limit` (semantic 8): never more bodies at once than it allows, in
//!   real time and instant by instant; a fan-out starts its items in order;
//!   and while a body waits, every slot is taken (the last only for a lone
//!   fan-out, see the ignored tests at the end);
//! - nothing starts after the cancellation (semantic 9): before the
//!   deadline, by the parent's cancellation or the first failure, and at
//!   that instant only in a slot that was free or was freed by a body that
//!   did not cancel;
//! - `grace`: a body ignoring ctx that still runs `grace` after the
//!   cancellation never acts and ends then; a `#[blocking]` body is waited
//!   for, and takes no virtual time;
//! - `on_error = continue` (semantic 10): an error cancels nothing, and
//!   each item's own result comes back: its planned end if it acted,
//!   `Err(Cancelled)` if it saw a deadline or parent first.
//!
//! Cases: 5,000 for the first property and 4,000 for the second by default
//! (`PROPTEST_CASES=n` sets both). The generator's seed is printed on
//! failure; `PROPTEST_RNG_SEED=<seed> cargo test --test schedules <name>`
//! replays the same cases. Runs are deterministic on the paused clock (a
//! blocking body's result may depend on real time only where the oracle
//! allows either), so the replay fails the same way. No regression file is
//! written: a real regression becomes a plain test.

use std::collections::BTreeMap;
use std::sync::{Mutex, Once};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

/// One step of virtual time, in milliseconds.
const UNIT: u64 = 10;
/// Latest instant (in units) at which a planned action happens.
const MAX_AT: u64 = 5;
/// The macro needs a `timeout` expression: "no deadline" is one far past
/// every plan, which a hang would reach and report as a wrong result.
const NO_DEADLINE: u64 = 100_000;
/// Turns a hang into a failure, in virtual time (costs no real time).
const HANG: Duration = Duration::from_secs(3_600);
const DEFAULT_CASES: u32 = 5_000;

#[path = "../common/mod.rs"]
mod common;

mod check;
mod knobs;
mod oracle;
mod plan;
mod regressions;
mod run;

use check::check;
use knobs::{KNOB_CASES, KNOB_STATS, check_knobs, knobs};
use oracle::{GroupResult, Payload, Source};
use plan::plan;
use run::{Env, Fate};

/// What the cases covered, printed at the end (`--nocapture` shows it).
struct Stats(Mutex<BTreeMap<&'static str, usize>>);

static STATS: Stats = Stats(Mutex::new(BTreeMap::new()));

impl Stats {
    fn record(&self, result: &GroupResult, env: &Env, tags: &[&'static str]) {
        let mut counts = self.0.lock().unwrap();
        let mut bump = |what: &'static str, n: usize| *counts.entry(what).or_default() += n;
        bump(
            match result {
                GroupResult::Ok => "result: ok",
                GroupResult::Failed { .. } => "result: failed",
                GroupResult::Cancelled(Source::Deadline) => "result: deadline",
                GroupResult::Cancelled(Source::Parent) => "result: parent",
                GroupResult::Panicked(_) => "result: panicked",
                GroupResult::Unexpected(_) => "result: unexpected",
            },
            1,
        );
        for fates in env.fates.lock().unwrap().values() {
            bump(
                match fates.first() {
                    Some(Fate::Received) => "messages: received",
                    Some(Fate::Returned) => "messages: handed back",
                    Some(Fate::Dropped) => "messages: dropped in a buffer",
                    None => "messages: none",
                },
                1,
            );
        }
        for tag in tags {
            bump(tag, 1);
        }
    }
}

fn quiet_payload_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<Payload>().is_none() {
                default(info);
            }
        }));
    });
}

#[test]
fn random_schedules_match_the_oracle() {
    run_property(
        "random_schedules",
        DEFAULT_CASES,
        plan(),
        |plan| check(&plan),
        &STATS,
    );
}

/// Runs `check` on `cases` plans (or `PROPTEST_CASES`) from a seed that
/// `PROPTEST_RNG_SEED` fixes, and prints what they covered.
fn run_property<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    check: impl Fn(S::Value) -> Result<(), TestCaseError>,
    stats: &Stats,
) {
    quiet_payload_panics();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            use std::hash::{BuildHasher, RandomState};
            RandomState::new().hash_one(std::time::SystemTime::now())
        });
    let config = Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        // A real regression becomes a plain test, not a file.
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, check) {
        panic!("{e}\n\nreplay: PROPTEST_RNG_SEED={seed} cargo test --test schedules {name}");
    }
    println!("{cases} cases, seed {seed}: {:#?}", stats.0.lock().unwrap());
}

#[test]
fn random_limit_grace_blocking_and_supervised_plans_match_the_oracle() {
    run_property(
        "random_limit_grace",
        KNOB_CASES,
        knobs(false),
        |k| check_knobs(&k),
        &KNOB_STATS,
    );
}

/// The second property on `#[spawn]` fan-outs under `grace`: the bug that
/// semantic 3 did not hold for `#[spawn] for` after `grace`, found again
/// (items aborted by dropping their `JoinSet` but not awaited, so their
/// futures are still alive when the group returns).
#[test]
fn random_spawned_fan_outs_under_grace_match_the_oracle() {
    run_property(
        "random_spawned_fan_outs_under_grace",
        KNOB_CASES,
        knobs(true),
        |k| check_knobs(&k),
        &KNOB_STATS,
    );
}
