//! The first property's checks: a run against the oracle.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering::SeqCst;

use proptest::test_runner::TestCaseError;

use crate::oracle::{
    Chance, Expect, GroupResult, Rules, Source, Src, kid_sources, oracle, sources_of, work_name,
};
use crate::plan::{Kind, Plan};
use crate::run::{CaseResult, Env, Fate, execute, run_case};
use crate::{STATS, UNIT};

/// Turns what `verify` found into the case's verdict.
pub(crate) fn verdict(run: &CaseResult, problems: &[String]) -> Result<(), TestCaseError> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(TestCaseError::fail(format!(
            "result {:?} at {}ms\n  - {}",
            run.result,
            run.returned,
            problems.join("\n  - ")
        )))
    }
}

pub(crate) fn check(plan: &Plan) -> Result<(), TestCaseError> {
    let (env, run) = execute(|env| run_case(plan, env));
    let mut problems = std::mem::take(&mut *env.problems.lock().unwrap());
    let tags = verify(plan, env, &run, &mut problems);
    STATS.record(&run.result, env, &tags);
    verdict(&run, &problems)
}

/// Checks `run` against the oracle; says what was special about it.
pub(crate) fn verify(
    plan: &Plan,
    env: &'static Env,
    run: &CaseResult,
    problems: &mut Vec<String>,
) -> Vec<&'static str> {
    let CaseResult {
        result,
        returned,
        tasks_left,
        futures_left,
    } = run;
    let srcs = sources_of(plan);
    let blockers = plan.work.iter().any(|k| matches!(k, Kind::Blocker { .. }));
    let pipes = env.pipes.lock().unwrap().clone();
    let pipes_end = pipes.iter().map(|p| p.1.div_ceil(UNIT)).max();
    let pipes_ok = pipes.iter().all(|p| p.0);
    let mut sources = Vec::new();
    if let Some(d) = plan.deadline {
        sources.push((Source::Deadline, d));
    }
    if let Some(p) = plan.parent {
        sources.push((Source::Parent, p));
    }
    let expect = oracle(
        &srcs,
        &sources,
        blockers,
        pipes_end,
        pipes_ok,
        Rules::default(),
    );

    if !expect.accept.contains(result) {
        problems.push(format!(
            "result {result:?}, expected one of {:?}",
            expect.accept
        ));
    }
    if *tasks_left != 0 {
        problems.push(format!(
            "{tasks_left} tokio task(s) still alive after the group returned"
        ));
    }
    if *futures_left != 0 {
        problems.push(format!("{futures_left} branch future(s) never dropped"));
    }
    check_returned(env, problems);

    check_sources(&srcs, &expect, env, problems);
    check_timing(plan, &expect, env, *returned, &pipes, problems);
    check_nested(plan, &expect, env, problems);

    let mut tags = Vec::new();
    if expect.accept.len() > 1 {
        tags.push("cases where a tie allowed several results");
    }
    let first_cancel = expect.first.iter().flatten().min();
    if let (GroupResult::Panicked(name), Some(first)) = (result, first_cancel) {
        if srcs.iter().any(|s| &s.name == name && s.at > *first) {
            tags.push("cases resuming a panic from after the cancellation");
        }
    }
    if *result == GroupResult::Ok && first_cancel.is_some() {
        tags.push("cases Ok despite a deadline or parent");
    }
    check_messages(
        env,
        expect.first.contains(&None) && expect.first.len() == 1,
        !plan.consumers.is_empty(),
        problems,
    );
    tags
}

/// Semantic 3: no branch future (in-task, spawned, `ctx.spawn`,
/// `#[blocking]`) is still alive when the group returns.
pub(crate) fn check_returned(env: &Env, problems: &mut Vec<String>) {
    let left = env.alive_at_return.load(SeqCst);
    if left != 0 {
        problems.push(format!(
            "{left} branch future(s) still alive when the group returned"
        ));
    }
}

