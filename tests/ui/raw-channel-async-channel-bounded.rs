use errgroup::errgroup;

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            let (_tx, _rx) = async_channel::bounded::<u32>(1);
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
