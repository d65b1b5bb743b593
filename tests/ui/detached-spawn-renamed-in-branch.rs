// A spawn bound to another name inside the branch, then called.
use errgroup::errgroup;

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            let start = tokio::task::spawn_blocking;
            let _ = start(|| 1 + 1);
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
