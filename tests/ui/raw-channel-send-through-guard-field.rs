use errgroup::errgroup;
use std::sync::Arc;
use tokio::sync::{Mutex, mpsc};

struct State {
    tx: mpsc::Sender<u32>,
}

async fn run(state: Arc<Mutex<State>>) -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            state.lock().await.tx.send(1).await?;
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
