use errgroup::errgroup;

async fn fetch(url: &str) -> anyhow::Result<String> {
    Ok(url.to_owned())
}

async fn run() -> anyhow::Result<()> {
    let (_a, _b) = errgroup! {
        a => fetch("https://example.com/a").await,
        b =>
    }?;
    Ok(())
}

fn main() {}
