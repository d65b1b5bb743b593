use errgroup::errgroup;
use std::thread;
use tokio::spawn;
use tokio::task::spawn_blocking;

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            let _a = spawn(async {});
            let _b = spawn_blocking(|| 1);
            let _c = thread::spawn(|| 2);
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
