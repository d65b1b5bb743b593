// A process-wide bus in a `LazyLock` static, named by its path.
use std::sync::LazyLock;

use errgroup::errgroup;
use tokio::sync::broadcast;

static BUS: LazyLock<broadcast::Sender<u32>> = LazyLock::new(|| broadcast::channel(16).0);

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        announce => {
            let _ = BUS.send(3);
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
