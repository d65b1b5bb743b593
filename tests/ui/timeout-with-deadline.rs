use errgroup::errgroup;
use std::time::Duration;
use tokio::time::Instant;

async fn fetch(url: &str) -> anyhow::Result<String> {
    Ok(url.to_owned())
}

async fn run() -> anyhow::Result<()> {
    let (_page,) = errgroup! {
        timeout = Duration::from_secs(2);
        deadline = Instant::now() + Duration::from_secs(5);
        page => fetch("https://example.com").await,
    }?;
    Ok(())
}

fn main() {}
