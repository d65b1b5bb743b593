use errgroup::errgroup;

async fn fetch(url: &str) -> anyhow::Result<String> {
    Ok(url.to_owned())
}

async fn run() -> anyhow::Result<()> {
    let (_a, _b) = errgroup! {
        page => fetch("https://example.com/a").await,
        page => fetch("https://example.com/b").await,
    }?;
    Ok(())
}

fn main() {}
