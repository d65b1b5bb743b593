//! The `tracing` feature, seen by a real subscriber: the span tree a group
//! makes (the group at its call site, a span per branch, item and task,
//! nested under the span current where the group was written) and the
//! events where a group fails or is cancelled.
//!
//! Run with `cargo test --features tracing --test tracing` (CI does).

#![cfg(feature = "tracing")]

use std::sync::{Arc, Mutex};

use errgroup::errgroup;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

/// One span or event as captured: its name (an event's message), its
/// fields as `key=value`, and the chain of span names above it.
#[derive(Debug, Clone)]
struct Seen {
    what: String,
    fields: Vec<String>,
    path: Vec<String>,
}

#[derive(Default)]
struct Fields(Vec<String>, Option<String>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.1 = Some(format!("{value:?}"));
        } else {
            self.0.push(format!("{}={value:?}", field.name()));
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push(format!("{}={value}", field.name()));
    }
}

#[derive(Clone, Default)]
struct Capture {
    spans: Arc<Mutex<Vec<(u64, Seen)>>>,
    events: Arc<Mutex<Vec<Seen>>>,
}

fn path<S: Subscriber + for<'a> LookupSpan<'a>>(
    ctx: &Context<'_, S>,
    id: Option<&Id>,
) -> Vec<String> {
    let Some(span) = id.and_then(|id| ctx.span(id)) else {
        return Vec::new();
    };
    // Under `--cfg tokio_unstable` tokio wraps each task in spans of its own
    // (`runtime.spawn`); the application's path is the rest.
    let mut names: Vec<String> = span
        .scope()
        .map(|s| s.name().to_owned())
        .filter(|name| !name.starts_with("runtime."))
        .collect();
    names.reverse();
    names
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let parent = if attrs.is_root() {
            None
        } else if let Some(parent) = attrs.parent() {
            Some(parent.clone())
        } else {
            ctx.current_span().id().cloned()
        };
        let seen = Seen {
            what: attrs.metadata().name().to_owned(),
            fields: fields.0,
            path: path(&ctx, parent.as_ref()),
        };
        self.spans.lock().unwrap().push((id.into_u64(), seen));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        values.record(&mut fields);
        for (span, seen) in self.spans.lock().unwrap().iter_mut() {
            if *span == id.into_u64() {
                seen.fields.extend(fields.0.iter().cloned());
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let parent = if let Some(parent) = event.parent() {
            Some(parent.clone())
        } else {
            ctx.current_span().id().cloned()
        };
        self.events.lock().unwrap().push(Seen {
            what: fields.1.unwrap_or_default(),
            fields: fields.0,
            path: path(&ctx, parent.as_ref()),
        });
    }
}

impl Capture {
    fn spans(&self) -> Vec<Seen> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .map(|(_, s)| s.clone())
            .collect()
    }

    fn events(&self) -> Vec<Seen> {
        self.events.lock().unwrap().clone()
    }

    fn branch(&self, name: &str) -> Seen {
        let field = format!("name={name}");
        self.spans()
            .into_iter()
            .find(|s| s.what == "branch" && s.fields.contains(&field))
            .unwrap_or_else(|| panic!("no span for branch {name}: {:#?}", self.spans()))
    }
}

fn capture() -> (Capture, tracing::subscriber::DefaultGuard) {
    let capture = Capture::default();
    let guard = tracing::subscriber::set_default(Registry::default().with(capture.clone()));
    (capture, guard)
}

#[tokio::test]
async fn a_group_is_a_span_at_its_call_site_with_a_span_per_branch_under_the_callers() {
    let (capture, _guard) = capture();
    let request = tracing::info_span!("request");
    let line = line!() + 3;
    let result = {
        let _entered = request.enter();
        errgroup! {
            limit = 2;
            fetch => { tracing::info!("fetching"); Ok::<_, ()>(1) },
            items => for i in 0..3 { tracing::info!(i, "item"); Ok(i) },
        }
    };
    assert_eq!(result.unwrap(), (1, vec![0, 1, 2]));
    let group = capture
        .spans()
        .into_iter()
        .find(|s| s.what == "errgroup")
        .expect("a span for the group");
    assert_eq!(
        group.path,
        ["request"],
        "the group nests where it was written"
    );
    let site = format!("site=tests/tracing.rs:{line}");
    assert!(
        group.fields.contains(&site),
        "{:?} lacks {site}",
        group.fields
    );
    assert!(
        group.fields.contains(&"branches=2".to_owned()),
        "{:?}",
        group.fields
    );
    assert!(
        group.fields.contains(&"limit=2".to_owned()),
        "{:?}",
        group.fields
    );
    for name in ["fetch", "items[0]", "items[1]", "items[2]"] {
        assert_eq!(capture.branch(name).path, ["request", "errgroup"]);
    }
    let fetching = capture
        .events()
        .into_iter()
        .find(|e| e.what == "fetching")
        .unwrap();
    assert_eq!(fetching.path, ["request", "errgroup", "branch"]);
}

