use errgroup::errgroup;

async fn run() -> anyhow::Result<()> {
    errgroup! {}?;
    Ok(())
}

fn main() {}
