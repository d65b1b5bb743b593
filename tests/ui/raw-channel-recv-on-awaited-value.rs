use errgroup::errgroup;
use tokio::sync::mpsc;

async fn get_rx() -> mpsc::Receiver<u32> {
    mpsc::channel(1).1
}

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            let _n = get_rx().await.recv().await;
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
