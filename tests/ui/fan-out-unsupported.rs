use errgroup::errgroup;

async fn fetch(url: &str) -> anyhow::Result<String> {
    Ok(url.to_owned())
}

async fn run(urls: Vec<String>) -> anyhow::Result<()> {
    let (_pages,) = errgroup! {
        limit = 8;
        pages => for url in urls {
            fetch(&url).await
        },
    }?;
    Ok(())
}

fn main() {}
