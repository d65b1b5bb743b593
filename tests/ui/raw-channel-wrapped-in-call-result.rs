// A call's result used in place, with the endpoint inside an `Option`, a
// `Vec` or a lock: checked by its whole type, wherever it is.
use std::sync::{Arc, RwLock};

use errgroup::errgroup;
use tokio::sync::mpsc;

fn lookup(_name: &str) -> Option<mpsc::Sender<u32>> {
    None
}

fn senders() -> Vec<mpsc::Sender<u32>> {
    Vec::new()
}

fn registry() -> Arc<RwLock<Vec<mpsc::Receiver<u32>>>> {
    Arc::default()
}

async fn notify<T>(_to: T) -> anyhow::Result<()> {
    Ok(())
}

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        option => notify(lookup("audit")).await,
        items => {
            for to in senders() {
                drop(to);
            }
            Ok(())
        },
        lock => {
            let n = registry().read().map_or(0, |all| all.len());
            notify(n).await
        },
    }?;
    Ok(())
}

fn main() {}
