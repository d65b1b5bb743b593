use errgroup::errgroup;

// A branch that never yields `Ok` has the value `()`: a caller that wants
// another type says so in the branch, `Err::<u32, _>("boom")`.
async fn run() -> Result<(u32, u32), errgroup::Error<&'static str>> {
    errgroup! {
        ok => Ok(1),
        failing => Err("boom"),
    }
}

fn main() {}