/// Each source acted (or not) at its planned instant, and ended when the
/// oracle says.
pub(crate) fn check_sources(srcs: &[Src], expect: &Expect, env: &Env, problems: &mut Vec<String>) {
    let acted = env.acted.lock().unwrap();
    let ended = env.ended.lock().unwrap();
    for (s, (act, ends)) in srcs.iter().zip(expect.acts.iter().zip(&expect.ends)) {
        let did = acted.get(&s.name);
        match (act, did) {
            (Some(Chance::Sure), None) => problems.push(format!("{} never acted", s.name)),
            (Some(Chance::Never), Some(at)) => {
                problems.push(format!(
                    "{} acted at {at:?}ms after its group was cancelled",
                    s.name
                ));
            }
            _ => {}
        }
        if let Some(at) = did {
            if at != &[s.at * UNIT] {
                problems.push(format!(
                    "{} acted at {at:?}ms, planned {}ms",
                    s.name,
                    s.at * UNIT
                ));
            }
        }
        match ended.get(&s.name).map(Vec::as_slice) {
            None if matches!(act, Some(Chance::Sure)) => {
                problems.push(format!("{} never started", s.name));
            }
            None => {}
            Some([at]) if at % UNIT == 0 && ends.contains(&(at / UNIT)) => {}
            Some(at) => problems.push(format!(
                "{} ended at {at:?}ms, expected one of {:?} units",
                s.name, ends
            )),
        }
    }
}

/// Blockers end at the cancellation, pipes by then, and the group returns
/// when its last branch ends.
pub(crate) fn check_timing(
    plan: &Plan,
    expect: &Expect,
    env: &Env,
    returned: u64,
    pipes: &[(bool, u64)],
    problems: &mut Vec<String>,
) {
    let ended = env.ended.lock().unwrap();
    for (i, kind) in plan.work.iter().enumerate() {
        if matches!(kind, Kind::Blocker { .. }) {
            let name = work_name(i);
            let allowed: BTreeSet<u64> = expect.first.iter().flatten().map(|t| t * UNIT).collect();
            if let Some(at) = ended.get(&name) {
                if at.len() != 1 || !(allowed.contains(&at[0]) || at[0] == 0) {
                    problems.push(format!(
                        "{name} ended at {at:?}ms, not when cancelled ({allowed:?}ms)"
                    ));
                }
            }
        }
    }
    // The group returns when its last branch ends, not a tick later.
    let last = ended.values().flatten().copied().max().unwrap_or(0);
    if returned != last {
        problems.push(format!(
            "the group returned at {returned}ms, its last branch ended at {last}ms"
        ));
    }
    if let Some(Some(latest)) = expect
        .first
        .iter()
        .max()
        .filter(|_| !expect.first.contains(&None))
    {
        for (ok, at) in pipes {
            if *at > latest * UNIT {
                problems.push(format!(
                    "a pipe (ok: {ok}) ended at {at}ms, after the cancellation at {latest} units"
                ));
            }
        }
    }
}

/// Nested groups: each against its own oracle, its parent cancelled when
/// the outer group is.
pub(crate) fn check_nested(plan: &Plan, expect: &Expect, env: &Env, problems: &mut Vec<String>) {
    let nested = env.nested.lock().unwrap();
    for (i, seen) in nested.iter() {
        let Kind::Nested { kids, .. } = &plan.work[*i] else {
            unreachable!()
        };
        let kid_srcs = kid_sources(kids);
        let mut accept = BTreeSet::new();
        for first in &expect.first {
            let parent: Vec<_> = first.iter().map(|t| (Source::Parent, *t)).collect();
            accept.extend(oracle(&kid_srcs, &parent, false, None, true, Rules::default()).accept);
        }
        if !accept.contains(seen) {
            problems.push(format!(
                "nested work[{i}] gave {seen:?}, expected one of {accept:?}"
            ));
        }
    }
}

/// Every message settled exactly once; only accepted ones may be dropped
/// in a buffer, and only once receiving stopped.
pub(crate) fn check_messages(
    env: &'static Env,
    never_cancelled: bool,
    consumers: bool,
    problems: &mut Vec<String>,
) {
    let made = env.next_message.load(SeqCst);
    let fates = env.fates.lock().unwrap();
    let sent_ok = env.sent_ok.lock().unwrap();
    for id in 0..made {
        let accepted = sent_ok.contains(&id);
        match fates.get(&id).map(Vec::as_slice) {
            None | Some([]) => problems.push(format!("message {id} vanished")),
            Some([Fate::Received]) if accepted => {}
            Some([Fate::Returned]) if !accepted => {}
            Some([Fate::Dropped]) if accepted && !(never_cancelled && consumers) => {}
            Some([Fate::Received]) => {
                problems.push(format!("message {id} received, but its send failed"));
            }
            Some([Fate::Returned]) => {
                problems.push(format!("message {id} handed back, but its send succeeded"));
            }
            Some([Fate::Dropped]) if !accepted => problems.push(format!(
                "message {id} dropped although its send failed: it must be handed back"
            )),
            Some([Fate::Dropped]) => problems.push(format!(
                "message {id} dropped in a buffer while consumers ran and nothing cancelled"
            )),
            Some(more) => problems.push(format!("message {id} settled {} times", more.len())),
        }
    }
}
