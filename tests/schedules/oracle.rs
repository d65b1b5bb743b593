//! The oracle: what a plan allows, computed from the plan alone.

use std::collections::BTreeSet;

use errgroup::{Cancelled, Cause, Error};

use crate::common::message;
use crate::plan::{Behaviour, End, Kind, Plan};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Source {
    Deadline,
    Parent,
}

/// The group error type: which leaf failed, so a `Failed` result can be
/// checked against its task name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Fail {
    Leaf(String),
    Nested(usize),
    Cancelled,
}

impl From<Cancelled> for Fail {
    fn from(_: Cancelled) -> Self {
        Fail::Cancelled
    }
}

/// A panic payload no assertion message could be mistaken for.
#[derive(Debug)]
pub(crate) struct Payload(pub(crate) String);

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum GroupResult {
    Ok,
    Failed {
        task: String,
        error: Fail,
    },
    Cancelled(Source),
    Panicked(String),
    /// Anything the oracle never predicts.
    Unexpected(String),
}

pub(crate) fn outcome(
    caught: Result<Result<(), Error<Fail>>, Box<dyn std::any::Any + Send>>,
) -> GroupResult {
    match caught {
        Ok(result) => outcome_of(&result),
        Err(payload) => match payload.downcast::<Payload>() {
            Ok(p) => GroupResult::Panicked(p.0),
            Err(other) => GroupResult::Unexpected(format!("panic: {}", message(&*other))),
        },
    }
}

pub(crate) fn outcome_of(result: &Result<(), Error<Fail>>) -> GroupResult {
    match result {
        Ok(()) => GroupResult::Ok,
        Err(Error::Failed { task, error }) => GroupResult::Failed {
            task: task.to_string(),
            error: error.clone(),
        },
        Err(Error::Cancelled(c)) => match c.cause() {
            Cause::DeadlineExceeded => GroupResult::Cancelled(Source::Deadline),
            Cause::Parent(_) => GroupResult::Cancelled(Source::Parent),
            other => GroupResult::Unexpected(format!("cancelled: {other:?}")),
        },
        // `Error` is `#[non_exhaustive]`; a variant the oracle does not know is a mismatch.
        Err(other) => GroupResult::Unexpected(format!("error: {other:?}")),
    }
}

/// One thing that acts at a planned instant: a branch, a sub-task, or a
/// nested group seen from outside.
#[derive(Clone, Debug)]
pub(crate) struct Src {
    pub(crate) name: String,
    pub(crate) error: Fail,
    pub(crate) at: u64,
    pub(crate) coop: bool,
    pub(crate) end: End,
    /// A `#[blocking]` body: `grace` never drops it.
    pub(crate) blocking: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Chance {
    Never,
    Maybe,
    Sure,
}

impl Chance {
    pub(crate) fn join(self, other: Chance) -> Chance {
        if self == other { self } else { Chance::Maybe }
    }
}

/// What the oracle allows.
#[derive(Debug, Default)]
pub(crate) struct Expect {
    /// Instants at which the group may be cancelled (`None`: not at all).
    pub(crate) first: BTreeSet<Option<u64>>,
    pub(crate) accept: BTreeSet<GroupResult>,
    /// Per source: whether it performs its planned end.
    pub(crate) acts: Vec<Option<Chance>>,
    /// Per source: the instants (units) at which its future may end.
    pub(crate) ends: Vec<BTreeSet<u64>>,
}

pub(crate) fn work_name(i: usize) -> String {
    format!("work[{i}]")
}

pub(crate) fn sub_name(i: usize, j: usize) -> String {
    format!("work[{i}].sub[{j}]")
}

pub(crate) fn kid_name(k: usize) -> String {
    format!("kids[{k}]")
}

/// A nested group of cooperative kids, from outside: a cooperative leaf
/// that fails when its first kid fails, else succeeds with its last kid.
pub(crate) fn nested_as_behaviour(kids: &[Behaviour]) -> Behaviour {
    let first_err = kids
        .iter()
        .filter(|k| k.end == End::Err)
        .map(|k| k.at)
        .min();
    Behaviour {
        at: first_err.unwrap_or_else(|| kids.iter().map(|k| k.at).max().unwrap_or(0)),
        coop: true,
        end: if first_err.is_some() {
            End::Err
        } else {
            End::Ok
        },
    }
}

pub(crate) fn sources_of(plan: &Plan) -> Vec<Src> {
    let mut srcs = Vec::new();
    let src = |name: String, error: Fail, l: &Behaviour| Src {
        name,
        error,
        at: l.at,
        coop: l.coop,
        end: l.end,
        blocking: false,
    };
    for (i, kind) in plan.work.iter().enumerate() {
        match kind {
            Kind::Plain(l) => srcs.push(src(work_name(i), Fail::Leaf(work_name(i)), l)),
            Kind::Spawner { leaf, subs } => {
                srcs.push(src(work_name(i), Fail::Leaf(work_name(i)), leaf));
                for (j, s) in subs.iter().enumerate() {
                    srcs.push(src(sub_name(i, j), Fail::Leaf(sub_name(i, j)), s));
                }
            }
            Kind::Nested { kids, .. } => {
                srcs.push(src(
                    work_name(i),
                    Fail::Nested(i),
                    &nested_as_behaviour(kids),
                ));
            }
            Kind::Blocker { .. } => {}
        }
    }
    srcs
}

pub(crate) fn kid_sources(kids: &[Behaviour]) -> Vec<Src> {
    kids.iter()
        .enumerate()
        .map(|(k, l)| Src {
            name: kid_name(k),
            error: Fail::Leaf(kid_name(k)),
            at: l.at,
            coop: l.coop,
            end: l.end,
            blocking: false,
        })
        .collect()
}

/// What a group's headers change in the oracle; the default is the first
/// property's group (no `grace`, not supervised, starts unknown).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Rules {
    /// `grace = g` units: a source ignoring ctx that still runs `g` after
    /// the cancellation is dropped then, unless it is `#[blocking]`.
    pub(crate) grace: Option<u64>,
    /// `on_error = continue`: an error cancels nothing and comes back as
    /// its branch's own value (semantic 10).
    pub(crate) supervise: bool,
    /// The run observed which sources started and when (their `at` is
    /// absolute), so a cancellation at 0 leaves nothing in doubt.
    pub(crate) starts_known: bool,
    /// Some branch never started: the group cannot yield its values.
    pub(crate) unstarted: bool,
    /// The instant (units) from which every fan-out surely knows it has
    /// pulled its last item. Under `limit` a fan-out learns it only when it
    /// holds a permit for a next item, and it pulls nothing once cancelled
    /// (semantic 9): cancelled before, it has not finished, and the group
    /// is `Cancelled` even though every item returned `Ok`.
    pub(crate) pulled_all_by: u64,
}

