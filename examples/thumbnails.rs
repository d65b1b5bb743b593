//! Thumbnails: parallel versions of an upload, all or nothing.
//!
//! An HTTP service on 127.0.0.1 (axum) takes an image as the body of
//! `POST /images`, decodes it, and makes three versions of it at once, each a
//! `#[blocking]` branch of one `errgroup!` on tokio's blocking pool:
//!
//! - `resize`: fits the image in 800x800;
//! - `thumbnail`: fits it in 128x128;
//! - `blur`: a gaussian blur (sigma 4) of the 800x800 fit, the slowest.
//!
//! Each version is stored as a PNG in a local directory standing in for a
//! bucket (`resize/1.png`, `thumbnail/1.png`, `blur/1.png`), and the answer is
//! JSON listing every version's path, size and when it ran. The request takes
//! about as long as the slowest version, not their sum.
//!
//! All or nothing: every version is first written under a temporary name, and
//! only once the whole group has succeeded are they renamed to their keys. If
//! one version fails, the group cancels the others, which stop at their next
//! `ctx` check, and every temporary file is removed: the store never holds a
//! partial upload. Input that is not an image gets a 422, a store failure a
//! 500, each with the group's error, which names the failed branch.
//!
//! ```text
//! cargo run --example thumbnails
//! ```

use std::fs::{self, File};
use std::io::{Cursor, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context as _, bail, ensure};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use errgroup::{Ctx, errgroup};
use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, RgbImage};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[tokio::main(flavor = "current_thread")]
pub(crate) async fn main() -> anyhow::Result<()> {
    let store = StoreDir::new()?;
    let service = Service::start(store.path()).await?;
    println!(
        "store:   {} (stands in for a bucket)",
        store.path().display()
    );
    println!("service: listening on http://{}/images", service.addr);
    let png = gradient_png(1024, 768)?;

    println!("\nupload 1: a 1024x768 PNG ({} bytes)", png.len());
    let start = Instant::now();
    let uploaded = upload(service.addr, &png)
        .await?
        .map_err(anyhow::Error::msg)?;
    let total = start.elapsed().as_secs_f64() * 1e3;
    println!("  200 OK in {total:.0} ms, versions in branch order:");
    for v in &uploaded.versions {
        println!(
            "  {:<9} {:<16} {:>4}x{:<4} {:>7} bytes   ran {:>4.0} ms .. {:>4.0} ms",
            v.name, v.path, v.width, v.height, v.bytes, v.started_ms, v.finished_ms
        );
    }
    let slowest = uploaded
        .versions
        .iter()
        .map(Stored::duration_ms)
        .fold(0.0, f64::max);
    let sum: f64 = uploaded.versions.iter().map(Stored::duration_ms).sum();
    println!("  about the slowest version ({slowest:.0} ms), not their sum ({sum:.0} ms)");
    service.log(); // upload 1's three "staged" lines: the table says as much
    let before = contents(store.path())?;

    println!("\nupload 2: the same PNG, cut in half");
    let Err(refused) = upload(service.addr, &png[..png.len() / 2]).await? else {
        bail!("half a PNG is not an image");
    };
    println!("  {refused}");

    println!("\nupload 3: the same PNG, with the thumbnail bucket broken");
    break_bucket(store.path(), "thumbnail")?;
    let Err(refused) = upload(service.addr, &png).await? else {
        bail!("the thumbnail bucket is broken");
    };
    println!("  {refused}");
    // The group waited for every branch before answering: all of them
    // have logged by now.
    for line in service.log() {
        println!("  server: {line}");
    }
    repair_bucket(store.path(), "thumbnail")?;

    let after = contents(store.path())?;
    ensure!(after == before, "a failed upload changed the store");
    println!("\nthe store holds upload 1's versions, nothing of uploads 2 and 3:");
    println!("  {}", after.join(" "));
    Ok(())
}

// ---------------------------------------------------------------------------
// The service.

/// The versions made of every upload, in branch order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    Resize,
    Thumbnail,
    Blur,
}

impl Version {
    const ALL: [Version; 3] = [Version::Resize, Version::Thumbnail, Version::Blur];

