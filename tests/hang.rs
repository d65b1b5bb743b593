//! A hang that names itself, on tokio's paused clock: a
//! group whose deadline passes or whose grace expires says which branches,
//! fan-out items and tasks were still running and for how long
//! ([`StillRunning`] on the `Cancelled` it returns), and a running group can
//! be asked the same ([`Watch`], `Group::running`).
//!
//! On the paused clock a sleep is an exact step, so every duration is
//! asserted exactly; a report naming one task too many or too few, or
//! timing it from the wrong instant, fails.

use std::error::Error as _;
use std::time::Duration;

use errgroup::{Cancelled, Cause, Error, Group, Moment, Running, errgroup};
use tokio::time::{Instant, sleep};

const HOUR: Duration = Duration::from_secs(3600);

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Names and durations, for comparing a list in one assertion.
fn listed(running: &[Running]) -> Vec<(String, Duration)> {
    running
        .iter()
        .map(|r| (r.task().to_string(), r.elapsed()))
        .collect()
}

fn named(list: &[(&str, f64)]) -> Vec<(String, Duration)> {
    list.iter()
        .map(|&(name, s)| (name.to_owned(), secs(s)))
        .collect()
}

/// The report a group's error carries.
fn report<E>(err: &Error<E>, moment: Moment) -> Vec<(String, Duration)> {
    let report = err
        .still_running()
        .unwrap_or_else(|| panic!("no report on the error"));
    assert_eq!(report.moment(), moment);
    listed(report.tasks())
}

#[tokio::test(start_paused = true)]
async fn the_deadline_names_exactly_the_branches_still_running_and_for_how_long() {
    let err = errgroup! {
        timeout = Duration::from_secs(5);
        type Error = Cancelled;
        done => { sleep(Duration::from_secs(1)).await; Ok(()) },
        waiting => { ctx.cancelled().await; ctx.check() },
        sleeping => ctx.sleep(HOUR).await,
    }
    .unwrap_err();
    assert_eq!(
        report(&err, Moment::Deadline),
        named(&[("waiting", 5.0), ("sleeping", 5.0)])
    );
    // What existed is unchanged: the message, the cause, the comparison.
    assert_eq!(err.to_string(), "group cancelled: deadline exceeded");
    let Error::Cancelled(cancelled) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*cancelled, Cancelled::new(Cause::DeadlineExceeded));
    assert_eq!(cancelled.cause(), &Cause::DeadlineExceeded);
    // The report is the cancellation's source, so error reporters print it.
    let source = cancelled.source().expect("the report as the source");
    assert_eq!(
        source.to_string(),
        "still running at the deadline: `waiting` for 5s, `sleeping` for 5s"
    );
    assert_eq!(
        format!("{:#}", anyhow::Error::from(err)),
        "group cancelled: deadline exceeded: cancelled: deadline exceeded: \
         still running at the deadline: `waiting` for 5s, `sleeping` for 5s"
    );
}

#[tokio::test(start_paused = true)]
async fn fan_out_items_are_named_by_index_and_timed_from_their_launch() {
    // limit = 2: items 2 and 3 launch when items 0 (2s) and 1 (4s) end.
    let err = errgroup! {
        timeout = Duration::from_secs(10);
        limit = 2;
        type Error = Cancelled;
        items => for i in 0..4u64 {
            if i < 2 {
                sleep(Duration::from_secs(2 * (i + 1))).await;
                Ok(())
            } else {
                ctx.sleep(HOUR).await
            }
        },
    }
    .unwrap_err();
    assert_eq!(
        report(&err, Moment::Deadline),
        named(&[("items[2]", 8.0), ("items[3]", 6.0)])
    );
}

#[tokio::test(start_paused = true)]
async fn spawned_items_are_named_too() {
    let err = errgroup! {
        timeout = Duration::from_secs(3);
        type Error = Cancelled;
        #[spawn] items => for i in 0..3u64 {
            if i == 1 {
                sleep(Duration::from_secs(1)).await;
                Ok(())
            } else {
                ctx.sleep(HOUR).await
            }
        },
    }
    .unwrap_err();
    assert_eq!(
        report(&err, Moment::Deadline),
        named(&[("items[0]", 3.0), ("items[2]", 3.0)])
    );
}

