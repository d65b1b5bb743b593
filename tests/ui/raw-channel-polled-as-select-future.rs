// A receiver polled by `select!` through `&mut`, as a future.
use errgroup::errgroup;
use tokio::sync::oneshot;

async fn run(mut stop: oneshot::Receiver<()>) -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        serve => {
            tokio::select! {
                _ = &mut stop => {}
                () = ctx.cancelled() => {}
            }
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
