use errgroup::errgroup;

async fn run(tx: async_channel::Sender<u32>) -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            tx.send(1).await?;
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
