// A std receiver read as an iterator, in a `for` loop inside the branch.
use errgroup::errgroup;
use std::sync::mpsc;

async fn run(lines: mpsc::Receiver<String>) -> anyhow::Result<usize> {
    let (total,) = errgroup! {
        type Error = anyhow::Error;
        count => {
            let mut total = 0;
            for line in lines.iter() {
                total += line.len();
            }
            Ok(total)
        },
    }?;
    Ok(total)
}

fn main() {}
