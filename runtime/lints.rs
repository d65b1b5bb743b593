//! Type-based halves of the `raw_channel` and `detached_spawn` checks: what
//! `errgroup!` emits, in code that never runs, to ask the compiler whether a
//! value is a raw channel endpoint, a raw channel pair, or the handle of a
//! detached task.
//!
//! Each probe is selected by autoref specialisation: [`probe`] wraps a
//! reference to the value, the emitted code calls `(&probe(&v)).errgroup_*()`,
//! and method resolution tries `Probe<T>` (the `Raw*` traits, implemented only
//! when `T` is raw) before `&Probe<T>` (the `Other*` traits, implemented for
//! every `T`). The raw method hands back `&T`, the other one `&NotRaw`; the
//! emitted code then passes that to a `GroupBound*` trait's method, written
//! as a path call (`GroupBound::errgroup_bound(..)`). Only `NotRaw`
//! implements those traits, so a raw `T` fails there, with the trait's
//! `#[diagnostic::on_unimplemented]` message. A path call adds no "required
//! by a bound in .." note, and `#[diagnostic::do_not_recommend]` on the one
//! impl keeps rustc from listing `NotRaw` as a type that would do: the
//! error ends with the fix.
//!
//! # Invariants
//!
//! A type that is not a raw endpoint (or a raw endpoint behind `&`, `&mut`,
//! `Box`, `Arc`, `Rc`, `Option`, a mutex, a lock, a `RefCell` or a standard
//! collection), not a raw pair and not a detached task's handle never fails
//! a probe: the `Other*` methods are implemented for every type.

use std::collections::{BTreeMap, HashMap, VecDeque};

/// A value of type `T` as seen by the probes; built only in code that never
/// runs.
#[derive(Debug)]
pub struct Probe<'a, T: ?Sized>(&'a T);

/// The probe of `value`'s type.
#[must_use]
pub fn probe<T: ?Sized>(value: &T) -> Probe<'_, T> {
    Probe(value)
}

/// What every probe of a type that is not raw answers with.
#[derive(Debug)]
pub struct NotRaw;

/// Raw channel endpoints, and the wrappers they are reached through.
pub trait RawEndpoint {}

/// What a raw endpoint inside a branch fails on.
#[diagnostic::on_unimplemented(
    message = "this operates on a raw channel endpoint (`{Self}`) inside an `errgroup!` branch",
    label = "a raw channel, not bound to the group",
    note = "a raw channel is not closed when the group is cancelled, so a branch blocked on it can hang the group",
    note = "use a group-bound channel: the header `let (tx, rx) = channel(cap);` above the branches, or `ctx.channel(cap)`; or mark the branch `#[allow(raw_channel)]`"
)]
pub trait GroupBound {
    /// Compiles only for [`NotRaw`].
    fn errgroup_bound(&self) {}
}

#[diagnostic::do_not_recommend]
impl GroupBound for NotRaw {}

/// Chosen when the probed type is a raw endpoint: hands it on to
/// [`GroupBound`], which it does not implement.
pub trait RawOperation<'a, T: ?Sized> {
    /// The probed value.
    fn errgroup_check(&self) -> &'a T;
}

impl<'a, T: ?Sized + RawEndpoint> RawOperation<'a, T> for Probe<'a, T> {
    fn errgroup_check(&self) -> &'a T {
        self.0
    }
}

/// Chosen for every other type, one autoref later.
pub trait OtherOperation {
    /// [`NotRaw`].
    fn errgroup_check(&self) -> &'static NotRaw {
        &NotRaw
    }
}

impl<T: ?Sized> OtherOperation for &Probe<'_, T> {}

/// `value`, unchanged; `check` is only type-checked, never called. A call
/// named like a raw channel constructor or a detached spawn is passed
/// through here: as an argument, it is checked against the type the
/// caller expects (`let n: u32 = unbounded();` fixes `n`'s type before
/// `check`, a closure, is checked), and its temporaries live as long as
/// before.
#[inline]
pub fn pass<T>(value: T, check: impl FnOnce(&T)) -> T {
    let _ = check;
    value
}

/// The pair a raw channel constructor returns.
pub trait RawPair {
    /// `Self`: a type the error can name only when `Self` is a raw pair, so
    /// a wrong guess (see [`RawConstructor`]) is reported once.
    type Pair: ?Sized;
}

/// What a raw channel constructor inside a branch fails on.
#[diagnostic::on_unimplemented(
    message = "this creates a raw channel (`{Self}`) inside an `errgroup!` branch",
    label = "a raw channel constructor",
    note = "a raw channel is not closed when the group is cancelled, so a branch blocked on it can hang the group",
    note = "use a group-bound channel: the header `let (tx, rx) = channel(cap);` above the branches, or `ctx.channel(cap)`; or mark the branch `#[allow(raw_channel)]`"
)]
pub trait GroupBoundConstructor {
    /// Compiles only for [`NotRaw`].
    fn errgroup_bound(&self) {}
}

#[diagnostic::do_not_recommend]
impl GroupBoundConstructor for NotRaw {}

