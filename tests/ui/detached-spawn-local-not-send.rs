// A `!Send` future started with `spawn_local`: the fix is a nested group.
use std::rc::Rc;

use errgroup::errgroup;

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        local => {
            let shared = Rc::new(5);
            let handle = tokio::task::spawn_local(async move { *shared + 1 });
            drop(handle);
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
