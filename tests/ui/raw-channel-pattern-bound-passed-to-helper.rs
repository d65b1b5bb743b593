// A name bound by a pattern inside the branch, its field handed to a
// helper: checked by its type, though the items it came from (a type of
// the user's) are not looked into.
use errgroup::errgroup;
use tokio::sync::mpsc;

struct Route {
    name: &'static str,
    to: mpsc::Sender<u32>,
}

async fn forward(to: &mpsc::Sender<u32>, n: u32) -> anyhow::Result<()> {
    to.send(n).await?;
    Ok(())
}

async fn run(routes: Vec<Route>) -> anyhow::Result<()> {
    errgroup! {
        type Error = anyhow::Error;
        fan => {
            for route in routes {
                if !route.name.is_empty() {
                    forward(&route.to, 1).await?;
                }
            }
            Ok(())
        },
        matched => {
            match Route::first() {
                Some(Route { to, .. }) => drop(to),
                None => {}
            }
            Ok(())
        },
    }?;
    Ok(())
}

impl Route {
    fn first() -> Option<Route> {
        None
    }
}

fn main() {}