impl Rules {
    /// Whether a branch ending in `end` cancels the group.
    pub(crate) fn cancels(self, end: End) -> bool {
        match end {
            End::Ok => false,
            End::Err => !self.supervise,
            End::Panic => true,
        }
    }
}

/// The run when exactly `sources` (deadline, parent) fire, at their instants.
pub(crate) fn scenario(
    srcs: &[Src],
    sources: &[(Source, u64)],
    blockers: bool,
    pipes_ok: bool,
    mode: Rules,
) -> Expect {
    let mut expect = Expect::default();
    let first = srcs
        .iter()
        .filter(|s| mode.cancels(s.end))
        .map(|s| s.at)
        .chain(sources.iter().map(|s| s.1))
        .min();
    expect.first.insert(first);
    let Some(t) = first else {
        // Nothing cancels: every source acts and ends at its instant (and
        // a branch that never started is a bug: no outcome is accepted).
        if !mode.unstarted {
            expect.accept.insert(GroupResult::Ok);
        }
        expect.acts = srcs.iter().map(|_| Some(Chance::Sure)).collect();
        expect.ends = srcs.iter().map(|s| BTreeSet::from([s.at])).collect();
        return expect;
    };
    // Cancelled at the very start, a branch may never be started (a
    // fan-out item not pulled, a spawn refused) or never polled.
    let unsure_start = t == 0 && !mode.starts_known;
    let winners = srcs
        .iter()
        .filter(|s| mode.cancels(s.end) && s.at == t)
        .count()
        + sources.iter().filter(|s| s.1 == t).count();
    let mut ok_possible = !blockers && pipes_ok && !mode.unstarted;
    let mut ok_certain = ok_possible && !unsure_start && mode.pulled_all_by < t;
    for s in srcs {
        let mut act = if s.at < t {
            Chance::Sure
        } else if s.at == t {
            // At the cancelling instant a cooperative source may see the
            // cancellation first, unless it is what cancels.
            if !s.coop || (mode.cancels(s.end) && winners == 1) {
                Chance::Sure
            } else {
                Chance::Maybe
            }
        } else if s.coop {
            Chance::Never
        } else {
            Chance::Sure
        };
        let mut ends = BTreeSet::from([if s.coop { s.at.min(t) } else { s.at }]);
        let dropped = by_grace(mode, s, t, &mut act, &mut ends);
        if unsure_start {
            act = act.join(Chance::Never);
            ends.insert(0);
        }
        if mode.supervise {
            // Every branch's own result comes back, whatever it is, unless
            // it was dropped before it had one.
            ok_possible &= dropped != Chance::Sure;
            ok_certain &= dropped == Chance::Never;
        } else {
            ok_possible &= unsure_start || (s.end == End::Ok && act != Chance::Never);
            ok_certain &= s.end == End::Ok && act == Chance::Sure;
        }
        expect.acts.push(Some(act));
        expect.ends.push(ends);
    }
    let panics = |chance: Chance| {
        srcs.iter()
            .zip(&expect.acts)
            .filter(move |(s, act)| s.end == End::Panic && **act == Some(chance))
            .map(|(s, _)| s)
    };
    let sure_first = panics(Chance::Sure).map(|s| s.at).min();
    let mut accept: BTreeSet<GroupResult> = panics(Chance::Maybe)
        .filter(|s| sure_first.is_none_or(|at| s.at <= at))
        .chain(panics(Chance::Sure).filter(|s| Some(s.at) == sure_first))
        .map(|s| GroupResult::Panicked(s.name.clone()))
        .collect();
    if sure_first.is_none() {
        if !mode.supervise {
            for s in srcs.iter().filter(|s| s.end == End::Err && s.at == t) {
                accept.insert(GroupResult::Failed {
                    task: s.name.clone(),
                    error: s.error.clone(),
                });
            }
        }
        for &(source, _) in sources.iter().filter(|s| s.1 == t) {
            if !ok_certain {
                accept.insert(GroupResult::Cancelled(source));
            }
            if ok_possible {
                accept.insert(GroupResult::Ok);
            }
        }
    }
    expect.accept = accept;
    expect
}

