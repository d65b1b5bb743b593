use errgroup::errgroup;

// Named like a constructor and a spawn, but neither: their results are
// generic, and only later code fixes them.
fn unbounded<T: Default>() -> T {
    T::default()
}

fn spawn<T: Default>(_job: &str) -> T {
    T::default()
}

async fn run() -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        work => {
            let v = unbounded();
            let n: u32 = v;
            let w = spawn("job");
            let s: String = w;
            Ok((n, s))
        },
    }?;
    Ok(())
}

fn main() {}
