//! Running a case: what each branch does, the three paths, and what the
//! run records.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::panic::panic_any;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use errgroup::{Cause, Ctx, Error, Group, TaskName, errgroup};
use tokio::time::Instant;

use crate::common::{Gauge, catch_panic, leak};
use crate::oracle::{
    Fail, GroupResult, Payload, Source, kid_name, outcome, outcome_of, sub_name, work_name,
};
use crate::plan::{Behaviour, Consumer, End, Kind, Path, Plan, Producer};
use crate::{HANG, NO_DEADLINE, UNIT};

// What the run records.

pub(crate) enum Fate {
    Received,
    Returned,
    Dropped,
}

/// Everything one case observes; leaked so that `'static` tasks can use it.
pub(crate) struct Env {
    pub(crate) start: Instant,
    /// Source name -> instant (ms) of its planned end.
    pub(crate) acted: Mutex<BTreeMap<String, Vec<u64>>>,
    /// Future name -> instant (ms) it was dropped.
    pub(crate) ended: Mutex<BTreeMap<String, Vec<u64>>>,
    pub(crate) alive: AtomicUsize,
    /// `alive` when the case's group returned.
    pub(crate) alive_at_return: AtomicUsize,
    /// Timeline name -> instants (ms) it started (the second property).
    pub(crate) started: Mutex<BTreeMap<String, Vec<u64>>>,
    /// Bodies running at once, in real time (the second property).
    pub(crate) gauge: Gauge,
    /// In-task and spawned items pulled and not yet dropped: what a
    /// holdout waits for.
    pub(crate) pending: AtomicUsize,
    /// Each item's own result under `on_error = continue`.
    pub(crate) supervised: Mutex<BTreeMap<String, Result<(), Fail>>>,
    /// Nested group index -> its own result.
    pub(crate) nested: Mutex<BTreeMap<usize, GroupResult>>,
    /// Producers' and consumers' ends: (returned `Ok`, instant in ms).
    pub(crate) pipes: Mutex<Vec<(bool, u64)>>,
    pub(crate) next_message: AtomicU32,
    pub(crate) sent_ok: Mutex<BTreeSet<u32>>,
    pub(crate) fates: Mutex<BTreeMap<u32, Vec<Fate>>>,
    pub(crate) problems: Mutex<Vec<String>>,
    /// The instant (units) at which the case's group shuts itself down on
    /// purpose through its `shutdown_on` signal; `u64::MAX`: never.
    pub(crate) stop_at: AtomicU64,
}

