//! Look-alikes of raw channels and detached spawns that `errgroup!` accepts:
//! the `raw_channel` check decides by type, not by spelling.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use errgroup::errgroup;
use futures::FutureExt;

// Imported at the top of the file, like tokio's: decided by the type of
// what they return, not by their names.
use look_alikes::{bounded, spawn, unbounded_channel};

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

    fn try_send(&self, n: u32) -> bool {
        self.sent.lock().is_ok_and(|sent| sent.len() < 100) && n > 0
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

/// A user type whose `send` consumes it, like a oneshot sender.
struct Reply(u32);

impl Reply {
    fn send(self, n: u32) -> u32 {
        self.0 + n
    }

    async fn recv(self) -> u32 {
        tokio::task::yield_now().await;
        self.0
    }
}

/// A crate-root module named like a channel crate.
mod flume {
    pub(crate) fn bounded(cap: usize) -> Vec<u32> {
        Vec::with_capacity(cap)
    }

    pub(crate) fn unbounded() -> u32 {
        7
    }
}

/// Functions named like constructors and spawns that are neither.
mod look_alikes {
    pub(crate) fn bounded(cap: usize) -> std::ops::Range<usize> {
        0..cap
    }

    pub(crate) fn unbounded_channel<T: Default>() -> T {
        T::default()
    }

    pub(crate) fn spawn(job: &str) -> String {
        format!("queued {job}")
    }

    pub(crate) async fn spawn_local(job: &str) -> usize {
        tokio::task::yield_now().await;
        job.len()
    }
}

fn make_request(request: &Request) -> Request {
    request.clone()
}

async fn get_request(request: &Request) -> Request {
    tokio::task::yield_now().await;
    request.clone()
}

struct State {
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

#[tokio::test]
async fn receivers_that_are_values_compile_untouched() {
    let request = Request::default();
    let state = Arc::new(tokio::sync::Mutex::new(State {
        request: request.clone(),
    }));
    let requests = vec![request.clone(), request.clone()];
    let by_name = HashMap::from([("a".to_owned(), request.clone())]);
    let key = "a".to_owned();
    let i = 1;
    let got = errgroup! {
        type Error = anyhow::Error;
        // `&self`: the temporary lives to the end of the statement, as before.
        call => make_request(&request).send(1).await,
        awaited => Ok(get_request(&Request::default()).await.recv().unwrap_or(2)),
        // A guard held through the `.await`, as written.
        guard_field => state.lock().await.request.send(3).await,
        // `self` by value: moved once.
        by_value => Ok(Reply(4).send(0)),
        index => requests[i].send(5).await,
        // Other value expressions, evaluated once as before.
        block => { request.clone() }.send(8).await,
        // A `String` index is only borrowed, never moved.
        keyed => by_name[&key].send(6).await,
        computed_index => requests[i - 1].send(7).await,
    }
    .expect("no branch fails");
    assert_eq!(got, (1, 2, 3, 4, 5, 8, 6, 7));
    assert_eq!(key, "a");
}

#[tokio::test]
async fn look_alikes_inside_macro_invocations_compile_untouched() {
    let request = Request::default();
    let holder = Holder {
        request: request.clone(),
    };
    // Nothing is sent to it: its `recv()` answers `None` however the
    // branches interleave.
    let quiet = Request::default();
    let (mut tx, mut rx) = futures::channel::mpsc::channel::<u32>(1);
    let got = errgroup! {
        type Error = anyhow::Error;
        select => {
            let n = tokio::select! {
                biased;
                n = request.send(1), if holder.request.sent.lock().is_ok() => n?,
                else => 0,
            };
            // A future computed from a call, and a handler with an
            // operation: both rewritten, both still what they were.
            let m = tokio::select! {
                m = Reply(0).recv() => {
                    m + holder.request.send(0).await?
                }
            };
            Ok(n + m)
        },
        join => {
            let (x, y) = tokio::try_join!(request.send(2), holder.request.send(3))?;
            Ok(x + y)
        },
        arguments => {
            let sent = vec![quiet.clone().recv(); 2];
            assert!(sent == [None, None], "{}", format!("{:?}", quiet.clone().recv()));
            // Not Rust code: left alone, though it names nothing in scope.
            let text = stringify!(nowhere.send(1));
            Ok(u32::try_from(text.len()).unwrap_or(0))
        },
        // A `futures` channel without the `futures` feature: not a known
        // raw type, so only an opt-out makes it compile either way.
        #[allow(raw_channel)] futures_select => {
            futures::SinkExt::send(&mut tx, 4).await?;
            let n = futures::select! {
                n = futures::StreamExt::next(&mut rx).fuse() => n.unwrap_or(0),
                complete => 0,
            };
            Ok(n)
        },
        nested_block => {
            let mut r = quiet.clone();
            let got = tokio::join!(async { r.recv() }).0;
            // A macro that takes `let` statements only: nothing is added
            // among them.
            tokio::pin! {
                let sent = request.send(0);
            }
            Ok(got.unwrap_or(5) + sent.await?)
        },
    }
    .expect("no branch fails");
    assert_eq!(got, (1, 5, 15, 4, 5));
}

#[tokio::test]
async fn functions_named_like_constructors_or_spawns_are_not_flagged() {
    let mut counter = 0;
    let mut count = || {
        counter += 1;
        counter
    };
    let (range, n, queued, four, local, user_mod) = errgroup! {
        type Error = anyhow::Error;
        imported => Ok(bounded(3)),
        generic => {
            let n: u32 = unbounded_channel();
            Ok(n)
        },
        spawn_named => Ok(spawn("job")),
        // An `async fn` named like a spawn: its future is not a handle.
        async_spawn_named => Ok(look_alikes::spawn_local("four").await),
        closure => {
            // A `FnMut` closure named like a spawn: called once, in place.
            let spawn_local = &mut count;
            Ok(spawn_local())
        },
        crate_root_module => Ok((flume::bounded(2).capacity() >= 2, flume::unbounded())),
    }
    .expect("no branch fails");
    assert_eq!(range, 0..3);
    assert_eq!(
        (n, queued.as_str(), four, local, user_mod),
        (0, "queued job", 4, 1, (true, 7))
    );
}

#[tokio::test]
async fn names_bound_in_a_condition_are_checked_where_they_are_bound() {
    let request = Request::default();
    let maybe = Some(request.clone());
    let got = errgroup! {
        type Error = anyhow::Error;
        // `request` here is the `Option`'s content, not the outer one.
        if_let => {
            let mut n = 0;
            if let Some(request) = maybe.as_ref()
                && request.sent.lock().is_ok()
            {
                n = request.send(1).await?;
            }
            Ok(n)
        },
        guard => match Some(Request::default()) {
            Some(fresh) if fresh.try_send(1) => Ok(Reply(1).send(1)),
            _ => Ok(0),
        },
    }
    .expect("no branch fails");
    assert_eq!(got, (1, 2));
}

#[tokio::test]
async fn the_groups_own_channels_are_not_raw_channels() {
    let got = errgroup! {
        type Error = anyhow::Error;
        let (tx, rx) = channel::<u32>(4);
        header => {
            tx.send(1).await?;
            Ok(rx.recv().await?.unwrap_or(0))
        },
        // Made at run time, also called as a path: the pairs are the
        // group's, whatever the call is named.
        runtime => {
            let (a, b) = ctx.channel::<u32>(1);
            let (c, d) = errgroup::Ctx::unbounded::<u32>(ctx);
            a.send(2).await?;
            c.send(3).await?;
            Ok(b.recv().await?.unwrap_or(0) + d.recv().await?.unwrap_or(0))
        },
    }
    .expect("no branch fails");
    assert_eq!(got, (1, 5));
}

/// Generic results named like a constructor and a spawn; only later code
/// fixes their types.
fn unbounded<T: Default>() -> T {
    T::default()
}

fn spawn_named<T: Default>(_job: &str) -> T {
    T::default()
}

fn fill(buf: &mut Vec<u8>) {
    buf.push(1);
}

#[tokio::test]
async fn values_whose_types_later_code_fixes_compile() {
    let mut bytes = Vec::new();
    let buf = &mut bytes;
    let got = errgroup! {
        type Error = anyhow::Error;
        // Fixed by the next statement.
        later => {
            let v = unbounded();
            let n: u32 = v;
            let w = spawn_named("job");
            let s: String = w;
            Ok((n, s))
        },
        // Fixed only by the caller's annotation, after the group.
        parsed => {
            let n = "7".parse()?;
            Ok(n)
        },
        converted => {
            let len = 3_usize;
            len.try_into().map_err(|_| anyhow::anyhow!("too long"))
        },
        // A generic function passed as a value, an `&mut` passed twice.
        values => {
            vec![1_u8, 2].into_iter().for_each(drop);
            fill(buf);
            fill(buf);
            Ok(())
        },
    }
    .expect("no branch fails");
    let ((n, s), parsed, converted, ()): ((u32, String), u64, u32, ()) = got;
    assert_eq!((n, s.as_str(), parsed, converted), (0, "", 7, 3));
    assert_eq!(bytes, [1, 1]);
}

/// A user generic whose result type only the code after it fixes.
fn make<T: Default>() -> T {
    T::default()
}

fn takes_u32(n: u32) -> u32 {
    n
}

fn pick<T>(a: T, _b: T) -> T {
    a
}

/// A function of the user's that never returns.
fn fatal(message: &str) -> ! {
    panic!("{message}")
}

#[tokio::test]
async fn generic_results_fixed_by_later_code_in_the_block_compile() {
    let requests = vec![Request::default(), Request::default()];
    let always = std::hint::black_box(true);
    let got = errgroup! {
        type Error = anyhow::Error;
        // Fixed by the parameter it is passed to, after the call.
        argument => {
            let n = takes_u32(make()) + 1;
            Ok(n)
        },
        // Fixed by a later statement.
        pushed => {
            let mut v = Vec::new();
            v.push(make());
            let n: u16 = v[0];
            Ok(n)
        },
        paired => {
            let n = pick(make(), 3_u8);
            Ok(n)
        },
        // An empty container whose content comes from outside the group.
        empty => {
            let v = Vec::new();
            Ok(v)
        },
        // A function that never returns, as a block's value, and as the
        // value of the branch's own last block.
        diverging => {
            let n: u32 = if always { 4 } else { fatal("unreachable") };
            Ok(n)
        },
        diverging_value => if always { Ok(5) } else { fatal("unreachable") },
        // Names the branch binds, handed on: their types are the user's.
        bound => {
            let mut total = 0;
            for request in &requests {
                total += make_request(request).send(1).await?;
            }
            let add = |n: u32| takes_u32(n);
            Ok(add(total))
        },
    }
    .expect("no branch fails");
    let (argument, pushed, paired, empty, diverging, diverging_value, bound): (
        u32,
        u16,
        u8,
        Vec<u64>,
        u32,
        u32,
        u32,
    ) = got;
    assert_eq!(
        (argument, pushed, paired, diverging, diverging_value, bound),
        (1, 0, 0, 4, 5, 2)
    );
    assert!(empty.is_empty());
}

enum Message {
    Count(u32),
    Text(String),
}

#[tokio::test]
async fn names_bound_and_values_made_in_a_branchs_value_compile() {
    let data = vec![5_usize, 6];
    let message = if data.is_empty() {
        Message::Count(1)
    } else {
        Message::Text("ab".to_owned())
    };
    let got = errgroup! {
        type Error = anyhow::Error;
        // Bound by a pattern in the branch's value: checked, and not raw.
        matched => match message {
            Message::Count(n) => Ok(n),
            Message::Text(s) => Ok(u32::try_from(s.len())?),
        },
        each => for (i, v) in data.iter().enumerate() { Ok(i + *v) },
        // Bound from a value a generic call feeds: typed after the group.
        parsed_if_let => {
            if let Ok(n) = "5".parse() {
                return Ok(n);
            }
            Ok(0)
        },
        parsed_let => {
            let n = "4".parse()?;
            let m = n;
            Ok(m)
        },
        // Containers made in place, typed here or after the group.
        typed_map => Ok(HashMap::<String, u32>::new().len()),
        untyped => Ok(Vec::new()),
    }
    .expect("no branch fails");
    let (matched, each, parsed_if_let, parsed_let, typed_map, untyped): (
        u32,
        Vec<usize>,
        u8,
        u64,
        usize,
        Vec<u16>,
    ) = got;
    assert_eq!(
        (matched, each, parsed_if_let, parsed_let, typed_map),
        (2, vec![5, 7], 5, 4, 0)
    );
    assert!(untyped.is_empty());
}

/// Repeats its argument, as a user's macro may.
macro_rules! twice {
    ($e:expr) => {{
        $e;
        $e
    }};
}

#[tokio::test]
async fn values_checked_late_that_are_computed_more_than_once_compile() {
    let mut queue = vec![3_u32, 4];
    let got = errgroup! {
        // A `while let` condition's value is made on every iteration,
        // and a macro may evaluate its argument twice: each is recorded
        // as often as it is made.
        drained => {
            let mut sum = 0;
            while let Some(n) = queue.pop() {
                sum += n;
            }
            Ok(sum)
        },
        repeated => Ok::<_, anyhow::Error>(twice!(make::<u32>().max(2))),
    }
    .expect("no branch fails");
    assert_eq!(got, (7, 2));
}
