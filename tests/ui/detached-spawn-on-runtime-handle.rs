// A spawn that is a method call on the runtime's handle.
use errgroup::errgroup;
use tokio::runtime::Handle;

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        background => {
            Handle::current().spawn(async { 5 });
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