#[tokio::test(start_paused = true)]
async fn ctx_spawn_tasks_are_named_and_timed_from_their_spawn() {
    let err = errgroup! {
        timeout = Duration::from_secs(5);
        type Error = Cancelled;
        spawner => {
            sleep(Duration::from_secs(2)).await;
            let task_ctx = ctx.clone();
            ctx.spawn("flush", async move { task_ctx.sleep(HOUR).await })?;
            ctx.spawn("quick", async { Ok::<_, Cancelled>(()) })?;
            Ok(())
        },
        #[spawn] remote => ctx.sleep(HOUR).await,
    }
    .unwrap_err();
    // Branches first, in the order written, then the tasks.
    assert_eq!(
        report(&err, Moment::Deadline),
        named(&[("remote", 5.0), ("flush", 3.0)])
    );
}

#[tokio::test(start_paused = true)]
async fn grace_expiry_names_the_dropped_branch_and_the_aborted_spawned_one() {
    let start = Instant::now();
    let err = errgroup! {
        timeout = Duration::from_secs(1);
        grace = Duration::from_secs(2);
        type Error = Cancelled;
        stubborn => { sleep(HOUR).await; Ok(()) },
        #[spawn] remote => { sleep(HOUR).await; Ok(()) },
        polite => { ctx.cancelled().await; ctx.check() },
        items => for i in 0..2u64 {
            if i == 0 { ctx.cancelled().await; ctx.check() } else { sleep(HOUR).await; Ok(()) }
        },
    }
    .unwrap_err();
    assert_eq!(Instant::now() - start, Duration::from_secs(3));
    // Taken when grace expired, replacing the one taken at the deadline:
    // what never stopped.
    assert_eq!(
        report(&err, Moment::GraceExpired),
        named(&[("stubborn", 3.0), ("remote", 3.0), ("items[1]", 3.0)])
    );
    assert_eq!(err.cause(), Cause::DeadlineExceeded);
    assert_eq!(
        err.still_running().unwrap().to_string(),
        "still running when grace expired (dropped or aborted): \
         `stubborn` for 3s, `remote` for 3s, `items[1]` for 3s"
    );
}

/// A failure explains itself: `Error::Failed` carries no report, and a
/// group cancelled any other way than by its deadline or grace has none.
#[tokio::test(start_paused = true)]
async fn only_a_deadline_or_grace_leaves_a_report() {
    let err = errgroup! {
        grace = Duration::from_secs(1);
        failing => Err::<(), _>("boom"),
        stubborn => { sleep(HOUR).await; Ok(()) },
    }
    .unwrap_err();
    assert_eq!(err.task().unwrap(), "failing");
    assert!(err.still_running().is_none());

    let err = errgroup! {
        type Error = Cancelled;
        server => { ctx.cancelled().await; ctx.check() },
        admin => { ctx.shutdown(); Ok(()) },
    }
    .unwrap_err();
    assert!(err.is_shutdown());
    assert!(err.still_running().is_none());
    let Error::Cancelled(cancelled) = err else {
        panic!()
    };
    assert!(cancelled.source().is_none());

    // A branch that failed after the deadline is not the group's error,
    // and the deadline's report stays.
    let err = errgroup! {
        timeout = Duration::from_secs(1);
        late => { ctx.cancelled().await; Err::<(), _>("too late") },
    }
    .unwrap_err();
    assert_eq!(report(&err, Moment::Deadline), named(&[("late", 1.0)]));
}

/// A watchdog branch asks every second; each answer lists exactly what
/// runs then, and the list shrinks as branches and tasks end.
#[tokio::test(start_paused = true)]
async fn a_watchdog_branch_sees_exactly_what_runs_as_it_changes() {
    let (seen, ..) = errgroup! {
        type Error = Cancelled;
        watchdog => {
            let watch = ctx.watch();
            let mut seen = Vec::new();
            sleep(secs(0.5)).await;
            loop {
                let mut now = listed(&watch.running().await);
                now.retain(|(name, _)| name != "watchdog");
                if now.is_empty() {
                    break;
                }
                seen.push(now);
                sleep(Duration::from_secs(1)).await;
            }
            Ok(seen)
        },
        a => {
            ctx.spawn("task", async { sleep(Duration::from_secs(2)).await; Ok::<_, Cancelled>(()) })?;
            sleep(Duration::from_secs(1)).await;
            Ok(())
        },
        b => { sleep(Duration::from_secs(3)).await; Ok(()) },
    }
    .unwrap();
    assert_eq!(
        seen,
        [
            named(&[("a", 0.5), ("b", 0.5), ("task", 0.5)]),
            named(&[("b", 1.5), ("task", 1.5)]),
            named(&[("b", 2.5)]),
        ]
    );
}

