use errgroup::errgroup;

async fn count(url: &str) -> anyhow::Result<u64> {
    Ok(url.len() as u64)
}

async fn run() -> anyhow::Result<u64> {
    let (a, b) = errgroup! {
        limit = 0;
        a => count("https://example.com/a").await,
        b => count("https://example.com/b").await,
    }?;
    Ok(a + 1 + b)
}

fn main() {}
