use errgroup::errgroup;
use tokio::sync::mpsc;

async fn run(tx: mpsc::Sender<u32>, mut rx: mpsc::Receiver<u32>) -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        #[allow(raw_channel)]
        produce => {
            tx.send(1).await?;
            Ok(())
        },
        #[allow(detached_spawn)]
        consume => {
            let _handle = tokio::spawn(async {});
            let _n = rx.recv().await;
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
