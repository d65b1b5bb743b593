//! Smoke test: every branch kind in one group.
use errgroup::errgroup;
use std::time::Duration;

#[tokio::test]
async fn smoke() {
    let local = String::from("hi");
    let result = errgroup! {
        a => Ok::<_, anyhow::Error>(local.len()),
        b => { ctx.sleep(Duration::from_millis(1)).await?; Ok(local.clone()) },
        #[spawn] c => { let _ = ctx.task(); Ok(3u8) },
        #[blocking] d => Ok(ctx.task().to_string()),
    };
    let (len, copy, spawned, name) = result.unwrap();
    assert_eq!(
        (len, copy.as_str(), spawned, name.as_str()),
        (2, "hi", 3, "d")
    );
}
