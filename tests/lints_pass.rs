//! Look-alikes of raw channels and detached spawns that `errgroup!` accepts:
//! the `raw_channel` check decides by type, not by spelling.

use std::sync::{Arc, Mutex};

use errgroup::errgroup;

/// A user type with its own `send` and `recv`, like an HTTP request builder.
#[derive(Clone, Default)]
struct Request {
    sent: Arc<Mutex<Vec<u32>>>,
}

impl Request {
    async fn send(&self, n: u32) -> anyhow::Result<u32> {
        // An await point, as a real request's `send` has.
        tokio::task::yield_now().await;
        self.sent.lock().expect("not poisoned").push(n);
        Ok(n)
    }

    fn recv(&mut self) -> Option<u32> {
        self.sent.lock().expect("not poisoned").pop()
    }
}

/// A module of the user's own named like tokio's.
mod mpsc {
    pub(crate) fn channel(cap: usize) -> (Vec<u32>, usize) {
        (Vec::with_capacity(cap), cap)
    }

    pub(crate) fn unbounded_channel() -> usize {
        0
    }
}

struct Holder {
    request: Request,
}

#[tokio::test]
async fn user_types_with_send_and_recv_compile_untouched() {
    let request = Request::default();
    let holder = Holder {
        request: request.clone(),
    };
    let shared = Arc::new(Mutex::new(request.clone()));
    let (a, b, c) = errgroup! {
        type Error = anyhow::Error;
        by_ref => request.send(1).await,
        field => holder.request.send(2).await,
        through_lock => {
            let mut r = shared.lock().expect("not poisoned").clone();
            let _ = r.recv();
            Ok(3)
        },
    }
    .expect("no branch fails");
    assert_eq!((a, b, c), (1, 2, 3));
}

#[tokio::test]
async fn a_module_of_the_users_own_named_mpsc_is_not_a_raw_channel() {
    let ((buf, cap), zero) = errgroup! {
        type Error = anyhow::Error;
        partial => Ok(mpsc::channel(4)),
        unbounded => {
            use self::mpsc as m;
            Ok(m::unbounded_channel())
        },
    }
    .expect("no branch fails");
    assert_eq!((buf.capacity() >= 4, cap, zero), (true, 4, 0));
}

#[tokio::test]
async fn a_variable_named_channel_is_not_a_constructor() {
    let channel = |n: u32| n + 1;
    let (n,) = errgroup! {
        type Error = anyhow::Error;
        call => Ok(channel(1)),
    }
    .expect("no branch fails");
    assert_eq!(n, 2);
}

#[tokio::test]
async fn allow_attributes_opt_a_branch_out() {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(4);
    let (sent, got, joined) = errgroup! {
        type Error = anyhow::Error;
        #[allow(raw_channel)] sender => { tx.send(1).await?; Ok(()) },
        #[allow(raw_channel)] receiver => {
            let (otx, orx) = tokio::sync::oneshot::channel::<u32>();
            otx.send(2).map_err(|_| anyhow::anyhow!("closed"))?;
            Ok(rx.recv().await.unwrap_or(0) + orx.await?)
        },
        #[allow(detached_spawn)] spawner => Ok(tokio::spawn(async { 4 }).await?),
    }
    .expect("no branch fails");
    assert_eq!((sent, got, joined), ((), 3, 4));
}
