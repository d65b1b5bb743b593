use errgroup::Ctx;

// A `&Ctx` does not know its group's error type: nothing fixes the task's.
async fn audit(ctx: &Ctx) -> Result<(), errgroup::Cancelled> {
    ctx.spawn("audit", async { Ok(()) })?;
    Ok(())
}

fn main() {
    let _ = audit;
}
