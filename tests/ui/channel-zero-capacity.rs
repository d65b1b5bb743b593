use errgroup::errgroup;

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        let (tx, rx) = channel::<u32>(0);
        produce => { tx.send(1).await?; Ok(()) },
        consume => { let _ = rx.recv().await?; Ok(()) },
    }?;
    Ok(())
}

fn main() {}
