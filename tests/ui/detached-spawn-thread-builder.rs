// A thread started by `std::thread::Builder`, never joined by the group.
use errgroup::errgroup;

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        worker => {
            let handle = std::thread::Builder::new().name("worker".into()).spawn(|| 42)?;
            drop(handle);
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
