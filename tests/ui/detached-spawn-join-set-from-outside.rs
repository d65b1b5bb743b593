// Tasks added to a `JoinSet` the group does not own.
use errgroup::errgroup;
use tokio::task::JoinSet;

async fn run(pool: &mut JoinSet<u32>) -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        submit => {
            pool.spawn(async { 1 });
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
