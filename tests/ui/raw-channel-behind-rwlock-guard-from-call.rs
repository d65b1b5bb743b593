// An endpoint behind an `RwLock` read guard returned by a function.
use std::sync::{OnceLock, RwLock};

use errgroup::errgroup;
use tokio::sync::mpsc;

fn registry() -> &'static RwLock<mpsc::UnboundedSender<String>> {
    static SLOT: OnceLock<RwLock<mpsc::UnboundedSender<String>>> = OnceLock::new();
    SLOT.get_or_init(|| RwLock::new(mpsc::unbounded_channel().0))
}

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        log => {
            let guard = registry().read().map_err(|_| anyhow::anyhow!("poisoned"))?;
            guard.send("started".to_owned())?;
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