    /// Its branch's name, and its bucket in the store.
    fn name(self) -> &'static str {
        match self {
            Version::Resize => "resize",
            Version::Thumbnail => "thumbnail",
            Version::Blur => "blur",
        }
    }

    /// Its image work, as a log line names it.
    fn work(self) -> &'static str {
        match self {
            Version::Resize => "resizing",
            Version::Thumbnail => "thumbnailing",
            Version::Blur => "blurring",
        }
    }
}

/// What `POST /images` answers on success.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Uploaded {
    pub(crate) id: u64,
    /// In branch order: resize, thumbnail, blur.
    pub(crate) versions: Vec<Stored>,
}

/// One stored version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Stored {
    pub(crate) name: String,
    /// Its key: the path of its file relative to the store.
    pub(crate) path: String,
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// The size of its file.
    pub(crate) bytes: u64,
    /// When its branch started and finished, in ms since the request arrived.
    pub(crate) started_ms: f64,
    pub(crate) finished_ms: f64,
}

impl Stored {
    /// How long its branch ran, in ms.
    pub(crate) fn duration_ms(&self) -> f64 {
        self.finished_ms - self.started_ms
    }
}

/// A running service; it stops accepting connections when dropped.
#[derive(Debug)]
pub(crate) struct Service {
    pub(crate) addr: SocketAddr,
    app: Arc<App>,
    serve: JoinHandle<()>,
}

#[derive(Debug)]
struct App {
    store: PathBuf,
    next_id: AtomicU64,
    /// One line per branch that ended: what it stored, or why it did not.
    log: Mutex<Vec<String>>,
}

impl Service {
    /// Serves `POST /images` on an ephemeral port of 127.0.0.1, storing into
    /// `store`, which gets one directory (bucket) per version.
    pub(crate) async fn start(store: &Path) -> std::io::Result<Service> {
        for version in Version::ALL {
            fs::create_dir_all(store.join(version.name()))?;
        }
        let app = Arc::new(App {
            store: store.to_owned(),
            next_id: AtomicU64::new(1),
            log: Mutex::default(),
        });
        let router = Router::new()
            .route("/images", post(upload_image))
            // axum's default of 2 MB is smaller than many photos.
            .layer(DefaultBodyLimit::max(64 << 20))
            .with_state(Arc::clone(&app));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let serve = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Service { addr, app, serve })
    }

    /// The branches' log lines since the last call.
    pub(crate) fn log(&self) -> Vec<String> {
        std::mem::take(&mut self.app.log.lock().unwrap())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.serve.abort();
    }
}

/// `POST /images`: the body is the image.
async fn upload_image(State(app): State<Arc<App>>, body: Bytes) -> Result<Response, Failure> {
    let arrived = Instant::now();
    // Decoding is CPU work too: a one-branch group keeps it off the runtime's
    // threads, and its error names it (`task `decode` failed: ..`).
    let (image,) = errgroup! {
        #[blocking] decode => image::load_from_memory(&body),
    }
    .map_err(|err| Failure::new(StatusCode::UNPROCESSABLE_ENTITY, &err))?;

    let id = app.next_id.fetch_add(1, Ordering::Relaxed);
    let upload = Arc::new(Upload {
        id,
        image,
        arrived,
        app,
    });
    // Where errgroup matters: the first version to fail cancels `ctx`, so the
    // others stop at their next check instead of finishing work that will be
    // thrown away; and the group returns only once all three have returned,
    // so no branch is still writing into the store when we clean up.
    // `#[blocking]` bodies own what they use: `clone(upload)` gives each
    // its own handle.
    let made = errgroup! {
        #[blocking(clone(upload))] resize    => upload.make(ctx, Version::Resize),
        #[blocking(clone(upload))] thumbnail => upload.make(ctx, Version::Thumbnail),
        #[blocking(clone(upload))] blur      => upload.make(ctx, Version::Blur),
    };
    // On failure the versions that were made are dropped with the group's
    // result here, and each one's `Staged` removes its temporary file.
    let (resize, thumbnail, blur) =
        made.map_err(|err| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, &err))?;

    let (staged, versions) = [resize, thumbnail, blur]
        .into_iter()
        .map(|made| (made.staged, made.stored))
        .unzip();
    publish(staged).map_err(|err| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, &err))?;
    Ok(axum::Json(Uploaded { id, versions }).into_response())
}

