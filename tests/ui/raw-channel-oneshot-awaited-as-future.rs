// A oneshot receiver is itself a future: awaiting it names it, no method.
use errgroup::errgroup;
use tokio::sync::oneshot;

async fn run(answer: oneshot::Receiver<u32>) -> anyhow::Result<u32> {
    let (n,) = errgroup! {
        type Error = anyhow::Error;
        wait => {
            let n = answer.await?;
            Ok(n)
        },
    }?;
    Ok(n)
}

fn main() {}
