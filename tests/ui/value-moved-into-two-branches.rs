use std::sync::Arc;

use errgroup::errgroup;

// Each `#[spawn]` or `#[blocking]` branch moves what it names: the second
// branch reading `db` uses a moved value. rustc's "value moved here" points
// at the first attribute; `#[spawn(clone(db))]` is the fix.
async fn run(db: Arc<String>) -> Result<(usize, usize), errgroup::Error<()>> {
    errgroup! {
        #[spawn] a => Ok(db.len()),
        #[blocking] b => Ok(db.len()),
    }
}

fn main() {}
