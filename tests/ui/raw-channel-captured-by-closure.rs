// A closure in the branch captures the endpoint and blocks on it.
use errgroup::errgroup;
use tokio::sync::mpsc;

async fn run(out: mpsc::Sender<u32>) -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        produce => {
            let push = move |n: u32| out.blocking_send(n).is_ok();
            let _ = push;
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
