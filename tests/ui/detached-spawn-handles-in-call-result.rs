// Handles of tasks started by a helper, returned in a `Vec` and used in
// place: the branch holds detached tasks.
use errgroup::errgroup;
use tokio::task::JoinHandle;

fn start_workers(n: usize) -> Vec<JoinHandle<()>> {
    (0..n).map(|_| tokio::spawn(async {})).collect()
}

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        workers => {
            let started = start_workers(4).len();
            assert_eq!(started, 4);
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
