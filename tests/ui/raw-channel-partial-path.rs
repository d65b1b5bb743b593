use errgroup::errgroup;
use tokio::sync::mpsc;

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        make => {
            let (_tx, _rx) = mpsc::channel::<u32>(8);
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
