use errgroup::errgroup;

async fn fetch(url: &str) -> anyhow::Result<usize> {
    Ok(url.len())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let urls = vec!["a".to_string(), "b".to_string()];
    let (_sizes,) = errgroup! {
        limit = 8;
        sizes => for ctx in urls { fetch(&ctx).await },
    }?;
    Ok(())
}
