// A watch channel made by its sender's own constructor, not `channel()`.
use errgroup::errgroup;
use tokio::sync::watch;

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        config => {
            let settings = watch::Sender::new(0_u32);
            let _ = settings.send_replace(1);
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
