use errgroup::errgroup;
use tokio::sync::mpsc;

async fn run(mut rx: mpsc::Receiver<u32>, out: mpsc::Sender<u32>) -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            loop {
                tokio::select! {
                    biased;
                    Some(n) = rx.recv() => { out.send(n).await?; }
                    else => break,
                }
            }
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
