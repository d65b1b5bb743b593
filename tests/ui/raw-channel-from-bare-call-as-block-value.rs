// A function called by its bare name as a block's value.
use errgroup::errgroup;
use tokio::sync::oneshot;

fn reply_slot() -> oneshot::Sender<u32> {
    oneshot::channel().0
}

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        held => {
            let _slot = { reply_slot() };
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
