use errgroup::errgroup;

async fn run() -> anyhow::Result<()> {
    let (_a, _b) = errgroup! {
        a => {
            let _scope = &__errgroup_scope;
            Ok::<_, anyhow::Error>(1)
        },
        b => {
            let _other = &__errgroup_ctx0;
            Ok(2)
        },
    }?;
    Ok(())
}

fn main() {}
