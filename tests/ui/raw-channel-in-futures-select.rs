use errgroup::errgroup;
use futures::{FutureExt, select};
use tokio::sync::{mpsc, oneshot};

async fn run(mut rx: mpsc::Receiver<u32>, done: oneshot::Sender<()>) -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            select! {
                n = rx.recv().fuse() => drop(n),
                complete => done.send(()).unwrap_or(()),
            }
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
