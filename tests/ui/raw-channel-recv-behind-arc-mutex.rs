use errgroup::errgroup;
use std::sync::Arc;
use tokio::sync::{Mutex, mpsc};

async fn run(rx: Arc<Mutex<mpsc::Receiver<u32>>>) -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            let _n = rx.lock().await.recv().await;
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
