use errgroup::errgroup;

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        worker => {
            // The task would outlive the branch whose `ctx` it borrows.
            ctx.spawn("tick", async move {
                ctx.cancelled().await;
                Ok(())
            })?;
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {
    let _ = run();
}
