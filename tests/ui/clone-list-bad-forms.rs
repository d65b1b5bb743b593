use std::sync::Arc;

use errgroup::errgroup;

struct App {
    db: Arc<String>,
}

async fn run(app: &App, db: Arc<String>) {
    let _ = errgroup! {
        type Error = ();
        #[spawn(clone())] empty => Ok(()),
        #[spawn()] no_options => Ok(()),
        #[spawn(clone(app.db))] field => Ok(()),
        #[blocking(clone(db, db))] twice => Ok(()),
        #[spawn(clone(db), clone(db))] two_lists => Ok(()),
        #[spawn(clon(db))] misspelled => Ok(()),
        #[spawn(copy(db))] unknown => Ok(()),
        #[blocking(clone(ctx))] own_ctx => Ok(()),
        #[spawn(clone = db)] not_a_list => Ok(()),
        #[spawn(clone(db,,))] bad_list => Ok(()),
    };
}

fn main() {}
