use errgroup::errgroup;

async fn run() -> anyhow::Result<()> {
    errgroup! {
        shutdown_on = 5;
        a => Ok::<_, anyhow::Error>(()),
    }?;
    Ok(())
}

fn main() {}
