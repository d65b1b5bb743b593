//! Pipe: two halves of a stream through a named pipe, cancelled together.
//!
//! A download is streamed through a real FIFO (`mkfifo` in a temp dir): the
//! `fetch` branch reads an object from a store (a tiny HTTP server on
//! 127.0.0.1) and writes it into the FIFO; the `save` branch copies the FIFO
//! into a local file. The program runs it twice:
//!
//! 1. the store is healthy: the saved file is byte-identical to the object;
//! 2. the store fails half-way: `fetch` returns the store's error, which
//!    cancels the group; `save`, blocked reading the FIFO, is released by that
//!    cancellation (not by EOF, not by a broken pipe), drops its partial file,
//!    and the caller gets the store's error.
//!
//! ```text
//! cargo run --example pipe
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use errgroup::{Cause, Ctx, errgroup};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, timeout};

#[tokio::main(flavor = "current_thread")]
pub(crate) async fn main() -> anyhow::Result<()> {
    let object = object(1 << 20);

    println!("run 1: the store is healthy");
    let store = Store::start(object.clone(), None).await?;
    let dir = Workdir::new()?;
    let run = download(store.addr, &dir).await?;
    let bytes = run.result?;
    let saved = std::fs::read(dir.output())?;
    ensure!(saved == object, "the saved file differs from the object");
    println!("  fetch: {bytes} bytes from the store into the FIFO");
    println!("  save:  {:?}", run.save);
    println!(
        "  the saved file is byte-identical to the object ({} bytes)",
        saved.len()
    );

    println!("\nrun 2: the store fails half-way");
    let store = Store::start(object.clone(), Some(object.len() / 2)).await?;
    let dir = Workdir::new()?;
    let run = download(store.addr, &dir).await?;
    let Err(err) = run.result else {
        bail!("run 2 should have failed: the store broke off half-way");
    };
    println!("  errgroup! returned Err: {err:#}");
    println!("  save:  {:?}", run.save);
    println!("  partial file left behind: {}", dir.output().exists());
    Ok(())
}

/// How the `save` branch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SaveEnd {
    /// The FIFO reached EOF: every writer closed it; this many bytes were saved.
    Eof(u64),
    /// The group was cancelled while `save` was reading the FIFO, for this cause.
    Cancelled(Cause),
    /// It never got that far (opening the output failed, ...).
    NotReached,
}

/// What [`download`] did: the group's result and how `save` ended.
#[derive(Debug)]
pub(crate) struct Download {
    /// Bytes fetched, or the group's first error.
    pub(crate) result: Result<u64, errgroup::Error<anyhow::Error>>,
    pub(crate) save: SaveEnd,
}

/// Streams the store's object through a FIFO in `dir` into `dir.output()`:
/// the program's one `errgroup!`.
pub(crate) async fn download(store: SocketAddr, dir: &Workdir) -> anyhow::Result<Download> {
    // A FIFO's read end sees EOF only once every write end is closed, and a
    // write end opens only if a reader is there: open both ends first.
    let fifo = dir.mkfifo("object.fifo")?;
    let rx = pipe::OpenOptions::new().open_receiver(&fifo)?;
    let mut tx = Some(pipe::OpenOptions::new().open_sender(&fifo)?);
    let (out, mut save) = (dir.output(), SaveEnd::NotReached);
    let (tx_ref, save_ref) = (&mut tx, &mut save);

    // The first branch to fail cancels `ctx`; the group returns once both
    // branches have, with that first error.
    let result = errgroup! {
        fetch => fetch(ctx, store, tx_ref).await,
        save  => save_fifo(ctx, rx, &out, save_ref).await,
    }
    .map(|(fetched, _saved)| fetched);
    drop(tx); // a failed fetch kept its write end open until now
    Ok(Download { result, save })
}

