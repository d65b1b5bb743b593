use errgroup::errgroup;

async fn run() -> anyhow::Result<()> {
    let (_sent,) = errgroup! {
        type Error = anyhow::Error;
        let tx = channel::<u64>(16);
        produce => {
            tx.send(1).await?;
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
