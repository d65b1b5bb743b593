// A channel constructor handed on as a function value.
use errgroup::errgroup;
use tokio::sync::mpsc;

async fn run() -> anyhow::Result<usize> {
    let (n,) = errgroup! {
        type Error = anyhow::Error;
        pairs => {
            let made: Vec<_> = std::iter::repeat_with(mpsc::unbounded_channel::<u8>).take(3).collect();
            Ok(made.len())
        },
    }?;
    Ok(n)
}

fn main() {}