impl Env {
    pub(crate) fn new() -> &'static Env {
        leak(Env {
            start: Instant::now(),
            acted: Mutex::default(),
            ended: Mutex::default(),
            alive: AtomicUsize::new(0),
            alive_at_return: AtomicUsize::new(0),
            started: Mutex::default(),
            gauge: Gauge::default(),
            pending: AtomicUsize::new(0),
            supervised: Mutex::default(),
            nested: Mutex::default(),
            pipes: Mutex::default(),
            next_message: AtomicU32::new(0),
            sent_ok: Mutex::default(),
            fates: Mutex::default(),
            problems: Mutex::default(),
            stop_at: AtomicU64::new(u64::MAX),
        })
    }

    /// The case's group's `shutdown_on` signal: completes at `stop_at`.
    pub(crate) fn stop_signal(&'static self) -> impl Future<Output = ()> + Send + 'static {
        let at = self.stop_at.load(SeqCst);
        async move {
            if at == u64::MAX {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep_until(self.start + units(at)).await;
        }
    }

    pub(crate) fn now(&self) -> u64 {
        u64::try_from((Instant::now() - self.start).as_millis()).unwrap()
    }

    pub(crate) fn problem(&self, what: String) {
        self.problems.lock().unwrap().push(what);
    }

    /// `name` performs its planned end now.
    pub(crate) fn act(&self, name: &str) {
        let now = self.now();
        let mut acted = self.acted.lock().unwrap();
        acted.entry(name.to_owned()).or_default().push(now);
    }

    pub(crate) fn message(&'static self) -> Message {
        Message {
            id: self.next_message.fetch_add(1, SeqCst),
            env: self,
            settled: false,
        }
    }
}

/// Records when the future holding it ends (returns, panics or is dropped).
pub(crate) struct Alive {
    pub(crate) env: &'static Env,
    pub(crate) name: String,
}

impl Alive {
    pub(crate) fn new(env: &'static Env, name: String) -> Self {
        env.alive.fetch_add(1, SeqCst);
        Alive { env, name }
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        let now = self.env.now();
        let mut ended = self.env.ended.lock().unwrap();
        ended
            .entry(std::mem::take(&mut self.name))
            .or_default()
            .push(now);
        self.env.alive.fetch_sub(1, SeqCst);
    }
}

/// A message that records its fate: received, handed back, or dropped
/// unsettled (in a channel's buffer).
pub(crate) struct Message {
    pub(crate) id: u32,
    pub(crate) env: &'static Env,
    pub(crate) settled: bool,
}

impl Message {
    pub(crate) fn settle(mut self, fate: Fate) {
        self.settled = true;
        self.record(fate);
    }

    pub(crate) fn record(&self, fate: Fate) {
        let mut fates = self.env.fates.lock().unwrap();
        fates.entry(self.id).or_default().push(fate);
    }
}

impl Drop for Message {
    fn drop(&mut self) {
        if !self.settled {
            self.record(Fate::Dropped);
        }
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Message({})", self.id)
    }
}

// The behaviours.

pub(crate) fn units(n: u64) -> Duration {
    Duration::from_millis(n * UNIT)
}

pub(crate) async fn act(
    ctx: &Ctx,
    env: &'static Env,
    name: String,
    error: Fail,
    leaf: Behaviour,
) -> Result<(), Fail> {
    let _alive = Alive::new(env, name.clone());
    if leaf.coop {
        ctx.sleep(units(leaf.at)).await?;
    } else {
        tokio::time::sleep(units(leaf.at)).await;
    }
    env.act(&name);
    match leaf.end {
        End::Ok => Ok(()),
        End::Err => Err(error),
        End::Panic => panic_any(Payload(name)),
    }
}

pub(crate) async fn run_work(
    ctx: Ctx,
    i: usize,
    kind: Kind,
    env: &'static Env,
) -> Result<(), Fail> {
    let name = work_name(i);
    match kind {
        Kind::Plain(leaf) => act(&ctx, env, name.clone(), Fail::Leaf(name), leaf).await,
        Kind::Spawner { leaf, subs } => {
            for (j, sub) in subs.into_iter().enumerate() {
                let sub_ctx = ctx.clone();
                let sub_name = sub_name(i, j);
                // Refused once the group is cancelled: the oracle allows
                // for it at instant 0, the only time it can happen here.
                let _ = ctx.spawn(TaskName::new(sub_name.clone()), async move {
                    act(&sub_ctx, env, sub_name.clone(), Fail::Leaf(sub_name), sub).await
                });
            }
            act(&ctx, env, name.clone(), Fail::Leaf(name), leaf).await
        }
        Kind::Nested { via_macro, kids } => {
            let _alive = Alive::new(env, name);
            let result = if via_macro {
                nested_macro(i, kids, env).await
            } else {
                nested_group(i, kids, env).await
            };
            let seen = outcome_of(&result);
            if !matches!(result, Err(Error::Cancelled(_))) {
                env.act(&work_name(i));
            }
            env.nested.lock().unwrap().insert(i, seen);
            match result {
                Ok(()) => Ok(()),
                Err(Error::Failed { .. }) => Err(Fail::Nested(i)),
                // `Error::Cancelled`, or a variant `Error` (`#[non_exhaustive]`)
                // may gain: `outcome_of` recorded that one as unexpected,
                // which fails the schedule.
                Err(_) => Err(Fail::Cancelled),
            }
        }
        Kind::Blocker { on_send } => {
            let _alive = Alive::new(env, name.clone());
            block(&ctx, env, &name, on_send).await;
            Err(Fail::Cancelled)
        }
    }
}

/// Blocks on a group channel until the group is cancelled.
pub(crate) async fn block(ctx: &Ctx, env: &'static Env, name: &str, on_send: bool) {
    let (tx, rx) = ctx.channel::<Message>(1);
    if on_send {
        let first = env.message();
        let id = first.id;
        match tx.try_send(first) {
            Ok(()) => {
                env.sent_ok.lock().unwrap().insert(id);
            }
            Err(e) => e.into_inner().settle(Fate::Returned),
        }
        let second = env.message();
        match tx.send(second).await {
            Ok(()) => env.problem(format!("{name}: a send on a full channel went through")),
            Err(e) => {
                if e.cancelled().is_none() {
                    env.problem(format!("{name}: send failed without a cancellation: {e}"));
                }
                e.into_inner().settle(Fate::Returned);
            }
        }
    } else if let Ok(got) = rx.recv().await {
        env.problem(format!("{name}: recv on an empty channel returned {got:?}"));
    }
    // Both ends live until here: the one message on a full channel is
    // dropped with its buffer.
    drop((tx, rx));
}

pub(crate) async fn nested_macro(
    i: usize,
    kids: Vec<Behaviour>,
    env: &'static Env,
) -> Result<(), Error<Fail>> {
    errgroup! {
        type Error = Fail;
        kids => for (k, kid) in kids.into_iter().enumerate() {
            act(ctx, env, format!("work[{i}]/{}", kid_name(k)), Fail::Leaf(kid_name(k)), kid).await
        },
    }
    .map(|_| ())
}

pub(crate) async fn nested_group(
    i: usize,
    kids: Vec<Behaviour>,
    env: &'static Env,
) -> Result<(), Error<Fail>> {
    // Inside a branch: the ambient group is its parent, with no `with_parent`.
    let mut group = Group::<Fail>::new();
    for (k, kid) in kids.into_iter().enumerate() {
        group.spawn(TaskName::indexed("kids", k), move |ctx| async move {
            act(
                &ctx,
                env,
                format!("work[{i}]/{}", kid_name(k)),
                Fail::Leaf(kid_name(k)),
                kid,
            )
            .await
        });
    }
    group.wait().await
}

pub(crate) async fn produce(
    ctx: Ctx,
    tx: errgroup::Sender<Message>,
    p: Producer,
    k: usize,
    env: &'static Env,
) -> Result<(), Fail> {
    let _alive = Alive::new(env, format!("produce[{k}]"));
    let result = async {
        for _ in 0..p.count {
            if p.pace > 0 {
                ctx.sleep(units(p.pace)).await?;
            }
            let token = env.message();
            let id = token.id;
            match tx.send(token).await {
                Ok(()) => {
                    env.sent_ok.lock().unwrap().insert(id);
                }
                Err(e) => {
                    let cancelled = e.cancelled().is_some();
                    e.into_inner().settle(Fate::Returned);
                    // Without a cancellation, only "no receiver left": stop.
                    return if cancelled {
                        Err(Fail::Cancelled)
                    } else {
                        Ok(())
                    };
                }
            }
        }
        Ok(())
    }
    .await;
    env.pipes.lock().unwrap().push((result.is_ok(), env.now()));
    result
}

pub(crate) async fn consume(
    ctx: Ctx,
    rx: errgroup::Receiver<Message>,
    c: Consumer,
    k: usize,
    env: &'static Env,
) -> Result<(), Fail> {
    let _alive = Alive::new(env, format!("consume[{k}]"));
    let result = async {
        loop {
            if c.pace > 0 {
                ctx.sleep(units(c.pace)).await?;
            }
            match rx.recv().await? {
                Some(token) => token.settle(Fate::Received),
                None => return Ok(()),
            }
        }
    }
    .await;
    env.pipes.lock().unwrap().push((result.is_ok(), env.now()));
    result
}

// The three paths.

pub(crate) async fn run_group(plan: &Plan, env: &'static Env) -> Result<(), Error<Fail>> {
    match plan.path {
        Path::Group => dynamic(plan, env).await,
        Path::MacroInTask => macro_in_task(plan, env).await,
        Path::MacroSpawn => macro_spawn(plan, env).await,
    }
}

pub(crate) async fn dynamic(plan: &Plan, env: &'static Env) -> Result<(), Error<Fail>> {
    let mut group = Group::<Fail>::new().shutdown_on(env.stop_signal());
    if let Some(d) = plan.deadline {
        group = group.timeout(units(d));
    }
    let (tx, rx) = group.ctx().channel::<Message>(plan.capacity);
    for (i, kind) in plan.work.iter().cloned().enumerate() {
        group.spawn(TaskName::indexed("work", i), move |ctx| {
            run_work(ctx, i, kind, env)
        });
    }
    for (k, p) in plan.producers.iter().cloned().enumerate() {
        let tx = tx.clone();
        group.spawn(TaskName::indexed("produce", k), move |ctx| {
            produce(ctx, tx, p, k, env)
        });
    }
    for (k, c) in plan.consumers.iter().cloned().enumerate() {
        let rx = rx.clone();
        group.spawn(TaskName::indexed("consume", k), move |ctx| {
            consume(ctx, rx, c, k, env)
        });
    }
    drop((tx, rx));
    group.wait().await
}

pub(crate) async fn macro_in_task(plan: &Plan, env: &'static Env) -> Result<(), Error<Fail>> {
    let timeout = units(plan.deadline.unwrap_or(NO_DEADLINE));
    errgroup! {
        timeout = timeout;
        shutdown_on = env.stop_signal();
        type Error = Fail;
        let (tx, rx) = channel::<Message>(plan.capacity);
        work => for (i, kind) in plan.work.iter().cloned().enumerate() {
            run_work(ctx.clone(), i, kind, env).await
        },
        produce => for (k, p) in plan.producers.iter().cloned().enumerate() {
            produce(ctx.clone(), tx, p, k, env).await
        },
        consume => for (k, c) in plan.consumers.iter().cloned().enumerate() {
            consume(ctx.clone(), rx, c, k, env).await
        },
    }
    .map(|_| ())
}

pub(crate) async fn macro_spawn(plan: &Plan, env: &'static Env) -> Result<(), Error<Fail>> {
    let timeout = units(plan.deadline.unwrap_or(NO_DEADLINE));
    errgroup! {
        timeout = timeout;
        shutdown_on = env.stop_signal();
        type Error = Fail;
        let (tx, rx) = channel::<Message>(plan.capacity);
        #[spawn] work => for (i, kind) in plan.work.clone().into_iter().enumerate() {
            run_work(ctx.clone(), i, kind, env).await
        },
        #[spawn] produce => for (k, p) in plan.producers.clone().into_iter().enumerate() {
            produce(ctx.clone(), tx, p, k, env).await
        },
        consume => for (k, c) in plan.consumers.iter().cloned().enumerate() {
            consume(ctx.clone(), rx, c, k, env).await
        },
    }
    .map(|_| ())
}

