use errgroup::errgroup;

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            use tokio::sync::oneshot;
            let (_tx, _rx) = oneshot::channel::<u32>();
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
