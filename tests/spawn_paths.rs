//! The two ways a `#[spawn]` branch runs, held to the same rules: a group
//! without `limit` runs its tasks' bodies bare (`SpawnUnit`) and the last
//! branch of an all-`#[spawn]` group in the group's own task
//! (`InlineLeaf`); a group with `limit` runs both through a permit
//! (`Spawn::limited`, `Spawn::inline_limited`). Each rule is checked on
//! both, by the same test bodies: the first error wins whichever kind of
//! branch fails, an echo of the cancellation is not a failure, a panic is
//! resumed, `grace` stops both, dropping the group drops both, and a
//! group nested in either finds its parent (the ambient group of a task,
//! the lent one of the group's task).
//!
//! Every group runs inside a tokio task (`in_task`): in `block_on` every
//! `#[spawn]` branch is a task of its own, and the inline path is never
//! taken. Paused clock: a branch that would hang sleeps an hour instead,
//! which the clock skips, and the assertions then fail.

use std::future::Future;
use std::time::Duration;

use errgroup::{Cancelled, Cause, Error, TaskName, errgroup};
use futures_util::FutureExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use tokio::sync::Notify;
use tokio::time::timeout;

const HOUR: Duration = Duration::from_secs(3600);

#[derive(Debug, PartialEq)]
enum E {
    Own(&'static str),
    Cancelled,
}

impl From<Cancelled> for E {
    fn from(_: Cancelled) -> Self {
        E::Cancelled
    }
}

/// `group` run in a tokio task of its own, so that the last `#[spawn]`
/// branch runs in it.
async fn in_task<T: Send + 'static>(group: impl Future<Output = T> + Send + 'static) -> T {
    tokio::spawn(group).await.unwrap()
}

fn failed(task: &str) -> Cause {
    Cause::Failed {
        task: TaskName::new(task.to_owned()),
    }
}

fn suppressed<T: 'static>(err: &Error<T>) -> Vec<String> {
    err.suppressed()
        .iter()
        .map(|s| s.task().to_string())
        .collect()
}

/// Says when it is dropped, across tasks ([`Gone`]).
struct Dropped(Arc<Gone>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.flag.store(true, SeqCst);
        self.0.notify.notify_one();
    }
}

#[derive(Default)]
struct Gone {
    flag: AtomicBool,
    notify: Notify,
}

impl Gone {
    fn new() -> Arc<Gone> {
        Arc::default()
    }

    fn now(&self) -> bool {
        self.flag.load(SeqCst)
    }

    async fn wait(&self) {
        self.notify.notified().await;
    }
}

