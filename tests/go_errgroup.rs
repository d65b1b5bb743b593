//! golang.org/x/sync/errgroup's own test suite (`errgroup_test.go`), ported to the dynamic `Group` and, where it can say the same thing, to `errgroup!`.
//!
//! Go's `Wait` can be called after every `Go`; ours consumes the group, so
//! "wait after each `Go`" becomes one group per prefix of a case, and the
//! order in which Go's tasks finish is made explicit with `Turns`.

use std::convert::Infallible;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::Duration;

use errgroup::{Cause, Ctx, Error, Group, errgroup};
use tokio::sync::Semaphore;
use tokio::task::yield_now;

mod common;
use common::{Counter, FAILSAFE, Gauge, failed, leak};

const ERR1: &str = "errgroup_test: 1";
const ERR2: &str = "errgroup_test: 2";
const DOOM: &str = "group_test: doomed";

/// Lets task `i` finish only after tasks `0..i` have, as Go's test does by
/// calling `Wait` between two `Go`s.
#[derive(Default)]
struct Turns(Counter);

impl Turns {
    /// Task `i` of a case: waits for its turn, then returns `err`. An error
    /// that follows an earlier one waits for the group's cancellation, so it
    /// surely comes after the first error is recorded.
    async fn take(
        &self,
        i: usize,
        err: Option<&'static str>,
        ctx: &Ctx,
        after_error: bool,
    ) -> Result<(), &'static str> {
        self.0.reached(i).await;
        if err.is_some() && after_error {
            ctx.cancelled().await;
        }
        self.0.bump();
        match err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The `errs` of a case as one dynamic group, task `i` named `go{i}`.
async fn run_in_turns(errs: &[Option<&'static str>]) -> Result<(), Error<&'static str>> {
    let turns = leak(Turns::default());
    let mut group = Group::new();
    let mut seen_error = false;
    for (i, &err) in errs.iter().enumerate() {
        let after_error = seen_error;
        seen_error |= err.is_some();
        group.spawn(format!("go{i}"), move |ctx| async move {
            turns.take(i, err, &ctx, after_error).await
        });
    }
    tokio::time::timeout(FAILSAFE, group.wait())
        .await
        .expect("the group never returned")
}

/// The first error of `errs`, with the name of its task.
fn first_error(errs: &[Option<&'static str>]) -> Option<(String, &'static str)> {
    errs.iter()
        .enumerate()
        .find_map(|(i, err)| err.map(|e| (format!("go{i}"), e)))
}

fn assert_outcome(result: Result<(), Error<&'static str>>, want: Option<(String, &'static str)>) {
    match (result, want) {
        (Ok(()), None) => {}
        (Err(err), Some((task, error))) => {
            assert_eq!(err.task().unwrap(), task.as_str());
            assert_eq!(err.into_inner(), Some(error));
        }
        (result, want) => panic!("wait() = {result:?}; want {want:?}"),
    }
}

// TestZeroGroup

#[tokio::test]
async fn zero_group_wait_returns_ok() {
    let group = Group::<&str>::new();
    let ctx = group.ctx();
    assert!(group.wait().await.is_ok());
    assert_eq!(ctx.cause(), Some(Cause::Finished));
}

#[tokio::test(start_paused = true)]
async fn zero_group_returns_the_first_error_after_every_go_on_the_dynamic_group() {
    let cases: [&[Option<&'static str>]; 5] = [
        &[],
        &[None],
        &[Some(ERR1)],
        &[Some(ERR1), None],
        &[Some(ERR1), None, Some(ERR2)],
    ];
    for errs in cases {
        for i in 0..errs.len() {
            let prefix = &errs[..=i];
            assert_outcome(run_in_turns(prefix).await, first_error(prefix));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn zero_group_returns_the_first_error_on_the_macro() {
    let ok = errgroup! { go0 => Ok::<_, &str>(()) };
    assert!(ok.is_ok());

    let err = errgroup! { go0 => Err::<(), _>(ERR1) }.unwrap_err();
    assert_outcome(Err(err), Some(("go0".into(), ERR1)));

    let err = errgroup! {
        go0 => Err::<(), _>(ERR1),
        go1 => Ok(()),
    }
    .unwrap_err();
    assert_outcome(Err(err), Some(("go0".into(), ERR1)));

    // err2 comes after err1 has cancelled the group: it is ignored.
    let group = async {
        errgroup! {
            go0 => Err::<(), _>(ERR1),
            go1 => Ok(()),
            go2 => { ctx.cancelled().await; Err::<(), _>(ERR2) },
        }
    };
    let err = tokio::time::timeout(FAILSAFE, group)
        .await
        .expect("the group never returned")
        .unwrap_err();
    assert_outcome(Err(err), Some(("go0".into(), ERR1)));
}

// TestWithContext and TestCancelCause

/// The cases of Go's `TestWithContext` and `TestCancelCause`.
const WITH_CONTEXT: [(&[Option<&str>], Option<&str>); 4] = [
    (&[], None),
    (&[None], None),
    (&[Some(DOOM)], Some(DOOM)),
    (&[Some(DOOM), None], Some(DOOM)),
];

#[tokio::test]
async fn with_context_cancels_the_ctx_after_wait_in_every_case_on_the_dynamic_group() {
    for (errs, want) in WITH_CONTEXT {
        let mut group = Group::new();
        let ctx = group.ctx();
        let from_task = leak(OnceLock::new());
        for (i, &err) in errs.iter().enumerate() {
            group.spawn(format!("go{i}"), move |ctx| {
                from_task.get_or_init(|| ctx.clone());
                async move {
                    match err {
                        Some(e) => Err(e),
                        None => Ok(()),
                    }
                }
            });
        }
        let result = group.wait().await;
        assert_eq!(
            result.err().and_then(Error::into_inner),
            want,
            "case {errs:?}"
        );
        assert!(ctx.is_cancelled(), "ctx.Done() was not closed for {errs:?}");
        if let Some(task_ctx) = from_task.get() {
            assert!(task_ctx.is_cancelled(), "a task's ctx outlived the group");
        }
    }
}

#[tokio::test]
async fn cancel_cause_names_the_failed_task_on_the_dynamic_group() {
    for (errs, want) in WITH_CONTEXT {
        let mut group = Group::new();
        let ctx = group.ctx();
        for (i, &err) in errs.iter().enumerate() {
            let started = group.try_spawn(format!("go{i}"), move |_| async move {
                match err {
                    Some(e) => Err(e),
                    None => Ok(()),
                }
            });
            assert!(started, "try_spawn without a limit always starts");
        }
        let result = group.wait().await;
        assert_eq!(
            result.err().and_then(Error::into_inner),
            want,
            "case {errs:?}"
        );
        // Go: `context.Canceled` without an error, the error itself with one.
        let cause = if want.is_some() {
            failed("go0")
        } else {
            Cause::Finished
        };
        assert_eq!(ctx.cause(), Some(cause), "case {errs:?}");
    }
}

#[tokio::test]
async fn with_context_and_cancel_cause_on_the_macro() {
    // [nil]
    let stash = OnceLock::new();
    let result = errgroup! {
        go0 => { stash.get_or_init(|| ctx.clone()); Ok::<_, &str>(()) },
    };
    assert!(result.is_ok());
    assert_eq!(stash.get().unwrap().cause(), Some(Cause::Finished));

    // [err]
    let stash = OnceLock::new();
    let result = errgroup! {
        go0 => { stash.get_or_init(|| ctx.clone()); Err::<(), _>(DOOM) },
    };
    assert_eq!(result.unwrap_err().into_inner(), Some(DOOM));
    assert_eq!(stash.get().unwrap().cause(), Some(failed("go0")));

    // [err, nil]
    let (first, second) = (OnceLock::new(), OnceLock::new());
    let result = errgroup! {
        go0 => { first.get_or_init(|| ctx.clone()); Err::<(), _>(DOOM) },
        go1 => { second.get_or_init(|| ctx.clone()); Ok(()) },
    };
    assert_eq!(result.unwrap_err().into_inner(), Some(DOOM));
    for ctx in [first.get().unwrap(), second.get().unwrap()] {
        assert!(ctx.is_cancelled());
        assert_eq!(ctx.cause(), Some(failed("go0")));
    }
}

// TestGoLimit

const LIMIT: usize = 10;

impl Gauge {
    /// Go's task: fails if it sees more than `LIMIT` active tasks, and
    /// gives the others a chance to run while active.
    async fn work(&self, pause: Option<Duration>) -> Result<(), String> {
        let n = self.active.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(n, SeqCst);
        self.entered.fetch_add(1, SeqCst);
        if n > LIMIT {
            return Err(format!("saw {n} active tasks; want <= {LIMIT}"));
        }
        match pause {
            Some(d) => tokio::time::sleep(d).await,
            None => {
                for _ in 0..3 {
                    yield_now().await;
                }
            }
        }
        self.active.fetch_sub(1, SeqCst);
        Ok(())
    }
}

async fn go_limit(gauge: &'static Gauge, pause: Option<Duration>) {
    let mut group = Group::new().limit(LIMIT);
    for i in 0..=1 << 10 {
        group.spawn(format!("go{i}"), move |_| gauge.work(pause));
    }
    if let Err(e) = group.wait().await {
        panic!("{e}");
    }
    assert_eq!(gauge.entered.load(SeqCst), 1025);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_limit_never_exceeds_ten_active_tasks_on_a_multi_thread_runtime() {
    let gauge = leak(Gauge::default());
    go_limit(gauge, None).await;
    assert!(gauge.peak.load(SeqCst) <= LIMIT);
}

#[tokio::test(start_paused = true)]
async fn go_limit_runs_exactly_ten_at_once_on_the_paused_clock() {
    // Every task sleeps while active, and time moves only once all are
    // asleep: ten at a time, exactly, if the limit lets ten in.
    let gauge = leak(Gauge::default());
    go_limit(gauge, Some(Duration::from_millis(1))).await;
    assert_eq!(gauge.peak.load(SeqCst), LIMIT);
}

/// Go's loop, unrolled: one branch per name, all under `limit = 10`.
macro_rules! limited_group {
    ($gauge:expr; $($name:ident)*) => {
        errgroup! {
            limit = LIMIT;
            $($name => $gauge.work(None).await,)*
        }
    };
}

#[tokio::test]
async fn go_limit_on_the_macro() {
    let gauge = Gauge::default();
    let result = limited_group!(gauge; g0 g1 g2 g3 g4 g5 g6 g7 g8 g9 g10 g11 g12 g13 g14 g15);
    if let Err(e) = result {
        panic!("{e}");
    }
    assert_eq!(gauge.entered.load(SeqCst), 16);
    assert_eq!(gauge.peak.load(SeqCst), LIMIT);
}

// TestTryGo

#[tokio::test]
async fn try_spawn_refuses_beyond_the_limit_and_succeeds_again_once_work_drains() {
    const N: usize = 42;
    // Go's unbuffered `ch`: each task blocks until the test receives from it.
    let ch = leak(Semaphore::new(0));
    let done = leak(Counter::default());
    let task = move |_: Ctx| async move {
        ch.acquire().await.unwrap().forget();
        done.bump();
        Ok::<_, Infallible>(())
    };

    let mut group = Group::new().limit(N);
    for i in 0..N {
        assert!(
            group.try_spawn(format!("go{i}"), task),
            "TryGo should succeed at call {i}"
        );
    }
    assert!(
        !group.try_spawn("extra", task),
        "TryGo beyond the limit must fail"
    );
    ch.add_permits(N);
    // A task gives its slot back in the same poll as its last step; on this
    // single thread, every task counted here has given it back.
    done.reached(N).await;
    assert!(
        group.try_spawn("after", task),
        "TryGo should succeed once the tasks drained"
    );
    ch.add_permits(1);
    group.wait().await.unwrap();

    // Switch limit (a new group: the limit is set before the first spawn).
    let mut group = Group::new().limit(1);
    assert!(group.try_spawn("one", task));
    assert!(!group.try_spawn("two", task));
    ch.add_permits(1);
    group.wait().await.unwrap();
}

#[test]
#[should_panic(expected = "`limit` must be at least 1")]
fn a_zero_limit_is_refused_where_go_would_block_every_call() {
    // Go's `SetLimit(0)` makes every `TryGo` fail; here it is a mistake.
    let _group = Group::<()>::new().limit(0);
}

// Go's `Go` always runs its function; `Wait` returns after all of them.

#[tokio::test]
async fn every_task_spawned_before_the_failure_still_runs() {
    let ran = leak(AtomicBool::new(false));
    let mut group = Group::new();
    group.spawn("fails", |_| async { Err("boom") });
    // On this single thread, `fails` runs first: `late` was spawned before
    // the failure but is polled after it.
    group.spawn("late", move |_| async move {
        ran.store(true, SeqCst);
        Ok(())
    });
    assert_eq!(group.wait().await.unwrap_err().task().unwrap(), "fails");
    assert!(ran.load(SeqCst));
}

/// As Go's `g.Go`, which starts `f` whatever the context: the late task
/// runs, and sees the cancellation.
#[tokio::test]
async fn a_task_spawned_after_the_cancellation_still_runs_and_sees_it() {
    let ran = leak(AtomicBool::new(false));
    let mut group = Group::new();
    let ctx = group.ctx();
    group.spawn("fails", |_| async { Err("boom") });
    ctx.cancelled().await;
    group.spawn("late", move |ctx| async move {
        ran.store(ctx.is_cancelled(), SeqCst);
        Ok(())
    });
    assert_eq!(group.wait().await.unwrap_err().task().unwrap(), "fails");
    assert!(ran.load(SeqCst));
}

// TestPanic (x/sync v0.15+: a panic in `Go` propagates through `Wait`)

#[derive(Debug, PartialEq)]
struct PanicValue(&'static str);

#[tokio::test]
async fn a_panic_propagates_through_wait_with_the_original_value() {
    let joined = tokio::spawn(async {
        let mut group = Group::<()>::new();
        group.spawn("p", |_| async {
            if std::hint::black_box(true) {
                std::panic::panic_any(PanicValue("dynamic"));
            }
            Ok(())
        });
        group.wait().await
    })
    .await;
    let payload = joined.unwrap_err().into_panic();
    assert_eq!(payload.downcast_ref(), Some(&PanicValue("dynamic")));

    let joined = tokio::spawn(async {
        errgroup! {
            p => {
                if std::hint::black_box(true) {
                    std::panic::panic_any(PanicValue("macro"));
                }
                Ok::<_, ()>(())
            },
        }
    })
    .await;
    let payload = joined.unwrap_err().into_panic();
    assert_eq!(payload.downcast_ref(), Some(&PanicValue("macro")));
}

// ExampleGroup_parallel

async fn search(kind: &str, query: &str) -> Result<String, String> {
    yield_now().await;
    Ok(format!("{kind} result for {query:?}"))
}

#[tokio::test]
async fn example_parallel_search_gives_every_result_in_order() {
    let query = "golang";
    let results = errgroup! {
        web => search("web", query).await,
        image => search("image", query).await,
        video => search("video", query).await,
    }
    .unwrap();
    assert_eq!(
        results,
        (
            r#"web result for "golang""#.to_owned(),
            r#"image result for "golang""#.to_owned(),
            r#"video result for "golang""#.to_owned(),
        )
    );
}
