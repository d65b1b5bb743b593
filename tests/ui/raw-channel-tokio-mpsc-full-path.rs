use errgroup::errgroup;

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            let (_tx, _rx) = tokio::sync::mpsc::channel::<u32>(8);
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