/// A `#[spawn]` watchdog asks while the group's driver sleeps (its only
/// in-task branch waits on a timer): the question wakes it, and the answer
/// comes at once, not when the driver next wakes on its own.
#[tokio::test(start_paused = true)]
async fn a_question_from_another_task_wakes_the_sleeping_group() {
    let start = Instant::now();
    let (answered, ()) = errgroup! {
        type Error = Cancelled;
        #[spawn] watchdog => {
            let watch = ctx.watch();
            sleep(Duration::from_secs(1)).await;
            let running = watch.running().await;
            Ok((Instant::now(), listed(&running)))
        },
        idle => { sleep(Duration::from_secs(5)).await; Ok(()) },
    }
    .unwrap();
    let (at, running) = answered;
    assert_eq!(at - start, Duration::from_secs(1), "answered late");
    assert_eq!(running, named(&[("watchdog", 1.0), ("idle", 1.0)]));
}

/// A handle handed out of the group (a debug endpoint's) is answered while
/// the group runs, and with nothing once it has returned.
#[tokio::test(start_paused = true)]
async fn an_outside_watcher_is_answered_and_then_told_nothing() {
    let handed = std::sync::Arc::new(std::sync::Mutex::new(None::<errgroup::Watch>));
    let slot = std::sync::Arc::clone(&handed);
    let endpoint = tokio::spawn(async move {
        sleep(Duration::from_secs(1)).await;
        let watch = slot
            .lock()
            .unwrap()
            .take()
            .expect("handed out at the start");
        let during = listed(&watch.running().await);
        sleep(Duration::from_secs(5)).await;
        let after = watch.running().await;
        (during, after)
    });
    errgroup! {
        type Error = Cancelled;
        serve => {
            *handed.lock().unwrap() = Some(ctx.watch());
            sleep(Duration::from_secs(3)).await;
            Ok(())
        },
    }
    .unwrap();
    let (during, after) = endpoint.await.unwrap();
    assert_eq!(during, named(&[("serve", 1.0)]));
    assert!(after.is_empty(), "{after:?}");
}

#[tokio::test(start_paused = true)]
async fn a_group_deadline_names_its_tasks_with_their_own_durations() {
    let mut group = Group::<Cancelled>::new().timeout(Duration::from_secs(5));
    group.spawn("done", |_| async {
        sleep(Duration::from_secs(1)).await;
        Ok(())
    });
    group.spawn("slow", |ctx| async move { ctx.sleep(HOUR).await });
    sleep(Duration::from_secs(2)).await;
    group.spawn("late", |ctx| async move {
        ctx.cancelled().await;
        ctx.check()
    });
    let err = group.wait().await.unwrap_err();
    assert_eq!(
        report(&err, Moment::Deadline),
        named(&[("slow", 5.0), ("late", 3.0)])
    );
    assert_eq!(err.to_string(), "group cancelled: deadline exceeded");
}

#[tokio::test(start_paused = true)]
async fn a_group_grace_names_the_aborted_tasks() {
    let mut group = Group::<Cancelled>::new()
        .timeout(Duration::from_secs(1))
        .grace(Duration::from_secs(2));
    group.spawn("stubborn", |_| async {
        sleep(HOUR).await;
        Ok(())
    });
    group.spawn("polite", |ctx| async move {
        ctx.cancelled().await;
        ctx.check()
    });
    let err = group.wait().await.unwrap_err();
    assert_eq!(
        report(&err, Moment::GraceExpired),
        named(&[("stubborn", 3.0)])
    );
}

