//! The second property: `limit`, `grace`, `#[blocking]` and
//! `on_error = continue`: its plans, paths and checks.

use std::collections::BTreeMap;
use std::panic::panic_any;
use std::sync::Mutex;
use std::sync::atomic::Ordering::SeqCst;

use errgroup::{Ctx, Error, Group, TaskName, errgroup};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::check::{check_returned, check_sources, verdict};
use crate::common::FAILSAFE;
use crate::oracle::{
    Chance, Expect, Fail, GroupResult, Payload, Rules, Source, Src, oracle, work_name,
};
use crate::plan::{Behaviour, End, Failures, behaviour};
use crate::run::{Alive, CaseResult, Env, act, execute, under_parent, units};
use crate::{MAX_AT, NO_DEADLINE, Stats, UNIT};

// A `#[blocking]` body runs on a real thread, and tokio's paused clock does
// not advance on its own while one runs: such a body takes no virtual
// time. So blocking items never sleep; they end at the instant they start,
// and whatever they wait for comes from explicit synchronisation (a flag,
// a counter), never from the clock.

pub(crate) const KNOB_CASES: u32 = 4_000;
/// How many times a cooperative blocking item polls its ctx, yielding its
/// thread in between, before it acts.
pub(crate) const SPINS: usize = 20;
/// How long (real time) a holdout keeps running after what it waits for,
/// so that a group returning without it would be caught still running.
pub(crate) const HOLD: usize = 200;
/// `limit` when the plan has none on the path that always sets the header:
/// more than any plan's bodies, so it never binds.
pub(crate) const LOTS: usize = 64;

/// One `#[blocking]` item.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Blk {
    /// Acts at once, ending in `end`. If `coop`, it first polls
    /// `ctx.check()` `SPINS` times and returns `Err(Cancelled)` when it
    /// sees the cancellation.
    Now { coop: bool, end: End },
    /// Ignores ctx as far as its result goes: spins until the group is
    /// cancelled, then until every in-task or spawned item has ended
    /// (`grace = 0` drops the stubborn ones), then a little longer, and
    /// returns `Ok`. So it still runs when the grace period is over, and
    /// the group must wait for it (semantic 3).
    Holdout,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KnobPath {
    /// A dynamic `Group`: `limit` only.
    Group,
    /// `errgroup!` with an in-task fan-out (and a `#[blocking]` one if the
    /// plan has blocking items).
    InTask,
    /// `errgroup!` with a `#[spawn]` fan-out (and a `#[blocking]` one).
    Spawn,
}

#[derive(Clone, Debug)]
pub(crate) struct Knobs {
    pub(crate) path: KnobPath,
    /// The in-task or spawned items, `work[i]`.
    pub(crate) items: Vec<Behaviour>,
    /// The `#[blocking]` items, `blk[i]`.
    pub(crate) blocking: Vec<Blk>,
    pub(crate) limit: Option<usize>,
    /// In units.
    pub(crate) grace: Option<u64>,
    pub(crate) supervise: bool,
    pub(crate) deadline: Option<u64>,
    pub(crate) parent: Option<u64>,
}

pub(crate) fn blk(failures: Failures) -> impl Strategy<Value = Blk> {
    let end = prop_oneof![6 => Just(End::Ok), 3 => Just(End::Err), 1 => Just(End::Panic)];
    prop_oneof![
        3 => (any::<bool>(), end).prop_map(move |(coop, end)| Blk::Now {
            coop,
            end: failures.allow(end),
        }),
        1 => Just(Blk::Holdout),
    ]
}