/// Chosen when the value a call returned is a raw pair. Unimplemented, so
/// its message shows, only when it was chosen before the call's type was
/// known (a generic result that later code fixes) and the guess was wrong.
#[diagnostic::on_unimplemented(
    message = "`errgroup!` checked this call before its type (`{T}`) was known",
    label = "its type is fixed only by later code",
    note = "a call named like a raw channel constructor is checked for returning a raw channel",
    note = "give it its type where it is called, e.g. `let v: {T} = ..;`"
)]
pub trait RawConstructor<'a, T: ?Sized + RawPair> {
    /// The probed value.
    fn errgroup_pair(&self) -> &'a T::Pair;
}

#[diagnostic::do_not_recommend]
impl<'a, T: ?Sized + RawPair<Pair = T>> RawConstructor<'a, T> for Probe<'a, T> {
    fn errgroup_pair(&self) -> &'a T {
        self.0
    }
}

/// Chosen for every other value.
pub trait OtherConstructor {
    /// [`NotRaw`].
    fn errgroup_pair(&self) -> &'static NotRaw {
        &NotRaw
    }
}

impl<T: ?Sized> OtherConstructor for &Probe<'_, T> {}

/// The handle a detached spawn returns.
pub trait RawTask {
    /// `Self`: a type the error can name only when `Self` is a task handle,
    /// so a wrong guess (see [`RawSpawn`]) is reported once.
    type Task: ?Sized;
}

/// What a detached spawn inside a branch fails on.
#[diagnostic::on_unimplemented(
    message = "this starts a detached task (`{Self}`) inside an `errgroup!` branch",
    label = "a detached spawn",
    note = "the group neither waits for nor cancels a detached task",
    note = "run it as a branch marked `#[spawn]`, start it with `ctx.spawn(name, future)`, or give it a nested `errgroup!`; or mark the branch `#[allow(detached_spawn)]`"
)]
pub trait GroupTask {
    /// Compiles only for [`NotRaw`].
    fn errgroup_bound(&self) {}
}

#[diagnostic::do_not_recommend]
impl GroupTask for NotRaw {}

/// Chosen when the value a call returned is a detached task's handle.
/// Unimplemented, so its message shows, only when it was chosen before the
/// call's type was known and the guess was wrong.
#[diagnostic::on_unimplemented(
    message = "`errgroup!` checked this call before its type (`{T}`) was known",
    label = "its type is fixed only by later code",
    note = "a call named like a detached spawn is checked for returning a task handle",
    note = "give it its type where it is called, e.g. `let v: {T} = ..;`"
)]
pub trait RawSpawn<'a, T: ?Sized + RawTask> {
    /// The probed value.
    fn errgroup_task(&self) -> &'a T::Task;
}

#[diagnostic::do_not_recommend]
impl<'a, T: ?Sized + RawTask<Task = T>> RawSpawn<'a, T> for Probe<'a, T> {
    fn errgroup_task(&self) -> &'a T {
        self.0
    }
}

/// Chosen for every other value.
pub trait OtherSpawn {
    /// [`NotRaw`].
    fn errgroup_task(&self) -> &'static NotRaw {
        &NotRaw
    }
}

impl<T: ?Sized> OtherSpawn for &Probe<'_, T> {}

#[diagnostic::do_not_recommend]
impl<T> RawTask for tokio::task::JoinHandle<T> {
    type Task = Self;
}

#[diagnostic::do_not_recommend]
impl<T> RawTask for std::thread::JoinHandle<T> {
    type Task = Self;
}

