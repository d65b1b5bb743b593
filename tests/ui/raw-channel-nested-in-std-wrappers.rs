// Endpoints several wrappers deep: a map of vectors of options, and a
// tuple, each named as a whole.
use std::collections::HashMap;

use errgroup::errgroup;
use tokio::sync::mpsc;

async fn run(
    routes: HashMap<u8, Vec<Option<mpsc::Sender<u32>>>>,
    pair: (u8, mpsc::Receiver<u32>),
) -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        route => {
            let count = routes.len() + usize::from(pair.0);
            let _ = count;
            let moved = routes;
            drop(moved);
            Ok(())
        },
        keep => {
            let held = &pair;
            let _ = held.0;
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