/// `spawn_grace`: only `#[spawn]` fan-outs, always under `grace`;
/// otherwise every path.
pub(crate) fn knobs(spawn_grace: bool) -> impl Strategy<Value = Knobs> {
    let failures = prop_oneof![
        Just(Failures::None),
        Just(Failures::Errors),
        Just(Failures::ErrorsAndPanics)
    ];
    let path = if spawn_grace {
        Just(KnobPath::Spawn).boxed()
    } else {
        prop_oneof![
            2 => Just(KnobPath::InTask),
            2 => Just(KnobPath::Spawn),
            1 => Just(KnobPath::Group),
        ]
        .boxed()
    };
    (failures, path)
        .prop_flat_map(move |(failures, path)| {
            (
                Just(path),
                prop::collection::vec(behaviour(failures), 1..=10),
                prop::collection::vec(blk(failures), 0..=4),
                prop::option::weighted(0.6, 1..=4usize),
                prop::option::weighted(0.5, 0..=3u64),
                prop::bool::weighted(0.3),
                prop::option::weighted(0.4, 0..=MAX_AT + 1),
                prop::option::weighted(0.2, 0..=MAX_AT + 1),
            )
        })
        .prop_map(
            move |(
                path,
                items,
                mut blocking,
                mut limit,
                mut grace,
                mut supervise,
                deadline,
                parent,
            )| {
                if path == KnobPath::Group {
                    // `Group` has `limit`, but no `grace`, `#[blocking]` or
                    // supervisor mode.
                    blocking.clear();
                    (grace, supervise) = (None, false);
                }
                if spawn_grace {
                    grace.get_or_insert(items.len() as u64 % 4);
                }
                // A holdout needs a cancellation that takes no virtual
                // time (a blocking item failing at once), every slot free
                // for it and its trigger, and `grace = 0` so that nothing
                // it waits for needs the clock.
                let trigger = blocking
                    .iter()
                    .any(|b| matches!(b, Blk::Now { coop: false, end } if *end != End::Ok));
                let holdouts = blocking.iter().any(|b| matches!(b, Blk::Holdout));
                if holdouts && trigger && path != KnobPath::Group {
                    (limit, grace, supervise) = (None, Some(0), false);
                } else {
                    blocking.retain(|b| !matches!(b, Blk::Holdout));
                }
                Knobs {
                    path,
                    items,
                    blocking,
                    limit,
                    grace,
                    supervise,
                    deadline,
                    parent,
                }
            },
        )
}

pub(crate) fn blk_name(i: usize) -> String {
    format!("blk[{i}]")
}

/// Marks a body as running, from its first poll until it ends.
pub(crate) struct InFlight(pub(crate) &'static Env);

impl InFlight {
    pub(crate) fn new(env: &'static Env, name: &str) -> Self {
        env.gauge.enter();
        let now = env.now();
        let mut started = env.started.lock().unwrap();
        started.entry(name.to_owned()).or_default().push(now);
        InFlight(env)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.gauge.exit();
    }
}

/// An in-task or spawned item, for the holdouts to wait for. Made when the
/// item is pulled and moved into its future, so it counts until that
/// future is gone, whether it was ever polled or not (a spawned item may
/// be aborted before its first poll).
pub(crate) struct Pending(pub(crate) &'static Env);

impl Pending {
    pub(crate) fn new(env: &'static Env) -> Self {
        env.pending.fetch_add(1, SeqCst);
        Pending(env)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, SeqCst);
    }
}

pub(crate) async fn knob_item(
    ctx: Ctx,
    env: &'static Env,
    i: usize,
    leaf: Behaviour,
    pending: Pending,
) -> Result<(), Fail> {
    let name = work_name(i);
    let _running = InFlight::new(env, &name);
    let _pending = pending;
    act(&ctx, env, name.clone(), Fail::Leaf(name), leaf).await
}

pub(crate) fn knob_blocking(ctx: &Ctx, env: &'static Env, i: usize, blk: Blk) -> Result<(), Fail> {
    let name = blk_name(i);
    let _running = InFlight::new(env, &name);
    let _alive = Alive::new(env, name.clone());
    match blk {
        Blk::Now { coop, end } => {
            if coop {
                for _ in 0..SPINS {
                    ctx.check()?;
                    std::thread::yield_now();
                }
            }
            env.act(&name);
            match end {
                End::Ok => Ok(()),
                End::Err => Err(Fail::Leaf(name)),
                End::Panic => panic_any(Payload(name)),
            }
        }
        Blk::Holdout => {
            hold(env, &name, "the cancellation", || ctx.is_cancelled());
            hold(env, &name, "the other items' end", || {
                env.pending.load(SeqCst) == 0
            });
            for _ in 0..HOLD {
                std::thread::yield_now();
            }
            Ok(())
        }
    }
}

/// Spins this blocking thread until `done()`; a problem after `FAILSAFE`.
pub(crate) fn hold(env: &Env, name: &str, what: &str, done: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        if start.elapsed() > FAILSAFE {
            env.problem(format!("{name} waited for {what} in vain"));
            return;
        }
        std::thread::yield_now();
    }
}