#[tokio::test(start_paused = true)]
async fn a_group_is_asked_at_once_and_its_watch_from_anywhere() {
    let mut group = Group::<Cancelled>::new();
    let watch = group.watch();
    group.spawn("short", |_| async {
        sleep(Duration::from_secs(1)).await;
        Ok(())
    });
    group.spawn("long", |_| async {
        sleep(Duration::from_secs(3)).await;
        Ok(())
    });
    sleep(secs(0.5)).await;
    assert_eq!(
        listed(&group.running()),
        named(&[("short", 0.5), ("long", 0.5)])
    );
    sleep(Duration::from_secs(1)).await;
    assert_eq!(listed(&group.running()), named(&[("long", 1.5)]));
    let from_a_task = tokio::spawn(async move {
        let during = listed(&watch.running().await);
        (watch, during)
    });
    let (watch, during) = from_a_task.await.unwrap();
    assert_eq!(during, named(&[("long", 1.5)]));
    group.wait().await.unwrap();
    assert!(watch.running().await.is_empty());
}

/// A group that was never asked and has no deadline or grace keeps
/// nothing: its `Cancelled` reports nothing, as before.
#[tokio::test]
async fn a_group_without_deadline_or_grace_reports_nothing() {
    let err = errgroup! {
        type Error = Cancelled;
        stop => { ctx.shutdown(); ctx.check() },
    }
    .unwrap_err();
    assert!(err.still_running().is_none());
}

/// A group whose future is dropped answers nothing, also to a watcher
/// that keeps its group's state alive (here through a ctx clone).
#[tokio::test(start_paused = true)]
async fn a_dropped_group_answers_nothing() {
    let handed = std::sync::Mutex::new(None);
    let group = async {
        errgroup! {
            type Error = Cancelled;
            serve => {
                *handed.lock().unwrap() = Some((ctx.watch(), ctx.clone()));
                sleep(HOUR).await;
                Ok(())
            },
        }
    };
    tokio::select! {
        _ = group => panic!("the group should still run"),
        () = sleep(Duration::from_secs(1)) => {}
    }
    let (watch, _ctx) = handed.lock().unwrap().take().unwrap();
    let answer = tokio::time::timeout(HOUR, watch.running()).await;
    assert_eq!(
        answer.expect("a question to a dropped group went unanswered"),
        []
    );
}

/// A nested group's `#[spawn]` branch asks the outer group, whose only
/// branch is in-task (so its driver has kept no waker), while the outer
/// driver sleeps: the question must wake it and be answered at once, as it
/// is for a `#[spawn]` branch of the outer group itself.
#[tokio::test(start_paused = true)]
async fn a_question_from_a_nested_groups_task_wakes_the_sleeping_outer_group() {
    let start = Instant::now();
    let (answered,) = errgroup! {
        type Error = Cancelled;
        outer => {
            let parent = ctx.clone();
            let (answered, ()) = errgroup! {
                #[spawn] watchdog => {
                    sleep(Duration::from_secs(1)).await;
                    let running = parent.watch().running().await;
                    Ok::<_, ()>((Instant::now(), listed(&running)))
                },
                #[spawn] slow => { sleep(Duration::from_secs(3)).await; Ok(()) },
            }
            .unwrap();
            Ok(answered)
        },
    }
    .unwrap();
    let (at, running) = answered;
    assert_eq!(at - start, Duration::from_secs(1), "answered late");
    assert_eq!(running, named(&[("outer", 0.0)]));
}

/// The same from a nested group's `ctx.spawn` task: a task runs off the
/// drivers of the groups around its own too.
#[tokio::test(start_paused = true)]
async fn a_question_from_a_nested_groups_ctx_spawn_task_wakes_the_outer_group() {
    let start = Instant::now();
    let (answered,) = errgroup! {
        type Error = Cancelled;
        outer => {
            let parent = ctx.clone();
            let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
            let slot = std::sync::Arc::clone(&seen);
            errgroup! {
                inner => {
                    ctx.spawn("asker", async move {
                        sleep(Duration::from_secs(1)).await;
                        let running = parent.watch().running().await;
                        *slot.lock().unwrap() = Some((Instant::now(), listed(&running)));
                        Ok(())
                    })?;
                    sleep(Duration::from_secs(3)).await;
                    Ok::<_, Cancelled>(())
                },
            }
            .unwrap();
            let seen = seen.lock().unwrap().take().expect("the task asked");
            Ok(seen)
        },
    }
    .unwrap();
    let (at, running) = answered;
    assert_eq!(at - start, Duration::from_secs(1), "answered late");
    assert_eq!(running, named(&[("outer", 0.0)]));
}
