//! Runs the thumbnails example (`examples/thumbnails.rs`): its whole `main`,
//! and its service with real PNGs over real HTTP, each test against a store
//! in a fresh temp dir: three versions stored as the answer describes them,
//! made at the same time; input that is not an image, and a store that
//! cannot take one version, leave the store as it was; a failing version
//! stops the others.
//!
//! Nothing depends on how long the image work takes: parallelism is asserted
//! on the order of the versions' start and end times, cancellation on the
//! step each version stopped after.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

#[path = "../examples/thumbnails.rs"]
mod thumbnails;

use thumbnails::{
    Refused, Service, StoreDir, Stored, Uploaded, break_bucket, contents, gradient_png,
};

/// Only guards against a hang if the service were broken; no assertion
/// depends on it.
const HANG_GUARD: Duration = Duration::from_secs(120);

/// The store of a fresh service: one empty directory per version.
const EMPTY: [&str; 3] = ["blur/", "resize/", "thumbnail/"];

async fn upload(service: &Service, image: &[u8]) -> Result<Uploaded, Refused> {
    tokio::time::timeout(HANG_GUARD, thumbnails::upload(service.addr, image))
        .await
        .expect("the service did not answer")
        .expect("the service answered in HTTP")
}

fn png(width: u32, height: u32) -> Vec<u8> {
    gradient_png(width, height).unwrap()
}

/// A 1600x1200 PNG, made once: its resize alone is long work for a branch.
fn big_png() -> &'static [u8] {
    static PNG: OnceLock<Vec<u8>> = OnceLock::new();
    PNG.get_or_init(|| png(1600, 1200))
}

/// The log line of `version`'s branch.
fn line<'a>(log: &'a [String], version: &str) -> &'a str {
    let prefix = format!("{version}: ");
    let mut lines = log.iter().filter(|l| l.starts_with(&prefix));
    let line = lines
        .next()
        .unwrap_or_else(|| panic!("no line for {version} in {log:?}"));
    assert!(lines.next().is_none(), "{version} logged twice: {log:?}");
    line
}

#[test]
fn the_example_runs_to_completion() {
    thumbnails::main().expect("the thumbnails example exits 0");
}

#[tokio::test]
async fn an_upload_stores_three_pngs_of_the_expected_sizes_as_the_answer_describes() {
    let store = StoreDir::new().unwrap();
    let service = Service::start(store.path()).await.unwrap();

    let uploaded = upload(&service, big_png()).await.unwrap();

    assert_eq!(uploaded.id, 1);
    let names: Vec<_> = uploaded.versions.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["resize", "thumbnail", "blur"], "branch order");
    let expected = [
        ("resize/1.png", 800, 600),
        ("thumbnail/1.png", 128, 96),
        ("blur/1.png", 800, 600),
    ];
    for (version, (path, width, height)) in uploaded.versions.iter().zip(expected) {
        assert_eq!(
            (version.path.as_str(), version.width, version.height),
            (path, width, height)
        );
        let file = store.path().join(path);
        assert_eq!(file.metadata().unwrap().len(), version.bytes, "{path}");
        let decoded = image::open(&file).unwrap();
        assert_eq!(
            (decoded.width(), decoded.height()),
            (width, height),
            "{path}"
        );
    }
    // The blur is not the resize under another name.
    let pixels = |path| image::open(store.path().join(path)).unwrap().into_rgb8();
    assert_ne!(pixels("blur/1.png"), pixels("resize/1.png"));

    // Published under their keys, and no temp file left beside them.
    assert_eq!(
        contents(store.path()).unwrap(),
        [
            "blur/",
            "blur/1.png",
            "resize/",
            "resize/1.png",
            "thumbnail/",
            "thumbnail/1.png"
        ]
    );
}