pub(crate) async fn run_knobs(k: &Knobs, env: &'static Env) -> Result<(), Error<Fail>> {
    match k.path {
        KnobPath::Group => knobs_group(k, env).await,
        KnobPath::InTask | KnobPath::Spawn => knobs_macro(k, env).await,
    }
}

pub(crate) async fn knobs_group(k: &Knobs, env: &'static Env) -> Result<(), Error<Fail>> {
    let mut group = Group::<Fail>::new().shutdown_on(env.stop_signal());
    if let Some(d) = k.deadline {
        group = group.timeout(units(d));
    }
    if let Some(n) = k.limit {
        group = group.limit(n);
    }
    for (i, leaf) in k.items.iter().cloned().enumerate() {
        let pending = Pending::new(env);
        group.spawn(TaskName::indexed("work", i), move |ctx| {
            knob_item(ctx, env, i, leaf, pending)
        });
    }
    group.wait().await
}

/// One `errgroup!` over the plan's fan-outs: `$header`s, the attribute(s)
/// of the `work` branch, and whether there is a `#[blocking]` branch. An
/// empty fan-out is left out: under `limit` it too needs a slot to find
/// out that it has no item.
macro_rules! knob_group {
    ($k:expr, $env:expr, [$($header:tt)*], [$($work:tt)*], no_blocking) => {{
        let (k, env): (&Knobs, &'static Env) = ($k, $env);
        errgroup! {
            $($header)*
            type Error = Fail;
            $($work)* work => for (i, leaf, pending) in pulled(k, env) {
                knob_item(ctx.clone(), env, i, leaf, pending).await
            },
        }
        .map(|(work,)| {
            // No blocking items: an empty `Vec` of `work`'s kind.
            let none = work.iter().take(0).cloned().collect::<Vec<_>>();
            (work, none)
        })
    }};
    ($k:expr, $env:expr, [$($header:tt)*], [$($work:tt)*], blocking) => {{
        let (k, env): (&Knobs, &'static Env) = ($k, $env);
        errgroup! {
            $($header)*
            type Error = Fail;
            $($work)* work => for (i, leaf, pending) in pulled(k, env) {
                knob_item(ctx.clone(), env, i, leaf, pending).await
            },
            #[blocking] blk => for (i, b) in k.blocking.clone().into_iter().enumerate() {
                knob_blocking(ctx, env, i, b)
            },
        }
    }};
}

/// The in-task or spawned items, each with its [`Pending`] made as it is
/// pulled.
pub(crate) fn pulled(
    k: &Knobs,
    env: &'static Env,
) -> impl Iterator<Item = (usize, Behaviour, Pending)> {
    let items = k.items.clone().into_iter().enumerate();
    items.map(move |(i, leaf)| (i, leaf, Pending::new(env)))
}

/// Each item's own result under `on_error = continue`.
pub(crate) fn record_supervised(
    env: &Env,
    work: Vec<Result<(), Fail>>,
    blk: Vec<Result<(), Fail>>,
) {
    let mut seen = env.supervised.lock().unwrap();
    seen.extend(work.into_iter().enumerate().map(|(i, r)| (work_name(i), r)));
    seen.extend(blk.into_iter().enumerate().map(|(i, r)| (blk_name(i), r)));
}

/// The `errgroup!` paths, on `on_error = continue` and on the kind of
/// `work` items; the headers' values come from the plan.
macro_rules! knob_paths {
    ($k:expr, $env:expr, [$($header:tt)*], $blocking:ident) => {{
        let (k, env): (&Knobs, &'static Env) = ($k, $env);
        match (k.supervise, k.path == KnobPath::Spawn) {
            (false, false) => {
                knob_group!(k, env, [$($header)*], [], $blocking).map(|_| ())
            }
            (false, true) => {
                knob_group!(k, env, [$($header)*], [#[spawn]], $blocking).map(|_| ())
            }
            (true, false) => knob_group!(
                k, env, [$($header)* on_error = continue;], [], $blocking
            )
            .map(|(work, blk)| record_supervised(env, work, blk)),
            (true, true) => knob_group!(
                k, env, [$($header)* on_error = continue;], [#[spawn]], $blocking
            )
            .map(|(work, blk)| record_supervised(env, work, blk)),
        }
    }};
}

pub(crate) async fn knobs_macro(k: &Knobs, env: &'static Env) -> Result<(), Error<Fail>> {
    let timeout = units(k.deadline.unwrap_or(NO_DEADLINE));
    // No `grace`: one longer than any plan, which never expires.
    let grace = units(k.grace.unwrap_or(NO_DEADLINE));
    // Without a limit, some groups have no header and some one that never
    // binds.
    match (k.limit, k.blocking.is_empty()) {
        (None, false) => {
            knob_paths!(k, env, [timeout = timeout; grace = grace; shutdown_on = env.stop_signal();], blocking)
        }
        (limit, false) => {
            let n = limit.unwrap_or(LOTS);
            knob_paths!(k, env, [timeout = timeout; grace = grace; limit = n; shutdown_on = env.stop_signal();], blocking)
        }
        (limit, true) => {
            let n = limit.unwrap_or(LOTS);
            knob_paths!(k, env, [timeout = timeout; grace = grace; limit = n; shutdown_on = env.stop_signal();], no_blocking)
        }
    }
}

/// One body of a knob plan, as the checks see it.
pub(crate) struct Timeline {
    pub(crate) name: String,
    /// Its planned end, relative to its start.
    pub(crate) rel_at: u64,
    pub(crate) coop: bool,
    pub(crate) end: End,
    pub(crate) blocking: bool,
    pub(crate) holdout: bool,
    /// When it started and ended (units), if it did.
    pub(crate) start: Option<u64>,
    pub(crate) stop: Option<u64>,
}

pub(crate) fn bodies_of(k: &Knobs, env: &Env, problems: &mut Vec<String>) -> Vec<Timeline> {
    let started = env.started.lock().unwrap();
    let ended = env.ended.lock().unwrap();
    let mut instant =
        |what: &str, name: &str, seen: Option<&Vec<u64>>| match seen.map(Vec::as_slice) {
            None => None,
            Some([ms]) if ms % UNIT == 0 => Some(ms / UNIT),
            Some(ms) => {
                problems.push(format!("{name} {what} at {ms:?}ms"));
                None
            }
        };
    let mut bodies = Vec::new();
    for (i, l) in k.items.iter().enumerate() {
        let name = work_name(i);
        bodies.push(Timeline {
            start: instant("started", &name, started.get(&name)),
            stop: instant("ended", &name, ended.get(&name)),
            name,
            rel_at: l.at,
            coop: l.coop,
            end: l.end,
            blocking: false,
            holdout: false,
        });
    }
    for (i, b) in k.blocking.iter().enumerate() {
        let name = blk_name(i);
        let (coop, end, holdout) = match b {
            Blk::Now { coop, end } => (*coop, *end, false),
            Blk::Holdout => (false, End::Ok, true),
        };
        bodies.push(Timeline {
            start: instant("started", &name, started.get(&name)),
            stop: instant("ended", &name, ended.get(&name)),
            name,
            rel_at: 0,
            coop,
            end,
            blocking: true,
            holdout,
        });
    }
    bodies
}

pub(crate) fn check_knobs(k: &Knobs) -> Result<(), TestCaseError> {
    let (env, run) = execute(|env| under_parent(k.parent, env, move || run_knobs(k, env)));
    let mut problems = std::mem::take(&mut *env.problems.lock().unwrap());
    let tags = verify_knobs(k, env, &run, &mut problems);
    KNOB_STATS.record(&run.result, env, &tags);
    verdict(&run, &problems)
}

pub(crate) fn verify_knobs(
    k: &Knobs,
    env: &'static Env,
    run: &CaseResult,
    problems: &mut Vec<String>,
) -> Vec<&'static str> {
    let bodies = bodies_of(k, env, problems);
    // Each body that started is a source at its absolute instant; a
    // holdout's end is checked on its own.
    let srcs: Vec<Src> = bodies
        .iter()
        .filter(|b| !b.holdout)
        .filter_map(|b| {
            Some(Src {
                name: b.name.clone(),
                error: Fail::Leaf(b.name.clone()),
                at: b.start? + b.rel_at,
                coop: b.coop,
                end: b.end,
                blocking: b.blocking,
            })
        })
        .collect();
    let unstarted: Vec<&str> = bodies
        .iter()
        .filter(|b| b.start.is_none())
        .map(|b| b.name.as_str())
        .collect();
    let mode = Rules {
        grace: k.grace,
        supervise: k.supervise,
        starts_known: true,
        unstarted: !unstarted.is_empty(),
        pulled_all_by: pulled_all_by(k, &bodies),
    };
    let mut sources = Vec::new();
    if let Some(d) = k.deadline {
        sources.push((Source::Deadline, d));
    }
    if let Some(p) = k.parent {
        sources.push((Source::Parent, p));
    }
    // A body that never started keeps the group from ending on its own:
    // only a cancellation explains it.
    let expect = oracle(&srcs, &sources, mode.unstarted, None, true, mode);

    if !expect.accept.contains(&run.result) {
        problems.push(format!(
            "result {:?}, expected one of {:?}",
            run.result, expect.accept
        ));
    }
    if run.tasks_left != 0 {
        problems.push(format!(
            "{} tokio task(s) still alive after the group returned",
            run.tasks_left
        ));
    }
    if run.futures_left != 0 {
        problems.push(format!(
            "{} branch future(s) never dropped",
            run.futures_left
        ));
    }
    check_returned(env, problems);
    check_sources(&srcs, &expect, env, problems);
    let last = bodies.iter().filter_map(|b| b.stop).max().unwrap_or(0);
    if bodies.iter().any(|b| b.stop.is_some()) && run.returned != last * UNIT {
        problems.push(format!(
            "the group returned at {}ms, its last branch ended at {} units",
            run.returned, last
        ));
    }
    if !unstarted.is_empty() && expect.first.contains(&None) {
        problems.push(format!(
            "{unstarted:?} never started, though nothing need have cancelled the group"
        ));
    }
    for b in bodies.iter().filter(|b| b.blocking && b.start.is_some()) {
        // Virtual time stands still while a blocking body runs.
        if b.stop != b.start {
            problems.push(format!(
                "{} (blocking) started at {:?} and ended at {:?} units",
                b.name, b.start, b.stop
            ));
        }
    }
    check_limit(k, env, &bodies, problems);
    check_no_late_start(k, env, &bodies, problems);
    check_fan_out_order(&bodies, problems);
    if k.supervise && run.result == GroupResult::Ok {
        check_supervised(env, &bodies, problems);
    }
    if !problems.is_empty() {
        let spans: Vec<String> = bodies
            .iter()
            .map(|b| format!("{} {:?}..{:?}", b.name, b.start, b.stop))
            .collect();
        problems.push(format!("bodies ran (units): {}", spans.join(", ")));
    }

    knob_tags(k, env, &bodies, &srcs, &expect)
}

/// What was special about a knob case, for the coverage counts.
pub(crate) fn knob_tags(
    k: &Knobs,
    env: &Env,
    bodies: &[Timeline],
    srcs: &[Src],
    expect: &Expect,
) -> Vec<&'static str> {
    let unstarted = bodies.iter().any(|b| b.start.is_none());
    let mut tags = Vec::new();
    if k.limit.is_some() {
        tags.push("knobs: limit");
        if env.gauge.peak.load(SeqCst) == k.limit.unwrap_or(0) {
            tags.push("knobs: limit reached");
        }
        if unstarted {
            tags.push("knobs: queued items never started");
        }
    }
    if k.grace.is_some() {
        tags.push("knobs: grace");
        if expect
            .acts
            .iter()
            .zip(srcs)
            .any(|(a, s)| !s.coop && !s.blocking && *a == Some(Chance::Never))
        {
            tags.push("knobs: grace dropped an item");
        }
    }
    if k.supervise {
        tags.push("knobs: supervised");
        if env.supervised.lock().unwrap().values().any(Result::is_err) {
            tags.push("knobs: supervised with errors");
        }
    }
    if !k.blocking.is_empty() {
        tags.push("knobs: blocking items");
    }
    if bodies.iter().any(|b| b.holdout && b.start.is_some()) {
        tags.push("knobs: a holdout outlived the grace period");
    }
    tags
}

/// How many bodies ran at instant `x` (units): a body ending at `x` has
/// given its slot back, one lasting no time never held it.
pub(crate) fn running(bodies: &[Timeline], x: u64) -> usize {
    bodies
        .iter()
        .filter(|b| b.start.is_some_and(|s| s <= x) && b.stop.is_none_or(|e| e > x))
        .count()
}

/// See [`Rules::pulled_all_by`]: without `limit` every item is pulled at
/// once, and a lone fan-out asks for its next permit as soon as a slot is
/// free after its last item started. Two fan-outs compete for slots, so
/// when either learns its end is not known.
pub(crate) fn pulled_all_by(k: &Knobs, bodies: &[Timeline]) -> u64 {
    let Some(limit) = k.limit.filter(|_| k.path != KnobPath::Group) else {
        return 0;
    };
    if !k.blocking.is_empty() {
        return u64::MAX;
    }
    let Some(last) = bodies[k.items.len() - 1].start else {
        return u64::MAX;
    };
    let horizon = bodies.iter().filter_map(|b| b.stop).max().unwrap_or(0);
    (last..=horizon)
        .find(|x| running(bodies, *x) < limit)
        .unwrap_or(u64::MAX)
}

/// Semantic 8: never more than `limit` bodies at once (in real time, and
/// instant by instant), and no free slot while a body waits for one.
pub(crate) fn check_limit(k: &Knobs, env: &Env, bodies: &[Timeline], problems: &mut Vec<String>) {
    let limit = k.limit.unwrap_or(usize::MAX);
    let peak = env.gauge.peak.load(SeqCst);
    if peak > limit {
        problems.push(format!("{peak} bodies ran at once, limit {limit}"));
    }
    // Until the earliest instant the group may be cancelled, a body that
    // has not started must be waiting for a slot that is taken.
    let cancel = cancellation_instants(k, env, bodies).into_iter().min();
    let horizon = bodies.iter().filter_map(|b| b.stop).max().unwrap_or(0);
    for x in 0..=horizon {
        let running = running(bodies, x);
        if running > limit {
            problems.push(format!("{running} bodies ran at {x} units, limit {limit}"));
        }
        let waiting = bodies.iter().find(|b| b.start.is_none_or(|s| s > x));
        if let Some(w) = waiting {
            if cancel.is_none_or(|t| x < t) && running < limit {
                problems.push(format!(
                    "{} waited at {x} units while only {running} of {limit} slots were taken",
                    w.name
                ));
            }
        }
    }
}

/// The instants (units) at which the run shows the group cancelled: its
/// deadline, its parent's, and the first act that cancels.
pub(crate) fn cancellation_instants(k: &Knobs, env: &Env, bodies: &[Timeline]) -> Vec<u64> {
    let failed = first_failure(k, env, bodies);
    k.deadline
        .into_iter()
        .chain(k.parent)
        .chain(failed)
        .collect()
}

/// The instant (units) of the first act that cancels the group.
pub(crate) fn first_failure(k: &Knobs, env: &Env, bodies: &[Timeline]) -> Option<u64> {
    let acted = env.acted.lock().unwrap();
    let mode = Rules {
        supervise: k.supervise,
        ..Rules::default()
    };
    bodies
        .iter()
        .filter(|b| mode.cancels(b.end))
        .filter_map(|b| acted.get(&b.name).and_then(|at| at.first()))
        .map(|ms| ms / UNIT)
        .min()
}

/// Semantic 9: nothing starts after the cancellation. A body starts before
/// the deadline (a passed deadline is a cancellation even before its timer
/// fires), by the parent's cancellation or the first failure; and at that
/// instant only in a slot that was free, or freed by a body that ended
/// without cancelling: a failing body records its error before it gives
/// its slot back.
pub(crate) fn check_no_late_start(
    k: &Knobs,
    env: &Env,
    bodies: &[Timeline],
    problems: &mut Vec<String>,
) {
    let failed = first_failure(k, env, bodies);
    let acted = env.acted.lock().unwrap();
    let mode = Rules {
        supervise: k.supervise,
        ..Rules::default()
    };
    // A `Group::spawn` task is written, not pulled: in a group born past
    // its deadline it still starts at once, in a free slot (semantic 1).
    let born_cancelled = matches!(k.path, KnobPath::Group) && k.deadline == Some(0);
    let at_birth = bodies.iter().filter(|b| b.start == Some(0)).count();
    if born_cancelled && at_birth > k.limit.unwrap_or(usize::MAX) {
        problems.push(format!(
            "{at_birth} tasks started in a group born cancelled, limit {:?}",
            k.limit
        ));
    }
    for b in bodies {
        let Some(s) = b.start else { continue };
        if born_cancelled && s == 0 {
            continue;
        }
        if k.deadline.is_some_and(|d| s >= d) {
            problems.push(format!(
                "{} started at {s} units, at or after the deadline",
                b.name
            ));
        }
        if let Some(t) = k.parent.into_iter().chain(failed).min() {
            if s > t {
                problems.push(format!(
                    "{} started at {s} units, after the cancellation at {t}",
                    b.name
                ));
            }
        }
    }
    let (Some(limit), Some(t)) = (k.limit, k.parent.into_iter().chain(failed).min()) else {
        return;
    };
    let busy = bodies
        .iter()
        .filter(|b| b.start.is_some_and(|s| s < t) && b.stop.is_none_or(|e| e >= t))
        .count();
    let freed = bodies
        .iter()
        .filter(|b| b.start.is_some_and(|s| s <= t) && b.stop == Some(t))
        .filter(|b| !mode.cancels(b.end))
        .filter(|b| acted.get(&b.name).is_some_and(|at| at == &[t * UNIT]))
        .count();
    let starts = bodies.iter().filter(|b| b.start == Some(t)).count();
    if starts > limit.saturating_sub(busy) + freed {
        problems.push(format!(
            "{starts} bodies started at the cancellation ({t} units) with {} free slots and {freed} freed by bodies that did not cancel",
            limit.saturating_sub(busy)
        ));
    }
}

/// A fan-out pulls its items in order: none starts before an earlier one.
pub(crate) fn check_fan_out_order(bodies: &[Timeline], problems: &mut Vec<String>) {
    for pair in bodies.windows(2) {
        let [a, b] = pair else { unreachable!() };
        if a.blocking != b.blocking {
            continue;
        }
        let out_of_order = match (a.start, b.start) {
            (None, Some(_)) => true,
            (Some(x), Some(y)) => y < x,
            _ => false,
        };
        if out_of_order {
            problems.push(format!(
                "{} started at {:?} units, before {} ({:?})",
                b.name, b.start, a.name, a.start
            ));
        }
    }
}

/// Semantic 10: each item's own result comes back; an item that did not
/// act saw its ctx cancelled (a deadline or parent, never an error).
pub(crate) fn check_supervised(env: &Env, bodies: &[Timeline], problems: &mut Vec<String>) {
    let seen = env.supervised.lock().unwrap();
    let acted = env.acted.lock().unwrap();
    if seen.len() != bodies.len() {
        problems.push(format!(
            "{} results came back for {} items",
            seen.len(),
            bodies.len()
        ));
    }
    for b in bodies {
        let want = match (acted.contains_key(&b.name), b.end) {
            (false, _) => Err(Fail::Cancelled),
            (true, End::Ok) => Ok(()),
            (true, _) => Err(Fail::Leaf(b.name.clone())),
        };
        match seen.get(&b.name) {
            Some(got) if *got == want => {}
            got => problems.push(format!("{} gave {got:?}, expected {want:?}", b.name)),
        }
    }
}

pub(crate) static KNOB_STATS: Stats = Stats(Mutex::new(BTreeMap::new()));
