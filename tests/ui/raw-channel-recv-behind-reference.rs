use errgroup::errgroup;

async fn run(rx: &mut tokio::sync::watch::Receiver<u32>) -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            rx.changed().await?;
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
