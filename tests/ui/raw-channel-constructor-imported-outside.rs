use errgroup::errgroup;
use std::sync::mpsc::sync_channel;
use tokio::sync::mpsc::channel;

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            let (_tx, _rx) = channel::<u32>(8);
            let (_stx, _srx) = sync_channel::<u32>(1);
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