/// Runs the plan's group, under a parent cancelled at `plan.parent` if
/// any: its result (or panic) and the instant (ms) it returned.
pub(crate) async fn run_case(plan: &Plan, env: &'static Env) -> (GroupResult, u64) {
    under_parent(plan.parent, env, || run_group(plan, env)).await
}

/// Runs `group()`, under a parent cancelled at `parent` if any. At an odd
/// instant the parent is shut down on purpose (`ctx.shutdown()`), at an
/// even one its `killer` fails; at one that is 3 modulo 4 there is no
/// parent, and the case's group shuts itself down through its own
/// `shutdown_on` signal. The case's group sees the same cancellation at the
/// same instant each way, so the oracle is the same; only whether the
/// result is a shutdown, and whose, differs, and is checked here.
pub(crate) async fn under_parent<F, Fut>(
    parent: Option<u64>,
    env: &'static Env,
    group: F,
) -> (GroupResult, u64)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), Error<Fail>>>,
{
    let Some(parent) = parent else {
        let result = catch_panic(group()).await;
        return returned(env, result);
    };
    if parent % 4 == 3 {
        env.stop_at.store(parent, SeqCst);
        let result = catch_panic(group()).await;
        let cause = match &result {
            Ok(Err(Error::Cancelled(c))) => Some(c.cause().clone()),
            _ => None,
        };
        let mut outcome = returned(env, result);
        match cause {
            // The oracle's prediction for a cancellation from outside at
            // this instant is the parent's.
            Some(Cause::Shutdown { by }) if by == "shutdown_on" => {
                outcome.0 = GroupResult::Cancelled(Source::Parent);
            }
            Some(cause @ (Cause::Shutdown { .. } | Cause::Parent(_))) => {
                outcome.0 = GroupResult::Unexpected(format!(
                    "a group shut down by its own signal gave {cause:?}"
                ));
            }
            _ => {}
        }
        return outcome;
    }
    let shutdown = parent % 2 == 1;
    let seen = Mutex::new(None);
    // The parent group: `killer` acts at `parent`; the case's group is
    // created inside `inner`, so it is the child of it without saying so.
    let _ = errgroup! {
        type Error = Fail;
        killer => {
            ctx.sleep(units(parent)).await?;
            if shutdown {
                ctx.shutdown();
                Ok(())
            } else {
                Err::<(), _>(Fail::Leaf("killer".into()))
            }
        },
        inner => {
            let result = catch_panic(group()).await;
            let wrong = match &result {
                // A shutdown is a clean stop unless grace expired or a
                // body failed of its own during it.
                Ok(Err(e)) if matches!(e.cause(), Cause::Parent(_))
                    && (e.cause().is_shutdown() != shutdown
                        || e.is_shutdown()
                            != (shutdown && !e.is_grace_expired() && e.suppressed().is_empty())) => {
                    Some(format!("a parent {} gave {e:?}", if shutdown { "shut down" } else { "failing" }))
                }
                _ => None,
            };
            let mut outcome = returned(env, result);
            if let Some(wrong) = wrong {
                outcome.0 = GroupResult::Unexpected(wrong);
            }
            *seen.lock().unwrap() = Some(outcome);
            // Ends the parent, and so the killer, once the case is done.
            Err::<(), _>(Fail::Leaf("done".into()))
        },
    };
    seen.into_inner().unwrap().unwrap_or((
        GroupResult::Unexpected("the case never ran".into()),
        env.now(),
    ))
}

