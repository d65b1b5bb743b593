use errgroup::errgroup;
use tokio::sync::mpsc;

async fn run(
    mut txs: Vec<mpsc::Sender<u32>>,
    rx: Option<std::sync::mpsc::Receiver<u32>>,
) -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            while let Some(tx) = txs.pop() && tx.try_send(1).is_ok() {}
            match rx {
                Some(rx) if rx.try_recv().is_ok() => {}
                _ => {}
            }
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
