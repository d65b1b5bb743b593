use errgroup::errgroup;
use tokio::sync::mpsc;

async fn run(tx: mpsc::Sender<u32>, mut rx: mpsc::Receiver<u32>) -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            let (_a, _b) = tokio::join!(tx.send(1), async { 2 });
            let _pending = vec![tx.capacity(), tx.max_capacity()];
            let _tries = vec![rx.try_recv().is_ok(); 2];
            assert!(tx.try_send(3).is_ok(), "queue full");
            println!("{:?}", rx.recv().await);
            tokio::pin! {
                let _permit = tx.reserve();
            }
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
