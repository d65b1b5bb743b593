// The fan-out's items expression is part of the branch.
use errgroup::errgroup;
use std::sync::mpsc;

async fn run(jobs: mpsc::Receiver<u32>) -> anyhow::Result<Vec<u32>> {
    let (doubled,) = errgroup! {
        type Error = anyhow::Error;
        each => for n in jobs.try_iter() { Ok(n * 2) },
    }?;
    Ok(doubled)
}

fn main() {}
