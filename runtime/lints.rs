//! Type-based halves of the `raw_channel` check: what `errgroup!` emits,
//! in code that never runs, to ask the compiler whether a value is a raw
//! channel endpoint.
//!
//! Two probes, both selected by autoref specialisation and both failing
//! through a trait that carries `#[diagnostic::on_unimplemented]`, so the
//! error reads as a sentence and lands on the user's tokens:
//!
//! - [`probe`] takes `&place` for the receiver of a `.send()`, `.recv()`, ..
//!   call (emitted as `if false { .. }` before the statement, so it never
//!   runs, moves nothing and only takes a shared borrow of a place the
//!   statement uses anyway).
//! - [`Callee`] wraps the callee of a call written as a partial path
//!   (`mpsc::channel(8)`), passing the function item through unchanged.
//!
//! # Invariants
//!
//! A type that is not a raw endpoint (or a raw endpoint behind `&`, `&mut`,
//! `Box`, `Arc`, `Rc`, `Option`, a mutex, a lock or a `RefCell`) never fails
//! a probe: the fallback methods are implemented for every type.

use core::marker::PhantomData;

/// A value of type `T` as seen by the probe; never constructed at run time.
#[derive(Debug)]
pub struct Probe<T: ?Sized>(PhantomData<T>);

/// The probe of `value`'s type (the value itself is not used).
#[must_use]
pub fn probe<T: ?Sized>(_value: &T) -> Probe<T> {
    Probe(PhantomData)
}

/// Raw channel endpoints, and the wrappers they are reached through.
pub trait RawEndpoint {}

/// What a raw endpoint inside a branch fails on.
#[diagnostic::on_unimplemented(
    message = "this operates on a raw channel endpoint (`{Self}`) inside an `errgroup!` branch",
    label = "a raw channel, not bound to the group",
    note = "a raw channel is not closed when the group is cancelled, so a branch blocked on it can hang the group",
    note = "use a group-bound channel: the header `let (tx, rx) = channel(cap);` above the branches, or `ctx.channel(cap)`; or mark the branch `#[allow(raw_channel)]`"
)]
pub trait GroupBound {}

/// Chosen when the probed type is a raw endpoint: its method requires
/// [`GroupBound`], which no raw endpoint implements.
pub trait RawOperation<T: ?Sized> {
    /// Fails to compile for every `T`.
    fn errgroup_check(&self)
    where
        T: GroupBound,
    {
    }
}

impl<T: ?Sized + RawEndpoint> RawOperation<T> for Probe<T> {}

/// Chosen for every other type, one autoref later: compiles.
pub trait OtherOperation {
    /// Does nothing.
    fn errgroup_check(&self) {}
}

impl<T: ?Sized> OtherOperation for &Probe<T> {}

/// The pair a raw channel constructor returns.
pub trait RawPair {}

/// What a raw channel constructor inside a branch fails on.
#[diagnostic::on_unimplemented(
    message = "this creates a raw channel (`{Self}`) inside an `errgroup!` branch",
    label = "a raw channel constructor",
    note = "a raw channel is not closed when the group is cancelled, so a branch blocked on it can hang the group",
    note = "use a group-bound channel: the header `let (tx, rx) = channel(cap);` above the branches, or `ctx.channel(cap)`; or mark the branch `#[allow(raw_channel)]`"
)]
pub trait GroupBoundConstructor {}

/// A callee written as a partial path: passed through unchanged.
#[derive(Clone, Copy, Debug)]
pub struct Callee<F>(pub F);

/// Chosen when the callee, given no argument, returns a raw pair.
pub trait RawConstructor0<R> {
    /// Fails to compile for every `R`.
    #[must_use]
    fn errgroup_callee0(&self) -> Self
    where
        R: GroupBoundConstructor,
        Self: Copy,
    {
        *self
    }
}

impl<F: Copy + FnOnce() -> R, R: RawPair> RawConstructor0<R> for Callee<F> {}

/// Chosen for every other callee: returns it.
pub trait OtherCallee0<F> {
    /// The callee, unchanged.
    fn errgroup_callee0(&self) -> Callee<F>;
}

impl<F: Copy> OtherCallee0<F> for &Callee<F> {
    fn errgroup_callee0(&self) -> Callee<F> {
        **self
    }
}

/// Chosen when the callee, given one argument, returns a raw pair.
pub trait RawConstructor1<A, R> {
    /// Fails to compile for every `R`.
    #[must_use]
    fn errgroup_callee1(&self) -> Self
    where
        R: GroupBoundConstructor,
        Self: Copy,
    {
        *self
    }
}

impl<A, F: Copy + FnOnce(A) -> R, R: RawPair> RawConstructor1<A, R> for Callee<F> {}

/// Chosen for every other callee: returns it.
pub trait OtherCallee1<F> {
    /// The callee, unchanged.
    fn errgroup_callee1(&self) -> Callee<F>;
}

impl<F: Copy> OtherCallee1<F> for &Callee<F> {
    fn errgroup_callee1(&self) -> Callee<F> {
        **self
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
        impl<T> RawPair for ($($tx)::+<T>, $($rx)::+<T>) {}
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
