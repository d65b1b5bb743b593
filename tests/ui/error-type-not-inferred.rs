use errgroup::errgroup;

async fn fetch(url: &str) -> std::io::Result<String> {
    Ok(url.to_owned())
}

async fn run() -> anyhow::Result<()> {
    let (_a, _b) = errgroup! {
        a => Ok(fetch("https://example.com/a").await?),
        b => {
            let page = fetch("https://example.com/b").await?;
            Ok(page.len())
        },
    }?;
    Ok(())
}

fn main() {}