#[test]
fn spawned_and_blocking_bodies_and_tasks_run_inside_their_spans() {
    let (capture, _guard) = capture();
    // A subscriber set as this thread's default: every thread of the
    // runtime (workers, blocking pool) gets it too, as a global one would.
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            std::mem::forget(tracing::dispatcher::set_default(&dispatch));
        })
        .build()
        .unwrap();
    let result = runtime.block_on(async {
        errgroup! {
            type Error = errgroup::Cancelled;
            #[spawn] spawned => { tracing::info!("in spawned"); Ok(()) },
            #[blocking] blocking => { tracing::info!("in blocking"); Ok(()) },
            spawner => {
                ctx.spawn("task", async {
                    tracing::info!("in task");
                    Ok::<_, errgroup::Cancelled>(())
                })?;
                Ok(())
            },
        }
    });
    result.unwrap();
    let events = capture.events();
    for (message, branch) in [
        ("in spawned", "spawned"),
        ("in blocking", "blocking"),
        ("in task", "task"),
    ] {
        let event = events
            .iter()
            .find(|e| e.what == message)
            .unwrap_or_else(|| panic!("no event {message:?}: {events:#?}"));
        assert_eq!(event.path, ["errgroup", "branch"], "{message}");
        assert_eq!(capture.branch(branch).path, ["errgroup"]);
    }
    // What tokio-console lists: each task under the name errors use.
    #[cfg(tokio_unstable)]
    for name in ["spawned", "blocking", "task"] {
        let field = format!("task.name={name}");
        assert!(
            capture
                .spans()
                .iter()
                .any(|s| s.what.starts_with("runtime.") && s.fields.contains(&field)),
            "no tokio task named {name}: {:#?}",
            capture.spans()
        );
    }
}

#[tokio::test]
async fn a_failure_and_the_cancellation_are_events_of_the_group() {
    let (capture, _guard) = capture();
    let result = errgroup! {
        failing => Err::<(), _>("disk full"),
        late => { ctx.cancelled().await; Err::<(), _>("too late") },
    };
    assert_eq!(result.unwrap_err().task().unwrap(), "failing");
    let events = capture.events();
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e.what.starts_with("branch failed"))
        .collect();
    assert_eq!(failed.len(), 2, "{events:#?}");
    assert!(
        failed[0].fields.contains(&"task=failing".to_owned()),
        "{:?}",
        failed[0]
    );
    assert!(
        failed[0].fields.contains(&"first=true".to_owned()),
        "{:?}",
        failed[0]
    );
    assert!(
        failed[1].fields.contains(&"task=late".to_owned()),
        "{:?}",
        failed[1]
    );
    assert!(
        failed[1].fields.contains(&"first=false".to_owned()),
        "{:?}",
        failed[1]
    );
    let cancelled = events
        .iter()
        .find(|e| e.what == "group cancelled")
        .expect("a cancellation event");
    assert!(
        cancelled
            .fields
            .contains(&"cause=task `failing` failed".to_owned()),
        "{cancelled:?}"
    );
    assert_eq!(cancelled.path, ["errgroup"]);
}

/// The grace-expired event names what was dropped or aborted, and for how long.
#[tokio::test(start_paused = true)]
async fn the_grace_expired_event_lists_what_still_ran() {
    use std::time::Duration;
    let (capture, _guard) = capture();
    let result = errgroup! {
        grace = Duration::from_secs(2);
        failing => { tokio::time::sleep(Duration::from_secs(1)).await; Err::<(), _>("boom") },
        stubborn => { tokio::time::sleep(Duration::from_secs(3600)).await; Ok(()) },
        #[spawn] remote => { tokio::time::sleep(Duration::from_secs(3600)).await; Ok(()) },
        polite => { ctx.cancelled().await; Ok(()) },
    };
    assert_eq!(result.unwrap_err().task().unwrap(), "failing");
    let events = capture.events();
    let expired = events
        .iter()
        .find(|e| e.what.starts_with("grace expired"))
        .unwrap_or_else(|| panic!("no grace-expired event: {events:#?}"));
    assert!(
        expired
            .fields
            .contains(&"still_running=`stubborn` for 3s, `remote` for 3s".to_owned()),
        "{expired:?}"
    );
}

/// A supervised pool's failure is a `warn` event of the group naming the
/// task; the group goes on.
#[tokio::test]
async fn a_supervised_failure_is_an_event_naming_the_task() {
    let (capture, _guard) = capture();
    let (n,) = errgroup! {
        type Error = String;
        accept => {
            let conns = ctx.pool().catch_panics().supervise(|_, _| {});
            conns.spawn("conn1", async { Err("bad frame".to_string()) }).await.map_err(|e| e.to_string())?;
            Ok(1)
        },
    }
    .unwrap();
    assert_eq!(n, 1);
    let events = capture.events();
    let failure = events
        .iter()
        .find(|e| e.what.starts_with("supervised task"))
        .unwrap_or_else(|| panic!("no supervised event: {events:#?}"));
    assert_eq!(failure.what, "supervised task failed: bad frame");
    assert!(
        failure.fields.contains(&"task=conn1".to_owned()),
        "{failure:?}"
    );
    assert_eq!(failure.path, ["errgroup"]);
}
