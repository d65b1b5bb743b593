use errgroup::errgroup;

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            use tokio::sync::mpsc as m;
            let (_tx, _rx) = m::unbounded_channel::<u32>();
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
