// `tokio::spawn` passed as a function value, never called by name.
use errgroup::errgroup;

async fn job(n: u32) -> u32 {
    n * 2
}

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        fan => {
            let handles: Vec<_> = (0..4).map(job).map(tokio::spawn).collect();
            drop(handles);
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