/// The same test bodies, for a group without `limit` and one with it
/// (`$header`), in a module of their own.
macro_rules! both_paths {
    ($module:ident, $($header:tt)*) => {
        mod $module {
            use super::*;

            #[tokio::test(start_paused = true)]
            async fn the_last_branch_runs_in_the_groups_task_and_values_come_back() {
                let (here, (a, b)) = in_task(async {
                    let here = tokio::task::id();
                    let values = errgroup! {
                        $($header)*
                        #[spawn] task => Ok::<_, E>(tokio::task::id()),
                        #[spawn] inline => Ok(tokio::task::id()),
                    };
                    (here, values.unwrap())
                })
                .await;
                assert_ne!(a, here, "a task of its own");
                assert_eq!(b, here, "run in the group's task");
            }

            #[tokio::test(start_paused = true)]
            async fn the_inline_branch_failing_first_wins_and_the_tasks_echo_is_not_kept() {
                let err = in_task(async {
                    errgroup! {
                        $($header)*
                        #[spawn] task => { ctx.sleep(HOUR).await?; Ok::<_, E>(()) },
                        #[spawn] inline => Err::<(), _>(E::Own("inline")),
                    }
                    .unwrap_err()
                })
                .await;
                assert_eq!(err.cause(), failed("inline"), "{err:?}");
                assert!(suppressed(&err).is_empty(), "an echo was kept: {err:?}");
                assert_eq!(err.into_inner(), Some(E::Own("inline")));
            }

            #[tokio::test(start_paused = true)]
            async fn the_task_failing_first_wins_and_the_inline_echo_is_not_kept() {
                let err = in_task(async {
                    errgroup! {
                        $($header)*
                        #[spawn] task => Err::<(), _>(E::Own("task")),
                        #[spawn] inline => { ctx.sleep(HOUR).await?; Ok::<_, E>(()) },
                    }
                    .unwrap_err()
                })
                .await;
                assert_eq!(err.cause(), failed("task"), "{err:?}");
                assert!(suppressed(&err).is_empty(), "an echo was kept: {err:?}");
                assert_eq!(err.into_inner(), Some(E::Own("task")));
            }

            #[tokio::test(start_paused = true)]
            async fn a_later_failure_of_its_own_is_kept_whichever_branch_fails_first() {
                let err = in_task(async {
                    errgroup! {
                        $($header)*
                        #[spawn] task => Err::<(), _>(E::Own("task")),
                        #[spawn] inline => { ctx.cancelled().await; Err::<(), _>(E::Own("late")) },
                    }
                    .unwrap_err()
                })
                .await;
                assert_eq!(err.cause(), failed("task"), "{err:?}");
                assert_eq!(suppressed(&err), ["inline"], "{err:?}");

                let err = in_task(async {
                    errgroup! {
                        $($header)*
                        #[spawn] task => { ctx.cancelled().await; Err::<(), _>(E::Own("late")) },
                        #[spawn] inline => Err::<(), _>(E::Own("inline")),
                    }
                    .unwrap_err()
                })
                .await;
                assert_eq!(err.cause(), failed("inline"), "{err:?}");
                assert_eq!(suppressed(&err), ["task"], "{err:?}");
            }

            /// The later failures of a task (kept by the group's core) and
            /// of the inline branch (kept by the group's state) are listed
            /// in the order they happened, whichever came first.
            #[tokio::test(start_paused = true)]
            async fn later_failures_of_both_kinds_are_listed_in_time_order() {
                for inline_first in [true, false] {
                    let (task_at, inline_at) = if inline_first { (2, 1) } else { (1, 2) };
                    let err = in_task(async move {
                        errgroup! {
                            $($header)*
                            #[spawn] first => Err::<(), _>(E::Own("first")),
                            #[spawn] task => {
                                ctx.cancelled().await;
                                tokio::time::sleep(Duration::from_secs(task_at)).await;
                                Err::<(), _>(E::Own("task"))
                            },
                            #[spawn] inline => {
                                ctx.cancelled().await;
                                tokio::time::sleep(Duration::from_secs(inline_at)).await;
                                Err::<(), _>(E::Own("inline"))
                            },
                        }
                        .unwrap_err()
                    })
                    .await;
                    assert_eq!(err.cause(), failed("first"), "{err:?}");
                    let order = if inline_first { ["inline", "task"] } else { ["task", "inline"] };
                    assert_eq!(suppressed(&err), order, "{err:?}");
                }
            }

            #[tokio::test(start_paused = true)]
            async fn a_panic_of_either_branch_is_resumed_after_the_other_stopped() {
                for inline_panics in [false, true] {
                    let gone = Gone::new();
                    let tx = gone.clone();
                    let payload = in_task(async move {
                        std::panic::AssertUnwindSafe(async move {
                            errgroup! {
                                $($header)*
                                #[spawn(clone(inline_panics))] task => {
                                    let _guard = Dropped(tx);
                                    if !inline_panics {
                                        panic!("boom");
                                    }
                                    ctx.sleep(HOUR).await?;
                                    Ok::<_, E>(())
                                },
                                #[spawn] inline => {
                                    if inline_panics {
                                        panic!("boom");
                                    }
                                    ctx.sleep(HOUR).await?;
                                    Ok(())
                                },
                            }
                        })
                        .catch_unwind()
                        .await
                        .map(drop)
                        .expect_err("the group resumes the panic")
                    })
                    .await;
                    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
                    assert!(
                        gone.now(),
                        "the group resumed the panic with `task` running ({inline_panics})"
                    );
                }
            }

            #[tokio::test(start_paused = true)]
            async fn grace_stops_both_and_reports_them() {
                let (gone, inline_gone) = (Gone::new(), Gone::new());
                let (tx, inline_tx) = (gone.clone(), inline_gone.clone());
                let err = in_task(async move {
                    errgroup! {
                        $($header)*
                        grace = Duration::from_secs(1);
                        type Error = Cancelled;
                        #[spawn] stop => { ctx.shutdown(); Ok(()) },
                        #[spawn] stubborn => {
                            let _guard = Dropped(tx);
                            std::future::pending::<()>().await;
                            Ok(())
                        },
                        #[spawn] inline => {
                            let _guard = Dropped(inline_tx);
                            std::future::pending::<()>().await;
                            Ok(())
                        },
                    }
                    .unwrap_err()
                })
                .await;
                assert!(err.is_grace_expired(), "{err:?}");
                let report = err.still_running().expect("what grace stopped");
                let mut names: Vec<_> = report.tasks().iter().map(|r| r.task().to_string()).collect();
                names.sort();
                assert_eq!(names, ["inline", "stubborn"], "{report}");
                assert!(inline_gone.now(), "the inline branch was not dropped");
                assert!(gone.now(), "the task was not stopped");
            }

            #[tokio::test(start_paused = true)]
            async fn dropping_the_group_drops_both_branches() {
                let (gone, inline_gone) = (Gone::new(), Gone::new());
                let (tx, inline_tx) = (gone.clone(), inline_gone.clone());
                let ran = in_task(async move {
                    timeout(HOUR, async move {
                        errgroup! {
                            $($header)*
                            #[spawn] task => {
                                let _guard = Dropped(tx);
                                std::future::pending::<()>().await;
                                Ok::<_, E>(())
                            },
                            #[spawn] inline => {
                                let _guard = Dropped(inline_tx);
                                std::future::pending::<()>().await;
                                Ok(())
                            },
                        }
                    })
                    .await
                })
                .await;
                assert!(ran.is_err(), "the group returned: {ran:?}");
                assert!(inline_gone.now(), "the inline branch outlived its group");
                assert!(
                    timeout(HOUR, gone.wait()).await.is_ok(),
                    "the task outlived its group"
                );
            }

            /// A group nested in the task finds it as the ambient group, one
            /// nested in the inline branch as the lent one: the parent's
            /// cancellation stops both, and their `Err` is an echo.
            #[tokio::test(start_paused = true)]
            async fn a_group_nested_in_either_branch_is_its_groups_child() {
                let started = Arc::new(tokio::sync::Barrier::new(3));
                let (a, b) = (started.clone(), started.clone());
                let err = in_task(async move {
                    errgroup! {
                        $($header)*
                        #[spawn] trigger => {
                            started.wait().await;
                            Err::<(), _>(E::Own("trigger"))
                        },
                        #[spawn] task => {
                            let nested = errgroup! {
                                w => { a.wait().await; ctx.sleep(HOUR).await?; Ok::<_, E>(()) },
                            };
                            let err = nested.expect_err("the parent's cancellation stops it");
                            assert_eq!(err.cause(), Cause::Parent(Box::new(failed("trigger"))));
                            Err(E::Own("nested in task"))
                        },
                        #[spawn] inline => {
                            let nested = errgroup! {
                                w => { b.wait().await; ctx.sleep(HOUR).await?; Ok::<_, E>(()) },
                            };
                            let err = nested.expect_err("the parent's cancellation stops it");
                            assert_eq!(err.cause(), Cause::Parent(Box::new(failed("trigger"))));
                            Err(E::Own("nested inline"))
                        },
                    }
                    .unwrap_err()
                })
                .await;
                assert_eq!(err.cause(), failed("trigger"), "{err:?}");
                assert!(suppressed(&err).is_empty(), "an echo was kept: {err:?}");
            }
        }
    };
}

both_paths!(without_limit,);
both_paths!(with_limit, limit = 4;);
