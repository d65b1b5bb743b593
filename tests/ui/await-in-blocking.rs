use errgroup::errgroup;

async fn fetch(url: &str) -> anyhow::Result<Vec<u8>> {
    Ok(url.as_bytes().to_vec())
}

async fn run() -> anyhow::Result<()> {
    let (_len,) = errgroup! {
        type Error = anyhow::Error;
        #[blocking]
        len => {
            let data = fetch("https://example.com").await?;
            Ok(data.len())
        },
    }?;
    Ok(())
}

fn main() {}
