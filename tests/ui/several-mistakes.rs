use errgroup::errgroup;

async fn fetch(url: &str) -> anyhow::Result<String> {
    Ok(url.to_owned())
}

async fn run() -> anyhow::Result<()> {
    let (_a, _b, _c) = errgroup! {
        limit = 0;
        a => fetch("https://example.com/a").await,
        a => fetch("https://example.com/b").await,
        #[detach]
        c => fetch("https://example.com/c").await,
    }?;
    Ok(())
}

fn main() {}
