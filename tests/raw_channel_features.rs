//! Every lint feature makes its crate's endpoints raw for the type-based
//! `raw_channel` check (runtime/lints.rs): with all of them on, this file
//! compiles only if each optional crate's senders, receivers and
//! constructor pairs are covered. Both flume majors count separately, as
//! their endpoints are different types.
//!
//! `cargo test --all-features --test raw_channel_features` (CI runs it); without
//! the features the file is empty.

#![cfg(all(
    feature = "crossbeam-channel",
    feature = "flume",
    feature = "flume-0_11",
    feature = "kanal",
    feature = "futures-channel"
))]

use errgroup::__private::lints::{RawEndpoint, RawPair};

fn raw<T: RawEndpoint>() {}
fn pair<T: RawPair>() {}

#[test]
fn each_feature_covers_its_crates_endpoints() {
    raw::<crossbeam_channel::Sender<u8>>();
    raw::<crossbeam_channel::Receiver<u8>>();
    pair::<(
        crossbeam_channel::Sender<u8>,
        crossbeam_channel::Receiver<u8>,
    )>();

    raw::<flume::Sender<u8>>();
    raw::<flume::Receiver<u8>>();
    pair::<(flume::Sender<u8>, flume::Receiver<u8>)>();

    raw::<flume_0_11::Sender<u8>>();
    raw::<flume_0_11::Receiver<u8>>();
    pair::<(flume_0_11::Sender<u8>, flume_0_11::Receiver<u8>)>();

    raw::<kanal::Sender<u8>>();
    raw::<kanal::Receiver<u8>>();
    raw::<kanal::AsyncSender<u8>>();
    raw::<kanal::AsyncReceiver<u8>>();
    pair::<(kanal::Sender<u8>, kanal::Receiver<u8>)>();
    pair::<(kanal::AsyncSender<u8>, kanal::AsyncReceiver<u8>)>();

    raw::<futures_channel::mpsc::Sender<u8>>();
    raw::<futures_channel::mpsc::Receiver<u8>>();
    raw::<futures_channel::mpsc::UnboundedSender<u8>>();
    raw::<futures_channel::mpsc::UnboundedReceiver<u8>>();
    raw::<futures_channel::oneshot::Sender<u8>>();
    raw::<futures_channel::oneshot::Receiver<u8>>();
    pair::<(
        futures_channel::mpsc::Sender<u8>,
        futures_channel::mpsc::Receiver<u8>,
    )>();
    pair::<(
        futures_channel::oneshot::Sender<u8>,
        futures_channel::oneshot::Receiver<u8>,
    )>();

    // Behind the wrappers a branch reaches them through, too.
    raw::<std::sync::Arc<tokio::sync::Mutex<flume_0_11::Receiver<u8>>>>();
}
