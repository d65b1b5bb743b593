// A receiver read as a `Stream`, through another crate's trait method, in
// a select! future: no recv in sight.
use std::pin::Pin;

use errgroup::errgroup;
use futures::StreamExt;

async fn run(mut events: Pin<Box<async_channel::Receiver<u32>>>) -> anyhow::Result<u32> {
    let (first,) = errgroup! {
        type Error = anyhow::Error;
        read => Ok(tokio::select! {
            Some(n) = events.next() => n,
            else => 0,
        }),
    }?;
    Ok(first)
}

fn main() {}
