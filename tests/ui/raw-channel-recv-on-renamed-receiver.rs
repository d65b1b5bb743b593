use errgroup::errgroup;
use tokio::sync::mpsc::UnboundedReceiver as Inbox;

async fn run(mut inbox: Inbox<u32>) -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            while let Some(_n) = inbox.recv().await {}
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
