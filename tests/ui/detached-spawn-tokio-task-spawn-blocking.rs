use errgroup::errgroup;

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            use tokio::task;
            let _handle = task::spawn_blocking(|| 1);
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