/// One upload, shared by its three branches.
#[derive(Debug)]
struct Upload {
    id: u64,
    image: DynamicImage,
    arrived: Instant,
    app: Arc<App>,
}

/// A version made and staged, not yet visible under its key.
#[derive(Debug)]
struct Made {
    staged: Staged,
    stored: Stored,
}

impl Upload {
    /// A `#[blocking]` branch: makes `version` and stages it, and logs how
    /// that ended.
    fn make(&self, ctx: &Ctx, version: Version) -> anyhow::Result<Made> {
        let made = self.try_make(ctx, version);
        let line = match &made {
            Ok(made) => format!("{}: staged {}", version.name(), made.stored.path),
            Err(err) => format!("{}: {err:#}", version.name()),
        };
        self.app.log.lock().unwrap().push(line);
        made
    }

    fn try_make(&self, ctx: &Ctx, version: Version) -> anyhow::Result<Made> {
        let started = self.arrived.elapsed();
        // Once a sibling has failed, whatever this branch would still do is
        // thrown away: it checks between steps, and stops.
        let checkpoint = |done: &str| ctx.check().with_context(|| format!("stopped after {done}"));
        let key = format!("{}/{}.png", version.name(), self.id);
        // Staging first: a broken store fails the upload before anyone spends
        // CPU on it.
        let (staged, mut file) =
            Staged::create(&self.app.store, &key).with_context(|| format!("staging {key}"))?;
        checkpoint("staging")?;

        let image = match version {
            Version::Resize => self.image.resize(800, 800, FilterType::Triangle),
            Version::Thumbnail => self.image.thumbnail(128, 128),
            Version::Blur => {
                let fit = self.image.resize(800, 800, FilterType::Triangle);
                checkpoint("resizing")?;
                fit.blur(4.0)
            }
        };
        checkpoint(version.work())?;
        let mut png = Vec::new();
        image.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)?;
        checkpoint("encoding")?;
        file.write_all(&png)?;
        // On disk before `publish` shows it under its key: a crash never
        // leaves a torn file there.
        file.sync_all()?;

        let stored = Stored {
            name: version.name().to_owned(),
            path: key,
            width: image.width(),
            height: image.height(),
            bytes: png.len() as u64,
            started_ms: started.as_secs_f64() * 1e3,
            finished_ms: self.arrived.elapsed().as_secs_f64() * 1e3,
        };
        Ok(Made { staged, stored })
    }
}

/// A file written under a temporary name beside its key, which readers of
/// the store ignore. Dropped unpublished (a sibling failed, the request was
/// dropped mid-way) it removes its file: the drop guard that makes an upload
/// all or nothing.
#[derive(Debug)]
struct Staged {
    temp: Option<PathBuf>,
    path: PathBuf,
}

impl Staged {
    fn create(store: &Path, key: &str) -> std::io::Result<(Staged, File)> {
        let path = store.join(key);
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let temp = path.with_file_name(format!(".{name}.tmp"));
        // `create_new`: a temp file is never shared by two requests.
        let file = File::options().write(true).create_new(true).open(&temp)?;
        let staged = Staged {
            temp: Some(temp),
            path,
        };
        Ok((staged, file))
    }

    /// Renames the file to its key; on failure it stays staged, and is removed
    /// when dropped.
    fn publish(mut self) -> std::io::Result<PathBuf> {
        if let Some(temp) = &self.temp {
            fs::rename(temp, &self.path)?;
        }
        self.temp = None;
        Ok(std::mem::take(&mut self.path))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            let _ = fs::remove_file(temp);
        }
    }
}

