use errgroup::errgroup;
use std::collections::HashMap;
use tokio::sync::mpsc;

struct Worker {
    tx: mpsc::Sender<u32>,
}

struct Pool {
    txs: Vec<mpsc::Sender<u32>>,
    workers: Vec<Worker>,
    by_name: HashMap<String, mpsc::UnboundedSender<u32>>,
}

impl Pool {
    async fn run(&self, i: usize, name: String) -> anyhow::Result<()> {
        errgroup! {
            type Error = anyhow::Error;
            work => {
                self.txs[i].send(1).await?;
                self.workers[i].tx.send(2).await?;
                self.by_name[&name].send(3)?;
                self.txs[i + 1].send(4).await?;
                Ok(())
            },
        }?;
        Ok(())
    }
}

fn main() {}
