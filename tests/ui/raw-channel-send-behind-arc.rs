use errgroup::errgroup;
use std::sync::Arc;

async fn run(tx: Arc<std::sync::mpsc::Sender<u32>>) -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            tx.send(1)?;
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
