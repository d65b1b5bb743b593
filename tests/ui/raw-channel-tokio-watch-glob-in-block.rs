use errgroup::errgroup;

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            use tokio::sync::watch::*;
            let (_tx, _rx) = channel(0_u32);
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
