// An optional endpoint taken apart by `if let`.
use errgroup::errgroup;
use tokio::sync::oneshot;

async fn run(reply: Option<oneshot::Sender<u32>>) -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        answer => {
            if let Some(to) = reply {
                let _ = to.send(1);
            }
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
