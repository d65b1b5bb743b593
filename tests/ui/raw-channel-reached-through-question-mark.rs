// An endpoint that is the output of `?` on a call's `Result`.
use errgroup::errgroup;
use tokio::sync::mpsc;

fn connect() -> anyhow::Result<mpsc::UnboundedSender<u32>> {
    let (tx, _rx) = mpsc::unbounded_channel();
    Ok(tx)
}

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        emit => {
            let link = connect()?;
            link.send(1)?;
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