/// Whether `grace` drops `s` when the group is cancelled at `t` (semantic
/// 3): whatever ignores ctx and still runs `grace` after the cancellation,
/// except a `#[blocking]` body. Adjusts its act and end to match.
pub(crate) fn by_grace(
    mode: Rules,
    s: &Src,
    t: u64,
    act: &mut Chance,
    ends: &mut BTreeSet<u64>,
) -> Chance {
    match (mode.grace, s.coop, s.blocking) {
        (Some(g), false, false) => {
            let cut = t + g;
            match s.at.cmp(&cut) {
                std::cmp::Ordering::Greater => {
                    *act = Chance::Never;
                    *ends = BTreeSet::from([cut]);
                    Chance::Sure
                }
                // Its own timer and the grace timer fire at one instant.
                std::cmp::Ordering::Equal => {
                    *act = act.join(Chance::Never);
                    Chance::Maybe
                }
                std::cmp::Ordering::Less => Chance::Never,
            }
        }
        // With `grace = 0` the grace period ends at the cancelling instant,
        // maybe before a cooperative source has seen it.
        (Some(0), true, false) if s.at >= t => {
            *act = act.join(Chance::Never);
            Chance::Maybe
        }
        _ => Chance::Never,
    }
}

/// Every run the plan allows: a deadline or parent cancellation at the
/// instant the group would end anyway may or may not take effect.
pub(crate) fn oracle(
    srcs: &[Src],
    sources: &[(Source, u64)],
    blockers: bool,
    pipes: Option<u64>,
    pipes_ok: bool,
    mode: Rules,
) -> Expect {
    let natural_end = if blockers {
        u64::MAX
    } else {
        srcs.iter().map(|s| s.at).chain(pipes).max().unwrap_or(0)
    };
    let live: Vec<_> = sources
        .iter()
        .copied()
        .filter(|s| s.1 < natural_end)
        .collect();
    let tied: Vec<_> = sources
        .iter()
        .copied()
        .filter(|s| s.1 == natural_end)
        .collect();
    let mut all = Expect::default();
    for mask in 0..(1u32 << tied.len()) {
        let mut firing = live.clone();
        firing.extend(
            tied.iter()
                .enumerate()
                .filter(|(n, _)| mask & (1 << n) != 0)
                .map(|(_, s)| *s),
        );
        let one = scenario(srcs, &firing, blockers, pipes_ok, mode);
        all.first.extend(one.first);
        all.accept.extend(one.accept);
        if all.acts.is_empty() {
            all.acts = one.acts;
            all.ends = one.ends;
        } else {
            for (a, b) in all.acts.iter_mut().zip(one.acts) {
                *a = Some(a.unwrap_or(Chance::Sure).join(b.unwrap_or(Chance::Sure)));
            }
            for (a, b) in all.ends.iter_mut().zip(one.ends) {
                a.extend(b);
            }
        }
    }
    all
}
