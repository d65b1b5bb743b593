//! Group-bound channel throughput against the tokio alternatives: 10M `u64`
//! through a cap-1024 channel, one producer and one consumer task, on a
//! 2-worker runtime. Run with `cargo bench --bench channel`.
//!
//! - `tokio_mpsc`: raw `tokio::sync::mpsc`, no cancellation at all;
//! - `tokio_mpsc_select_token`: the same with every send and receive in a
//!   `tokio::select!` against a `CancellationToken` (the hand-written way
//!   to make a channel stop on cancellation);
//! - `async_channel`: the crate under the group channel, raw;
//! - `errgroup_channel`: `let (tx, rx) = channel(1024);` in an `errgroup!`
//!   with two `#[spawn]` branches.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use errgroup::errgroup;
use tokio_util::sync::CancellationToken;

const ITEMS: u64 = 10_000_000;
const CAP: usize = 1024;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn tokio_mpsc() -> u64 {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(CAP);
    let producer = tokio::spawn(async move {
        for n in 0..ITEMS {
            if tx.send(n).await.is_err() {
                break;
            }
        }
    });
    let consumer = tokio::spawn(async move {
        let mut sum = 0u64;
        while let Some(n) = rx.recv().await {
            sum = sum.wrapping_add(n);
        }
        sum
    });
    producer.await.expect("producer");
    consumer.await.expect("consumer")
}

async fn tokio_mpsc_select_token() -> u64 {
    let token = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(CAP);
    let producer_token = token.clone();
    let producer = tokio::spawn(async move {
        for n in 0..ITEMS {
            tokio::select! {
                sent = tx.send(n) => if sent.is_err() { break },
                () = producer_token.cancelled() => break,
            }
        }
    });
    let consumer = tokio::spawn(async move {
        let mut sum = 0u64;
        loop {
            tokio::select! {
                got = rx.recv() => match got {
                    Some(n) => sum = sum.wrapping_add(n),
                    None => break,
                },
                () = token.cancelled() => break,
            }
        }
        sum
    });
    producer.await.expect("producer");
    consumer.await.expect("consumer")
}

async fn async_channel() -> u64 {
    let (tx, rx) = async_channel::bounded::<u64>(CAP);
    let producer = tokio::spawn(async move {
        for n in 0..ITEMS {
            if tx.send(n).await.is_err() {
                break;
            }
        }
    });
    let consumer = tokio::spawn(async move {
        let mut sum = 0u64;
        while let Ok(n) = rx.recv().await {
            sum = sum.wrapping_add(n);
        }
        sum
    });
    producer.await.expect("producer");
    consumer.await.expect("consumer")
}

async fn errgroup_channel() -> u64 {
    let ((), sum) = errgroup! {
        type Error = anyhow::Error;
        let (tx, rx) = channel::<u64>(CAP);
        #[spawn] produce => { for n in 0..ITEMS { tx.send(n).await?; } Ok(()) },
        #[spawn] consume => {
            let mut sum = 0u64;
            while let Some(n) = rx.recv().await? { sum = sum.wrapping_add(n); }
            Ok(sum)
        },
    }
    .expect("errgroup channel");
    sum
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("channel_10M_u64_cap1024");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(ITEMS));
    macro_rules! case {
        ($name:literal, $f:ident) => {
            group.bench_function($name, |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(rt.block_on($f()));
                    }
                    start.elapsed()
                });
            });
        };
    }
    case!("tokio_mpsc", tokio_mpsc);
    case!("tokio_mpsc_select_token", tokio_mpsc_select_token);
    case!("async_channel", async_channel);
    case!("errgroup_channel", errgroup_channel);
    group.finish();
}

fn main() {
    // What `criterion_group!` + `criterion_main!` expand to, without an
    // undocumented public item.
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
