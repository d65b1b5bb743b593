use errgroup::errgroup;
use tokio::sync::mpsc;

async fn run(tx: mpsc::Sender<u32>) -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            tx.send(1).await?;
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
