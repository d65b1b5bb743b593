use errgroup::errgroup;

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            let _handle = tokio::spawn(async {});
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
