// The branch hands a raw endpoint to a helper defined elsewhere.
use errgroup::errgroup;
use tokio::sync::mpsc;

async fn forward(to: &mpsc::Sender<u32>, n: u32) -> anyhow::Result<()> {
    to.send(n).await?;
    Ok(())
}

async fn run(out: mpsc::Sender<u32>) -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        produce => {
            forward(&out, 1).await?;
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
