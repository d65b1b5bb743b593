use errgroup::errgroup;

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        let (tx, rx) = channel::<u32>();
        send => { tx.send(1).await?; Ok(()) },
        recv => { rx.recv().await?; Ok(()) },
    }?;
    Ok(())
}

fn main() {}
