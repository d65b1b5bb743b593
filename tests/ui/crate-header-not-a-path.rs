use errgroup::errgroup;

async fn quoted() -> anyhow::Result<()> {
    errgroup! {
        crate = "errgroup";
        a => Ok::<_, anyhow::Error>(()),
    }?;
    Ok(())
}

async fn called() -> anyhow::Result<()> {
    errgroup! {
        crate = errgroup();
        a => Ok::<_, anyhow::Error>(()),
    }?;
    Ok(())
}

fn main() {}
