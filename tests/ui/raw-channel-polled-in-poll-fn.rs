// A receiver polled by hand in a `poll_fn` closure.
use std::future::poll_fn;

use errgroup::errgroup;
use tokio::sync::mpsc;

async fn run(mut rx: mpsc::Receiver<u32>) -> anyhow::Result<Option<u32>> {
    let (got,) = errgroup! {
        type Error = anyhow::Error;
        poll => {
            let got = poll_fn(|cx| rx.poll_recv(cx)).await;
            Ok(got)
        },
    }?;
    Ok(got)
}

fn main() {}
