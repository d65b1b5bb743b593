use errgroup::errgroup;

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            let (_tx, _rx) = flume::unbounded::<u32>();
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
