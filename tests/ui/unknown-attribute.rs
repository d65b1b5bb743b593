use errgroup::errgroup;

async fn fetch(url: &str) -> anyhow::Result<String> {
    Ok(url.to_owned())
}

async fn run() -> anyhow::Result<()> {
    let (_page,) = errgroup! {
        #[detach]
        page => fetch("https://example.com").await,
    }?;
    Ok(())
}

fn main() {}
