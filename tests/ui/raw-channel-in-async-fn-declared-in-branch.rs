// An `async fn` declared inside the branch is code of the branch.
use errgroup::errgroup;
use tokio::sync::mpsc;

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        relay => {
            async fn pump(input: &mut mpsc::Receiver<u32>) -> Option<u32> {
                input.recv().await
            }
            let _ = pump;
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
