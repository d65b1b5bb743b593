use errgroup::errgroup;

fn checksum(data: &[u8]) -> anyhow::Result<u32> {
    Ok(data.iter().map(|&b| u32::from(b)).sum())
}

async fn run(data: Vec<u8>) -> anyhow::Result<()> {
    let (_sum,) = errgroup! {
        #[spawn]
        #[blocking]
        sum => checksum(&data),
    }?;
    Ok(())
}

fn main() {}
