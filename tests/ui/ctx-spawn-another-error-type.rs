use errgroup::errgroup;

async fn read(path: &'static str) -> std::io::Result<()> {
    std::fs::metadata(path).map(drop)
}

#[derive(Debug)]
struct TaskError;

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        // A future whose error type is another than the group's.
        reader => {
            ctx.spawn("read", read("/etc/hosts"))?;
            Ok(())
        },
        // An async block whose `Err` is of another type.
        writer => {
            ctx.spawn("write", async { Err(TaskError) })?;
            Ok(())
        },
    }?;
    Ok(())
}

fn main() {}