/// The group has just returned: counts what it left running (semantic 3:
/// nothing, also after `grace`) and reads the clock.
pub(crate) fn returned(
    env: &Env,
    result: Result<Result<(), Error<Fail>>, Box<dyn std::any::Any + Send>>,
) -> (GroupResult, u64) {
    env.alive_at_return.store(env.alive.load(SeqCst), SeqCst);
    (outcome(result), env.now())
}

pub(crate) fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

// The run.

/// What one run gave, observed before its runtime is dropped.
pub(crate) struct CaseResult {
    pub(crate) result: GroupResult,
    /// When the case's group returned (ms of virtual time).
    pub(crate) returned: u64,
    /// Tokio tasks alive beyond the baseline once it returned.
    pub(crate) tasks_left: usize,
    /// Branch futures not dropped once it returned.
    pub(crate) futures_left: usize,
}

/// Runs one case on a fresh current-thread runtime with the clock paused.
pub(crate) fn execute<F, Fut>(case: F) -> (&'static Env, CaseResult)
where
    F: FnOnce(&'static Env) -> Fut,
    Fut: Future<Output = (GroupResult, u64)>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let (env, run) = rt.block_on(async {
        // Virtual time 0 of this case.
        let env = Env::new();
        let baseline = alive_tasks();
        let (result, returned) = tokio::time::timeout(HANG, case(env))
            .await
            .unwrap_or((GroupResult::Unexpected("hung".into()), env.now()));
        // Aborted tasks are reaped within a few turns; a task still
        // running would stay (no time passes while this loop spins).
        for _ in 0..1_000 {
            if alive_tasks() == baseline {
                break;
            }
            tokio::task::yield_now().await;
        }
        let run = CaseResult {
            result,
            returned,
            tasks_left: alive_tasks() - baseline,
            futures_left: env.alive.load(SeqCst),
        };
        (env, run)
    });
    drop(rt);
    (env, run)
}
