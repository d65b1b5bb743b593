use errgroup::errgroup;

async fn run(rxs: Vec<std::sync::mpsc::Receiver<u32>>) -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            let _all: Vec<_> = rxs.iter().map(|rx| rx.try_recv()).collect();
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
