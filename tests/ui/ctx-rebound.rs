use errgroup::errgroup;

async fn fetch(ctx: &errgroup::Ctx, url: &str) -> anyhow::Result<String> {
    ctx.check()?;
    Ok(url.to_owned())
}

async fn run(outer: &errgroup::Ctx) -> anyhow::Result<()> {
    let (_page,) = errgroup! {
        page => {
            let ctx = outer;
            fetch(ctx, "https://example.com").await
        },
    }?;
    Ok(())
}

fn main() {}
