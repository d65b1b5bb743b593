//! What a group tells `tracing` (the `tracing` cargo feature): run with
//! `cargo run --example traced --features tracing`.
//!
//! One request fans out to a profile lookup and three shard reads; shard 1
//! fails, which cancels the others. Every line below carries the span path
//! the application would see: the request, the group at its call site,
//! then the branch or item by the name errors use (`shards[1]`).

use std::time::Duration;

use errgroup::errgroup;
use tracing::{Instrument, info, info_span};

async fn read_shard(ctx: &errgroup::Ctx, shard: u32) -> anyhow::Result<u32> {
    info!(shard, "reading");
    if shard == 1 {
        anyhow::bail!("shard {shard} is offline");
    }
    ctx.sleep(Duration::from_millis(50)).await?;
    Ok(shard * 100)
}

async fn handle(user: u32) -> anyhow::Result<(String, Vec<u32>)> {
    let (profile, shards) = errgroup! {
        timeout = Duration::from_secs(1);
        profile => {
            info!("looking up the profile");
            Ok::<_, anyhow::Error>(format!("user {user}"))
        },
        shards => for shard in 0..3 {
            read_shard(ctx, shard).await
        },
    }?;
    Ok((profile, shards))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    tracing_subscriber::fmt()
        .without_time()
        .with_target(false)
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .init();
    let result = handle(7).instrument(info_span!("request", user = 7)).await;
    info!(error = %result.unwrap_err(), "request failed");
}
