use errgroup::errgroup;
// Written from the crate root: certain to be the crate, so reported by path
// (without `::` it is checked by type, which needs the cargo feature).

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            let (_tx, _rx) = ::futures::channel::mpsc::channel::<u32>(1);
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
