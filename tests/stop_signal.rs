//! `errgroup::stop_signal()` against real signals sent to this process by
//! `kill`: SIGTERM and SIGINT each stop every group that waits on one, a
//! second call is as good as the first, and a signal already handled does
//! not stop a group that starts waiting afterwards. One test: signals are
//! process-wide.
#![cfg(unix)]

use std::pin::pin;
use std::process::Command;
use std::task::Context;

use errgroup::{AllowShutdown, Cause, Group, TaskName, errgroup};

/// Sends `signal` to this process, as a service manager would.
fn kill(signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), std::process::id().to_string()])
        .status()
        .expect("runs kill");
    assert!(status.success());
}

fn is_pending<F: std::future::Future>(fut: std::pin::Pin<&mut F>) -> bool {
    fut.poll(&mut Context::from_waker(std::task::Waker::noop()))
        .is_pending()
}

#[tokio::test]
async fn sigterm_and_sigint_stop_every_group_waiting_on_one() {
    for signal in ["TERM", "INT"] {
        // Two groups, each with its own call: both stop on one signal.
        let group = Group::<String>::new().shutdown_on(errgroup::stop_signal());
        let group_ctx = group.ctx();
        let other = async {
            errgroup! {
                type Error = String;
                shutdown_on = errgroup::stop_signal();
                server => { ctx.cancelled().await; Ok(ctx.cause()) },
            }
        };
        let mut other = pin!(other);
        // Polled once: its handlers are installed, it waits.
        assert!(is_pending(other.as_mut()));
        kill(signal);
        let (cause,) = other
            .await
            .allow_shutdown()
            .unwrap_or_else(|e| panic!("SIG{signal}: {e}"));
        let by = Some(Cause::Shutdown {
            by: TaskName::new("shutdown_on"),
        });
        assert_eq!(cause, by, "SIG{signal}");
        group_ctx.cancelled().await;
        assert_eq!(group_ctx.cause(), by, "SIG{signal}");
        group.wait().await.allow_shutdown().unwrap();

        // The signal was handled: a group that starts waiting now does
        // not take it for a new one, and still stops on the next.
        let mut late = pin!(errgroup::stop_signal());
        tokio::task::yield_now().await;
        assert!(
            is_pending(late.as_mut()),
            "SIG{signal} handled before was taken for a new one"
        );
        kill(signal);
        late.await;
    }
}