/// Renames every staged file to its key, or none: should a rename fail, the
/// ones already renamed are removed again, and the rest remove themselves as
/// they are dropped. A rename within a directory is cheap metadata work, fine
/// on the runtime's thread.
fn publish(staged: Vec<Staged>) -> std::io::Result<()> {
    let mut published = Vec::new();
    for file in staged {
        match file.publish() {
            Ok(path) => published.push(path),
            Err(err) => {
                for path in published {
                    let _ = fs::remove_file(path);
                }
                return Err(err);
            }
        }
    }
    Ok(())
}

/// An error answer, `{"error": ".."}`.
#[derive(Debug)]
struct Failure(StatusCode, String);

impl Failure {
    fn new(status: StatusCode, err: &dyn std::fmt::Display) -> Failure {
        // `{:#}`: the group's error with its branch's whole anyhow chain.
        Failure(status, format!("{err:#}"))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, axum::Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

// ---------------------------------------------------------------------------
// The client: one `POST` over a fresh connection, by hand.

/// An error answer: its status and the service's error.
#[derive(Debug, Deserialize)]
pub(crate) struct Refused {
    #[serde(skip)]
    pub(crate) status: u16,
    pub(crate) error: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.error)
    }
}

/// `POST /images` with `image` as the body.
pub(crate) async fn upload(
    addr: SocketAddr,
    image: &[u8],
) -> anyhow::Result<Result<Uploaded, Refused>> {
    let mut stream = TcpStream::connect(addr).await?;
    let head = format!(
        "POST /images HTTP/1.1\r\nHost: {addr}\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        image.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(image).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("malformed response")?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .context("no status in the response")?
        .parse()?;
    if status == 200 {
        return Ok(Ok(serde_json::from_str(body)?));
    }
    let refused: Refused =
        serde_json::from_str(body).with_context(|| format!("{status}: {body}"))?;
    Ok(Err(Refused { status, ..refused }))
}

// ---------------------------------------------------------------------------
// Test material: an image, the store's directory, a broken bucket.

/// A `width` x `height` RGB gradient with some texture, encoded as PNG.
pub(crate) fn gradient_png(width: u32, height: u32) -> image::ImageResult<Vec<u8>> {
    let channel = |i: u32, n: u32| u8::try_from(i * 255 / n).unwrap_or(u8::MAX);
    let image = RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([channel(x, width), channel(y, height), channel(x ^ y, width)])
    });
    let mut png = Vec::new();
    // The cheapest encoding: an upload, not a version worth storing well.
    let encoder =
        PngEncoder::new_with_quality(&mut png, CompressionType::Fast, PngFilter::NoFilter);
    image.write_with_encoder(encoder)?;
    Ok(png)
}

/// Everything in `store`, as sorted paths relative to it; directories end in `/`.
pub(crate) fn contents(store: &Path) -> std::io::Result<Vec<String>> {
    let mut found = Vec::new();
    let mut dirs = vec![store.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            let key = path.strip_prefix(store).unwrap_or(&path).display();
            if path.is_dir() {
                found.push(format!("{key}/"));
                dirs.push(path);
            } else {
                found.push(key.to_string());
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Moves `version`'s bucket aside and puts a file in its place, so nothing
/// can be written into it (permissions would not stop root).
pub(crate) fn break_bucket(store: &Path, version: &str) -> std::io::Result<()> {
    let bucket = store.join(version);
    fs::rename(&bucket, bucket.with_extension("aside"))?;
    fs::write(bucket, "not a directory")
}

/// Undoes [`break_bucket`].
pub(crate) fn repair_bucket(store: &Path, version: &str) -> std::io::Result<()> {
    let bucket = store.join(version);
    fs::remove_file(&bucket)?;
    fs::rename(bucket.with_extension("aside"), bucket)
}

/// A fresh directory under the system temp dir, removed with everything in it
/// when dropped.
#[derive(Debug)]
pub(crate) struct StoreDir {
    dir: tempfile::TempDir,
}

impl StoreDir {
    pub(crate) fn new() -> std::io::Result<StoreDir> {
        let dir = tempfile::Builder::new()
            .prefix("errgroup-thumbnails-")
            .tempdir()?;
        Ok(StoreDir { dir })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}
