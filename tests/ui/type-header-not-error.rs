use errgroup::errgroup;

async fn run() -> anyhow::Result<()> {
    let (_n,) = errgroup! {
        type Err = anyhow::Error;
        n => Ok(1),
    }?;
    Ok(())
}

fn main() {}
