use errgroup::errgroup;

async fn run() -> anyhow::Result<()> {
    let (_sent, _received) = errgroup! {
        type Error = anyhow::Error;
        let (tx, rx) = channel::<u64>(16);
        produce => {
            for n in 0..10 {
                tx.send(n).await?;
            }
            Ok(())
        },
        consume => {
            let mut total = 0;
            while let Some(n) = rx.recv().await? {
                total += n;
            }
            Ok(total)
        },
    }?;
    Ok(())
}

fn main() {}
