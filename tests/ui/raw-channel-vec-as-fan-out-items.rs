// A fan-out over a vector of raw endpoints, each handed to a helper.
use errgroup::errgroup;
use tokio::sync::mpsc;

async fn forward(to: &mpsc::Sender<u32>) -> anyhow::Result<()> {
    to.send(1).await?;
    Ok(())
}

async fn run(outputs: Vec<mpsc::Sender<u32>>) -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        each => for to in outputs { forward(&to).await },
    }?;
    Ok(())
}

fn main() {}
