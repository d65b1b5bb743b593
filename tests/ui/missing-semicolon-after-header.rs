use errgroup::errgroup;
use std::time::Duration;

async fn fetch(url: &str) -> anyhow::Result<String> {
    Ok(url.to_owned())
}

async fn run() -> anyhow::Result<()> {
    let (_page,) = errgroup! {
        timeout = Duration::from_secs(2)
        page => fetch("https://example.com").await,
    }?;
    Ok(())
}

fn main() {}
