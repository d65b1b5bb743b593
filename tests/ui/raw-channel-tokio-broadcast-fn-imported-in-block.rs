use errgroup::errgroup;

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            use tokio::sync::broadcast::channel;
            let (_tx, _rx) = channel::<u32>(8);
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
