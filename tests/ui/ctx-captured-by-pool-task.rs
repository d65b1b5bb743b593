use errgroup::errgroup;

async fn run(listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        accept => {
            let conns = ctx.pool().limit(8);
            while let Ok(accepted) = ctx.run(listener.accept()).await {
                let (socket, _) = accepted?;
                // The connection would outlive the branch whose `ctx` it borrows.
                conns.spawn("conn", async move {
                    ctx.cancelled().await;
                    drop(socket);
                    Ok(())
                })
                .await?;
            }
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {
    let _ = run;
}
