//! Runs the pipe example (`examples/pipe.rs`): its whole `main`, and the
//! FIFO download against a healthy store and one that fails half-way.

use std::time::Duration;

use errgroup::{Cause, TaskName};

#[path = "../examples/pipe.rs"]
mod pipe;

use pipe::{SaveEnd, Store, Workdir, download, object};

/// Only guards against a hang if cancellation were broken; no assertion
/// depends on it.
const HANG_GUARD: Duration = Duration::from_secs(60);

#[test]
fn the_example_runs_to_completion() {
    pipe::main().expect("the pipe example exits 0");
}

#[tokio::test]
async fn a_healthy_store_gives_a_byte_identical_file() {
    let object = object((3 << 20) + 12_345); // many times the FIFO's buffer
    let store = Store::start(object.clone(), None).await.unwrap();
    let dir = Workdir::new().unwrap();

    let download = tokio::time::timeout(HANG_GUARD, download(store.addr, &dir))
        .await
        .expect("the download did not finish")
        .unwrap();

    assert_eq!(download.result.unwrap(), object.len() as u64);
    // `save` ended on EOF, after the fetch closed its write end.
    assert_eq!(download.save, SaveEnd::Eof(object.len() as u64));
    assert!(
        std::fs::read(dir.output()).unwrap() == object,
        "files differ"
    );
}

#[tokio::test]
async fn a_store_failure_half_way_returns_the_store_error_and_cancels_the_reader() {
    let object = object(1 << 20);
    let half = object.len() / 2;
    let store = Store::start(object.clone(), Some(half)).await.unwrap();
    let dir = Workdir::new().unwrap();

    let download = tokio::time::timeout(HANG_GUARD, download(store.addr, &dir))
        .await
        .expect("errgroup! did not return: the reader was not released")
        .unwrap();
    let err = download.result.expect_err("the store broke off half-way");

    // The caller gets the store's error, from the fetch branch: not a broken
    // pipe, not the reader's cancellation.
    assert_eq!(err.task().unwrap(), "fetch");
    assert_eq!(
        err.cause(),
        Cause::Failed {
            task: TaskName::new("fetch")
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "task `fetch` failed: store: connection closed after {half} of {} bytes",
            object.len()
        )
    );
    assert!(!format!("{err:?}").to_lowercase().contains("broken pipe"));

    // The reader was blocked on the FIFO (the failed fetch kept its write end
    // open, so no EOF could come): the group's cancellation released it,
    // with the fetch's failure as the cause, and it removed its partial file.
    assert_eq!(
        download.save,
        SaveEnd::Cancelled(Cause::Failed {
            task: TaskName::new("fetch")
        })
    );
    assert!(!dir.output().exists(), "a partial file was left behind");
}

#[tokio::test]
async fn the_work_directory_is_removed() {
    let dir = Workdir::new().unwrap();
    let path = dir.output().parent().unwrap().to_owned();
    assert!(path.starts_with(std::env::temp_dir()));
    assert!(path.is_dir());
    drop(dir);
    assert!(!path.exists());
}
