use errgroup::errgroup;
use tokio::sync::{mpsc, oneshot};

fn make_tx() -> mpsc::Sender<u32> {
    mpsc::channel(1).0
}

fn reply_to() -> oneshot::Sender<u32> {
    oneshot::channel().0
}

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            make_tx().send(1).await?;
            let _ = reply_to().send(2);
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
