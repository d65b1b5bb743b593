// The send written as a path call: the endpoint is an argument.
use errgroup::errgroup;
use tokio::sync::mpsc::UnboundedSender;

async fn run(events: UnboundedSender<u32>) -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        emit => {
            UnboundedSender::send(&events, 7)?;
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
