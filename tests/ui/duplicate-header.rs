use errgroup::errgroup;

async fn fetch(url: &str) -> anyhow::Result<String> {
    Ok(url.to_owned())
}

async fn run() -> anyhow::Result<()> {
    let (_a, _b) = errgroup! {
        limit = 2;
        limit = 4;
        a => fetch("https://example.com/a").await,
        b => fetch("https://example.com/b").await,
    }?;
    Ok(())
}

fn main() {}