/// A place `container[index]` as seen by the probes, without evaluating or
/// moving `index` a second time: only its type is taken, from `&index`.
pub trait IndexProbe<I> {
    /// The element's type, in code that never runs.
    type Output: ?Sized;
    /// Never returns; called only inside `if false { .. }`.
    fn errgroup_index(&self, index: Probe<'_, I>) -> &Self::Output;
}

impl<C: ?Sized + core::ops::Index<I>, I> IndexProbe<I> for C {
    type Output = C::Output;
    fn errgroup_index(&self, _index: Probe<'_, I>) -> &C::Output {
        unreachable!("errgroup's lint probes never run")
    }
}

// An optional crate's impls carry its feature twice: to compile them only
// with it, and (on docs.rs, `--cfg docsrs`) to label them with it.
macro_rules! raw {
    ($($(#[cfg(feature = $feature:literal)])? $($ty:ident)::+ ;)*) => {$(
        $(#[cfg(feature = $feature)] #[cfg_attr(docsrs, doc(cfg(feature = $feature)))])?
        impl<T> RawEndpoint for $($ty)::+<T> {}
    )*};
}

macro_rules! pair {
    ($($(#[cfg(feature = $feature:literal)])? $($tx:ident)::+, $($rx:ident)::+ ;)*) => {$(
        $(#[cfg(feature = $feature)] #[cfg_attr(docsrs, doc(cfg(feature = $feature)))])?
        #[diagnostic::do_not_recommend]
        impl<T> RawPair for ($($tx)::+<T>, $($rx)::+<T>) {
            type Pair = Self;
        }
    )*};
}

raw! {
    tokio::sync::mpsc::Sender;
    tokio::sync::mpsc::Receiver;
    tokio::sync::mpsc::UnboundedSender;
    tokio::sync::mpsc::UnboundedReceiver;
    tokio::sync::mpsc::WeakSender;
    tokio::sync::mpsc::WeakUnboundedSender;
    tokio::sync::oneshot::Sender;
    tokio::sync::oneshot::Receiver;
    tokio::sync::broadcast::Sender;
    tokio::sync::broadcast::Receiver;
    tokio::sync::watch::Sender;
    tokio::sync::watch::Receiver;
    std::sync::mpsc::Sender;
    std::sync::mpsc::SyncSender;
    std::sync::mpsc::Receiver;
    #[cfg(feature = "crossbeam-channel")] crossbeam_channel::Sender;
    #[cfg(feature = "crossbeam-channel")] crossbeam_channel::Receiver;
    #[cfg(feature = "flume")] flume::Sender;
    #[cfg(feature = "flume")] flume::Receiver;
    #[cfg(feature = "flume-0_11")] flume_0_11::Sender;
    #[cfg(feature = "flume-0_11")] flume_0_11::Receiver;
    async_channel::Sender;
    async_channel::Receiver;
    #[cfg(feature = "kanal")] kanal::Sender;
    #[cfg(feature = "kanal")] kanal::Receiver;
    #[cfg(feature = "kanal")] kanal::AsyncSender;
    #[cfg(feature = "kanal")] kanal::AsyncReceiver;
    #[cfg(feature = "futures-channel")] futures_channel::mpsc::Sender;
    #[cfg(feature = "futures-channel")] futures_channel::mpsc::Receiver;
    #[cfg(feature = "futures-channel")] futures_channel::mpsc::UnboundedSender;
    #[cfg(feature = "futures-channel")] futures_channel::mpsc::UnboundedReceiver;
    #[cfg(feature = "futures-channel")] futures_channel::oneshot::Sender;
    #[cfg(feature = "futures-channel")] futures_channel::oneshot::Receiver;
}

pair! {
    tokio::sync::mpsc::Sender, tokio::sync::mpsc::Receiver;
    tokio::sync::mpsc::UnboundedSender, tokio::sync::mpsc::UnboundedReceiver;
    tokio::sync::oneshot::Sender, tokio::sync::oneshot::Receiver;
    tokio::sync::broadcast::Sender, tokio::sync::broadcast::Receiver;
    tokio::sync::watch::Sender, tokio::sync::watch::Receiver;
    std::sync::mpsc::Sender, std::sync::mpsc::Receiver;
    std::sync::mpsc::SyncSender, std::sync::mpsc::Receiver;
    #[cfg(feature = "crossbeam-channel")] crossbeam_channel::Sender, crossbeam_channel::Receiver;
    #[cfg(feature = "flume")] flume::Sender, flume::Receiver;
    #[cfg(feature = "flume-0_11")] flume_0_11::Sender, flume_0_11::Receiver;
    async_channel::Sender, async_channel::Receiver;
    #[cfg(feature = "kanal")] kanal::Sender, kanal::Receiver;
    #[cfg(feature = "kanal")] kanal::AsyncSender, kanal::AsyncReceiver;
    #[cfg(feature = "futures-channel")] futures_channel::mpsc::Sender, futures_channel::mpsc::Receiver;
    #[cfg(feature = "futures-channel")] futures_channel::mpsc::UnboundedSender, futures_channel::mpsc::UnboundedReceiver;
    #[cfg(feature = "futures-channel")] futures_channel::oneshot::Sender, futures_channel::oneshot::Receiver;
}

/// Wrappers a raw endpoint is reached through.
macro_rules! through {
    ($($($ty:ident)::+ $(<$lt:lifetime>)?;)*) => {$(
        impl<$($lt,)? T: ?Sized + RawEndpoint> RawEndpoint for $($ty)::+<$($lt,)? T> {}
    )*};
}

impl<T: ?Sized + RawEndpoint> RawEndpoint for &T {}
impl<T: ?Sized + RawEndpoint> RawEndpoint for &mut T {}
impl<T: RawEndpoint> RawEndpoint for Option<T> {}
impl<T: RawEndpoint> RawEndpoint for [T] {}
impl<T: RawEndpoint, const N: usize> RawEndpoint for [T; N] {}
impl<T: RawEndpoint> RawEndpoint for Vec<T> {}
impl<T: RawEndpoint> RawEndpoint for VecDeque<T> {}
impl<K, T: RawEndpoint, S> RawEndpoint for HashMap<K, T, S> {}
impl<K, T: RawEndpoint> RawEndpoint for BTreeMap<K, T> {}

through! {
    std::boxed::Box;
    std::sync::Arc;
    std::rc::Rc;
    std::cell::RefCell;
    std::sync::Mutex;
    std::sync::RwLock;
    std::sync::MutexGuard<'a>;
    tokio::sync::Mutex;
    tokio::sync::RwLock;
    tokio::sync::MutexGuard<'a>;
    tokio::sync::OwnedMutexGuard;
}
