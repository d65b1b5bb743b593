use errgroup::errgroup;
struct Pipes {
    out: tokio::sync::broadcast::Sender<u32>,
}

async fn run(pipes: Pipes) -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            pipes.out.send(1)?;
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
