// A watch receiver read with `borrow()`, and a sender waited on with
// `closed()`: no send or recv in sight.
use errgroup::errgroup;
use tokio::sync::{mpsc, watch};

async fn run(config: watch::Receiver<u32>, out: mpsc::Sender<u32>) -> anyhow::Result<u32> {
    let (limit, ()) = errgroup! {
        type Error = anyhow::Error;
        read => Ok(*config.borrow()),
        wait => {
            out.closed().await;
            Ok(())
        },
    }?;
    Ok(limit)
}

fn main() {}
