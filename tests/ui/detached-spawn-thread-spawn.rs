use errgroup::errgroup;
use std::thread;

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            let _handle = thread::spawn(|| 1);
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
