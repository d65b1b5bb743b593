// A name bound by a pattern inside the branch, handed to a helper: checked
// by its type, though the items it came from are not.
use errgroup::errgroup;
use tokio::sync::mpsc;

async fn forward(to: &mpsc::Sender<u32>, n: u32) -> anyhow::Result<()> {
    to.send(n).await?;
    Ok(())
}

async fn run(outputs: &[mpsc::Sender<u32>]) -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        fan => {
            for to in outputs.iter().cloned().collect::<Vec<_>>() {
                forward(&to, 1).await?;
            }
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