/// `GET /object` from the store into the FIFO.
///
/// On success it closes its write end, so the reader sees EOF. On failure it
/// does not: EOF would tell the reader the object is complete. The group's
/// cancellation is what stops the reader then.
async fn fetch(ctx: &Ctx, store: SocketAddr, tx: &mut Option<pipe::Sender>) -> anyhow::Result<u64> {
    let fifo = tx.as_mut().context("the FIFO's write end is gone")?;
    let copy = async {
        let mut conn = TcpStream::connect(store).await.context("store: connect")?;
        conn.write_all(
            format!("GET /object HTTP/1.1\r\nHost: {store}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let (len, mut body) = read_head(&mut conn).await?;
        // Whatever arrived with the head, then the rest as it comes.
        fifo.write_all(&body).await?;
        let mut copied = body.len();
        body.resize(64 * 1024, 0);
        while copied < len {
            let n = conn.read(&mut body).await?;
            if n == 0 {
                bail!("store: connection closed after {copied} of {len} bytes");
            }
            fifo.write_all(&body[..n]).await?;
            copied += n;
        }
        anyhow::Ok(copied as u64)
    };
    // Should `save` fail first (disk full), this fetch stops at once instead
    // of failing later with a broken pipe that would hide the real error.
    let copied = ctx.run(copy).await??;
    drop(tx.take()); // EOF for the reader: the object is complete
    Ok(copied)
}

/// Copies the FIFO into `out` until EOF. Records how it ended in `end`.
async fn save_fifo(
    ctx: &Ctx,
    mut rx: pipe::Receiver,
    out: &Path,
    end: &mut SaveEnd,
) -> anyhow::Result<u64> {
    let mut file = tokio::fs::File::create(out).await?;
    // `tokio::io::copy` does not watch the context: `ctx.run` races it against
    // the group's cancellation and drops it mid-read when a sibling fails.
    match ctx.run(tokio::io::copy(&mut rx, &mut file)).await {
        Ok(copied) => {
            let copied = copied?;
            file.sync_all().await?;
            *end = SaveEnd::Eof(copied);
            Ok(copied)
        }
        Err(cancelled) => {
            *end = SaveEnd::Cancelled(cancelled.cause().clone());
            // A partial file is not a download: remove it.
            drop(file);
            let _ = tokio::fs::remove_file(out).await;
            Err(cancelled.into())
        }
    }
}

/// Reads a response head; the body's `Content-Length` and any body bytes
/// that came with the head.
async fn read_head(conn: &mut TcpStream) -> anyhow::Result<(usize, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0; 4096];
    for _ in 0..16 {
        let n = conn.read(&mut chunk).await?;
        ensure!(n > 0, "store: connection closed before the response head");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            ensure!(
                head.starts_with("HTTP/1.1 200"),
                "store: {}",
                head.lines().next().unwrap_or_default()
            );
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .context("store: no Content-Length")?
                .parse()?;
            return Ok((len, buf.split_off(end + 4)));
        }
    }
    bail!("store: response head too long")
}

/// A deterministic object of `len` bytes.
pub(crate) fn object(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The work directory: a unique temp dir holding the FIFO and the output.

/// A fresh directory under the system temp dir, removed with everything in it
/// when dropped.
#[derive(Debug)]
pub(crate) struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    pub(crate) fn new() -> std::io::Result<Workdir> {
        let dir = tempfile::Builder::new()
            .prefix("errgroup-pipe-")
            .tempdir()?;
        Ok(Workdir { dir })
    }

    /// Where `save` writes the object.
    pub(crate) fn output(&self) -> PathBuf {
        self.dir.path().join("object.bin")
    }

    /// Makes a named pipe in this directory with `mkfifo(1)`.
    fn mkfifo(&self, name: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.path().join(name);
        let status = std::process::Command::new("mkfifo")
            .arg("-m")
            .arg("600")
            .arg(&path)
            .status()
            .context("running mkfifo")?;
        ensure!(status.success(), "mkfifo {}: {status}", path.display());
        Ok(path)
    }
}

// ---------------------------------------------------------------------------
// The store: minimal HTTP/1.1 over a `TcpListener`, serving one object.

/// A running store; it stops, with every connection it holds, when dropped.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl Store {
    /// Serves `object` at `/object`. With `fail_after = Some(n)` it announces
    /// the whole length, sends `n` bytes, then drops the connection.
    pub(crate) async fn start(
        object: Vec<u8>,
        fail_after: Option<usize>,
    ) -> std::io::Result<Store> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accept = tokio::spawn(async move {
            let object: std::sync::Arc<[u8]> = object.into();
            let mut connections = JoinSet::new();
            for _ in 0..16 {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                let object = std::sync::Arc::clone(&object);
                let serve = serve(stream, object, fail_after);
                connections.spawn(timeout(Duration::from_secs(30), serve));
            }
            while connections.join_next().await.is_some() {}
        });
        Ok(Store { addr, accept })
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn serve(
    mut stream: TcpStream,
    object: std::sync::Arc<[u8]>,
    fail_after: Option<usize>,
) -> Option<()> {
    let mut head = Vec::new();
    let mut chunk = [0; 1024];
    for _ in 0..4 {
        let n = stream.read(&mut chunk).await.ok()?;
        head.extend_from_slice(&chunk[..n]);
        if n == 0 || head.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    if !head.starts_with(b"GET /object ") {
        return stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            .await
            .ok();
    }
    let start = Instant::now();
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        object.len()
    );
    stream.write_all(head.as_bytes()).await.ok()?;
    let sent = fail_after.unwrap_or(object.len()).min(object.len());
    stream.write_all(&object[..sent]).await.ok()?;
    if sent < object.len() {
        println!(
            "  store: failed after sending {sent} of {} bytes ({} ms), connection dropped",
            object.len(),
            start.elapsed().as_millis()
        );
    }
    stream.shutdown().await.ok()
}