#[tokio::test]
async fn the_three_versions_run_at_the_same_time_not_one_after_another() {
    let store = StoreDir::new().unwrap();
    let service = Service::start(store.path()).await.unwrap();

    let uploaded = upload(&service, big_png()).await.unwrap();

    // Each branch records its own start before any work, and its end after
    // its file is written. Two orderings hold only if they ran at once, and
    // neither depends on the machine's speed or load:
    let versions = &uploaded.versions;
    let slowest = versions
        .iter()
        .max_by(|a, b| a.duration_ms().total_cmp(&b.duration_ms()))
        .unwrap();
    // 1. None waited for the slowest to finish before it started. With
    //    every branch started at once, this fails only if a thread of the
    //    blocking pool took longer to be scheduled than the slowest version
    //    takes to run (the blur: a resize of 1.9 Mpixels, then a 25-tap
    //    gaussian over 0.5 Mpixels); run one after another, it fails
    //    whenever the slowest is not the first.
    for v in versions {
        assert!(
            v.started_ms < slowest.finished_ms,
            "{} started after {} finished: {versions:#?}",
            v.name,
            slowest.name
        );
    }
    // 2. From the first start to the last end took less than the three
    //    durations added up. One after another, the span is at least their
    //    sum, on any machine; at once, it exceeds the slowest only by how
    //    late the last branch started, which would have to outlast the two
    //    other versions' whole work to break this.
    let span = versions
        .iter()
        .map(|v| v.finished_ms)
        .fold(f64::MIN, f64::max)
        - versions
            .iter()
            .map(|v| v.started_ms)
            .fold(f64::MAX, f64::min);
    let sum: f64 = versions.iter().map(Stored::duration_ms).sum();
    assert!(span < sum, "span {span} ms, sum {sum} ms: {versions:#?}");
}

#[tokio::test]
async fn an_upload_that_is_not_an_image_gets_422_and_stores_nothing() {
    let store = StoreDir::new().unwrap();
    let service = Service::start(store.path()).await.unwrap();
    let image = png(400, 300);

    for (body, error) in [
        (&image[..image.len() / 2], "unexpected end of file"),
        (
            b"plain text".as_slice(),
            "The image format could not be determined",
        ),
    ] {
        let refused = upload(&service, body).await.unwrap_err();
        assert_eq!(refused.status, 422);
        assert_eq!(refused.error, format!("task `decode` failed: {error}"));
    }

    // It never got as far as the versions: no branch ran, no file was written.
    assert_eq!(service.log(), Vec::<String>::new());
    assert_eq!(contents(store.path()).unwrap(), EMPTY);
}

#[tokio::test]
async fn a_version_that_cannot_be_stored_gets_500_naming_it_and_leaves_the_store_as_it_was() {
    let store = StoreDir::new().unwrap();
    let service = Service::start(store.path()).await.unwrap();
    break_bucket(store.path(), "blur").unwrap();
    let before = contents(store.path()).unwrap();

    let refused = upload(&service, &png(400, 300)).await.unwrap_err();

    assert_eq!(refused.status, 500);
    assert!(
        refused
            .error
            .starts_with("task `blur` failed: staging blur/1.png: "),
        "{refused}"
    );
    // The other two ran, and began by creating their temp files in buckets
    // that work. Those files are gone, whether their branch finished or was
    // stopped: the store is exactly as it was.
    let log = service.log();
    for version in ["resize", "thumbnail"] {
        let line = line(&log, version);
        assert!(
            line.starts_with(&format!("{version}: staged "))
                || line.starts_with(&format!("{version}: stopped after ")),
            "{line}"
        );
    }
    assert_eq!(contents(store.path()).unwrap(), before);
    assert_eq!(
        before,
        ["blur", "blur.aside/", "resize/", "thumbnail/"],
        "the broken bucket: a file where its directory goes"
    );
}

#[tokio::test]
async fn a_failing_version_stops_the_others_at_their_next_check() {
    let store = StoreDir::new().unwrap();
    let service = Service::start(store.path()).await.unwrap();
    break_bucket(store.path(), "thumbnail").unwrap();

    let refused = upload(&service, big_png()).await.unwrap_err();
    assert_eq!(refused.status, 500);
    assert!(
        refused.error.starts_with("task `thumbnail` failed: "),
        "{refused}"
    );

    // The thumbnail fails on its first step, before any image work. Resize
    // and blur each have a check after resizing the 1.9 Mpixel original:
    // they could only miss the cancellation by resizing, encoding and
    // writing before the thumbnail's thread got to run at all.
    let log = service.log();
    assert!(line(&log, "thumbnail").starts_with("thumbnail: staging thumbnail/1.png: "));
    for version in ["resize", "blur"] {
        let line = line(&log, version);
        assert!(
            line.starts_with(&format!("{version}: stopped after "))
                && line.ends_with(": cancelled: task `thumbnail` failed"),
            "{line}"
        );
    }
    assert_eq!(
        files(store.path()),
        ["thumbnail"],
        "nothing but the broken bucket"
    );
}

/// The files in `store`, directories left out.
fn files(store: &Path) -> Vec<String> {
    let mut files = contents(store).unwrap();
    files.retain(|entry| !entry.ends_with('/'));
    files
}
