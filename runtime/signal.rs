//! `stop_signal()`: what a service stops on, Ctrl-C and SIGTERM in one future.

use std::future::{Future, poll_fn};
use std::task::Poll;

/// Completes when the process is asked to stop: Ctrl-C (SIGINT) or, on
/// Unix, SIGTERM, which container runtimes and service managers send. For
/// `shutdown_on = errgroup::stop_signal();` or
/// [`Group::shutdown_on`](crate::Group::shutdown_on), where
/// `tokio::signal::ctrl_c()` alone would leave a `docker stop` or a
/// `systemctl stop` to end in SIGKILL.
///
/// The handlers are installed when this is called, not when the future is
/// first polled: call it before you tell anyone you are ready, and a
/// signal sent right after is not lost. From then on, for the rest of the
/// process (tokio never uninstalls a handler), SIGINT and SIGTERM no longer
/// end it by themselves: a second Ctrl-C while `grace` runs does not kill
/// it; exit when the group returns. Each call's future completes on the
/// next signal sent after that call, so any number of groups can each wait
/// on their own.
///
/// # Panics
///
/// Outside a tokio runtime, or if the runtime was built without
/// `enable_io` (`#[tokio::main]` enables it).
///
/// ```no_run
/// use errgroup::errgroup;
///
/// # #[tokio::main] async fn main() {
/// let served = errgroup! {
///     shutdown_on = errgroup::stop_signal(); // Ctrl-C or SIGTERM
///     server => { ctx.cancelled().await; Ok::<_, std::io::Error>(()) },
/// };
/// assert!(served.is_ok());
/// # }
/// ```
pub fn stop_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let install = |kind| {
            signal(kind).unwrap_or_else(|e| panic!("errgroup: installing a signal handler: {e}"))
        };
        let mut interrupt = install(SignalKind::interrupt());
        let mut terminate = install(SignalKind::terminate());
        async move {
            poll_fn(|cx| {
                if interrupt.poll_recv(cx).is_ready() || terminate.poll_recv(cx).is_ready() {
                    return Poll::Ready(());
                }
                Poll::Pending
            })
            .await;
        }
    }
    #[cfg(not(unix))]
    {
        let mut ctrl_c = tokio::signal::windows::ctrl_c()
            .unwrap_or_else(|e| panic!("errgroup: installing a signal handler: {e}"));
        async move {
            poll_fn(|cx| ctrl_c.poll_recv(cx).map(drop)).await;
        }
    }
}
