//! A realistic group: 3 branches, each a small request/response over its
//! own persistent loopback TCP connection to a server this bench starts on
//! 127.0.0.1 (its own thread and current-thread runtime, so the clients'
//! 2-worker runtime runs only the clients). Sides:
//!
//! - `errgroup_intask` vs `try_join`: in-task branches vs `tokio::try_join!`;
//! - `errgroup_spawn` vs `joinset_token`: `#[spawn]` branches vs the
//!   hand-written `JoinSet` + `CancellationToken` group, each task racing
//!   its request against the token (what that version has to write to be
//!   cancellable at all).
//!
//! A round trip over loopback costs tens of microseconds, so this shows
//! how much of a group's own cost is left where real I/O happens. The
//! sides run in turn, a batch of groups each, round after round (see
//! `common::interleaved`), and each prints its median time per group;
//! `benches/ratios.sh` prints the ratios.
//!
//! ```text
//! cargo bench --bench loopback [-- ROUNDS]
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use errgroup::errgroup;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::Mutex;

#[path = "common/mod.rs"]
mod common;

use common::{Fail, JoinSetGroup};

/// Bytes of a request.
const REQUEST: usize = 32;
/// Bytes of a response.
const RESPONSE: usize = 256;
/// Connections per side: one per branch.
const BRANCHES: usize = 3;
/// Sides, each with its own connections.
const SIDES: usize = 4;

/// A client connection, shared by reference so in-task and spawned
/// branches, `try_join!` and `JoinSet` tasks all reach it the same way.
type Conn = Arc<Mutex<TcpStream>>;

impl From<std::io::Error> for Fail {
    fn from(_: std::io::Error) -> Self {
        Fail
    }
}

/// Starts the server on its own thread: it accepts exactly `connections`
/// connections and answers each request of [`REQUEST`] bytes with
/// [`RESPONSE`] bytes until its client closes. Returns its address.
fn start_server(connections: usize) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local addr");
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        common::current_thread().block_on(async move {
            let listener = TcpListener::from_std(listener).expect("tokio listener");
            let mut served = Vec::with_capacity(connections);
            for _ in 0..connections {
                let (mut stream, _) = listener.accept().await.expect("accept");
                stream.set_nodelay(true).expect("nodelay");
                served.push(tokio::spawn(async move {
                    let mut request = [0u8; REQUEST];
                    let mut response = [0u8; RESPONSE];
                    // Ends when the client closes its end.
                    while stream.read_exact(&mut request).await.is_ok() {
                        response[..REQUEST].copy_from_slice(&request);
                        if stream.write_all(&response).await.is_err() {
                            break;
                        }
                    }
                }));
            }
            for connection in served {
                connection.await.expect("server connection");
            }
        });
    });
    addr
}

/// [`BRANCHES`] fresh connections to `addr`.
async fn connect(addr: SocketAddr) -> [Conn; BRANCHES] {
    let mut conns = Vec::with_capacity(BRANCHES);
    for _ in 0..BRANCHES {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        conns.push(Arc::new(Mutex::new(stream)));
    }
    conns.try_into().expect("BRANCHES connections")
}

/// One request/response on `conn`; the response's first byte echoes `tag`.
async fn request(conn: &Conn, tag: u8) -> Result<u8, Fail> {
    let mut stream = conn.lock().await;
    let mut buf = [0u8; RESPONSE];
    buf[0] = tag;
    stream.write_all(&buf[..REQUEST]).await?;
    stream.read_exact(&mut buf).await?;
    Ok(buf[0])
}

/// The hand-written task body: the request raced against the group's token.
async fn request_or_cancelled(
    conn: Conn,
    tag: u8,
    token: tokio_util::sync::CancellationToken,
) -> Result<u8, Fail> {
    tokio::select! {
        () = token.cancelled() => Err(Fail),
        answer = request(&conn, tag) => answer,
    }
}

/// Groups per timed run of a side.
const BATCH: u32 = 100;
/// Timed runs of every side unless the command line says otherwise (each
/// round runs every side once: about 40 ms).
const ROUNDS: usize = 200;

/// `BATCH` rounds of `round` on `rt`; the time they took.
fn batch_of<F, Fut>(rt: &Runtime, round: F) -> Duration
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future + Send,
{
    common::time_rounds(rt, u64::from(BATCH), round)
}

fn main() {
    let rounds = common::rounds_arg(ROUNDS);
    let rt = common::multi_thread();
    let addr = start_server(BRANCHES * SIDES);
    let [intask, try_join, spawn, joinset] = [(); SIDES].map(|()| rt.block_on(connect(addr)));
    let rt = &rt;
    let mut sides: Vec<common::Side<'_>> = vec![
        (
            "tcp3_loopback/errgroup_intask".into(),
            Box::new(move || {
                let conns = intask.clone();
                batch_of(rt, move || {
                    let conns = conns.clone();
                    async move {
                        errgroup! {
                            a => request(&conns[0], 1).await,
                            b => request(&conns[1], 2).await,
                            c => request(&conns[2], 3).await,
                        }
                        .expect("group")
                    }
                })
            }),
        ),
        (
            "tcp3_loopback/try_join".into(),
            Box::new(move || {
                let conns = try_join.clone();
                batch_of(rt, move || {
                    let conns = conns.clone();
                    async move {
                        tokio::try_join!(
                            request(&conns[0], 1),
                            request(&conns[1], 2),
                            request(&conns[2], 3),
                        )
                        .expect("try_join")
                    }
                })
            }),
        ),
        (
            "tcp3_loopback/errgroup_spawn".into(),
            Box::new(move || {
                let conns = spawn.clone();
                batch_of(rt, move || {
                    let [c0, c1, c2] = conns.clone();
                    async move {
                        errgroup! {
                            #[spawn] a => request(&c0, 1).await,
                            #[spawn] b => request(&c1, 2).await,
                            #[spawn] c => request(&c2, 3).await,
                        }
                        .expect("group")
                    }
                })
            }),
        ),
        (
            "tcp3_loopback/joinset_token".into(),
            Box::new(move || {
                let conns = joinset.clone();
                batch_of(rt, move || {
                    let conns = conns.clone();
                    async move {
                        let mut group = JoinSetGroup::<u8, Fail>::new();
                        for (conn, tag) in conns.into_iter().zip(1..) {
                            group.spawn(move |token| request_or_cancelled(conn, tag, token));
                        }
                        group.wait().await.expect("group")
                    }
                })
            }),
        ),
    ];
    common::interleaved(rounds, BATCH, &mut sides);
}
