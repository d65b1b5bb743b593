use errgroup::errgroup;
// Written from the crate root: certain to be tokio's, so reported by path.

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            let _handle = ::tokio::spawn(async {});
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
