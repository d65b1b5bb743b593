//! Type-based halves of the `raw_channel` and `detached_spawn` checks: what
//! `errgroup!` emits, in code that never runs, to ask the compiler whether a
//! value a branch names is, or holds, a raw channel endpoint or a detached
//! task (`macros/src/lints.rs` says where the macro asks, and why there).
//!
//! # Recording a type, checking it later
//!
//! A place is recorded as `w = witness(&place)`, in `if false { loop {}
//! .. }` code: type-checked, but never reached by the borrow checker, so a
//! recording moves and borrows nothing and keeps no borrow alive. A value
//! is recorded as `match value { v => { if false { w = witness(&v); } v }
//! }`, which borrows only its own binding `v`, and a [`Witness`] holds no
//! borrow. `w` is declared untyped at the top of the block; its check is
//! written before the block's last statement, where inference has fixed the
//! type (`let mut v = Vec::new();` is a `Vec<u32>` only once `v.push(1u32)`
//! was read). Other values are checked where they are ([`shallow`],
//! [`function`], [`pass_check`]).
//!
//! # Picking the answer by type
//!
//! The check calls `probe.errgroup_verdict()` on an [`Ask`], the probe
//! five references deep (`&&&&&Probe<T>`); method resolution tries the
//! receiver types in autoderef order, one trait per level:
//!
//! 1. `&&&&Probe<T>`, [`ViaTuple`]: `T` is a tuple whose first element
//!    holds a raw endpoint or task ([`FirstRaw`]: a constructor's `(Sender,
//!    Receiver)`, which the positional [`Raw`] impls of tuples would find
//!    twice);
//! 2. `&&&Probe<T>`, [`ViaRaw`]: `T` holds one ([`Raw`]), directly or
//!    through `&`, `&mut`, `Box`, `Arc`, `Rc`, `Weak`, `Pin`, `Option`,
//!    `Result`, `Cell`, `RefCell` and its guards, the std and tokio
//!    `Mutex`/`RwLock` and their guards, `LazyLock`, `OnceLock`,
//!    `OnceCell`, `ManuallyDrop`, `AssertUnwindSafe`, arrays, slices, `Vec`,
//!    `VecDeque`, `LinkedList`,
//!    `HashMap`/`BTreeMap` values, and any element of a tuple of up to six. A
//!    [`Shallow`] probe goes through pointers and guards only ([`Head`]);
//! 3. `&Probe<T, Fun>`, [`ViaFn`]: `T` is a function or closure of up to
//!    three arguments that returns one ([`Leaf`]: `tokio::spawn` or
//!    `mpsc::channel::<u32>` used as a value);
//! 4. `Probe<T>`, [`ViaOther`]: every other type.
//!
//! The first three answer [`Flagged`], the last [`NotRaw`]. The emitted code
//! then hands `channel()` / `task()` / `local_task()` of the answer, a
//! pair of its crate (a [`from`] marker) and its type, to [`GroupChannel`] /
//! [`GroupTask`] / [`GroupLocalTask`] (public as `errgroup::lint`), written
//! as a path call (`GroupChannel::errgroup_bound((verdict).channel())`):
//! one call per kind, whose argument's type fixes both the trait's `Self`
//! and its crate. Only `NotRaw` implements those traits, so a raw value
//! fails there, with the trait's `#[diagnostic::on_unimplemented]` message
//! naming its crate and its type.
//!
//! A type still unknown when its check runs is taken for a raw one (every
//! level "may" apply); when inference later fixes it to something else,
//! [`FirstRaw`], [`Raw`], [`Head`] or [`Leaf`] is what fails, and their
//! message says the value was checked too early and how to give it its
//! type. Every level's impl is generic in `T`, so choosing one does not
//! change what inference makes of the type.
//!
//! # Invariants
//!
//! A type that holds no raw endpoint or task handle through the wrappers
//! above, and is no function returning one, never fails a check: the
//! `ViaOther` answer exists for every type. A user type is never looked
//! into: what it holds is its own business (the README says so).

use core::marker::PhantomData;

/// A type named without being held: contravariant, `Send`, `Sync`.
type Of<T> = fn(&T);
use std::collections::{BTreeMap, HashMap, VecDeque};

/// The type of one place or value a branch names; zero-sized, and built
/// only to be checked in code that never runs.
#[derive(Debug)]
pub struct Witness<T: ?Sized>(PhantomData<fn(&T)>);

impl<T: ?Sized> Witness<T> {
    /// A value of the witnessed type, to replay the fields and indexes the
    /// user wrote above it; called only inside `if false { .. }`.
    #[must_use]
    pub fn value(&self) -> &'static T {
        unreachable!("errgroup's lint checks never run")
    }

    /// The deep probe the check asks.
    #[must_use]
    pub fn probe(&self) -> Ask<'_, T> {
        ask()
    }

    /// The function probe the check asks.
    #[must_use]
    pub fn function(&self) -> Ask<'_, T, Fun> {
        ask()
    }

    /// The shallow probe the check asks.
    #[must_use]
    pub fn shallow(&self) -> Ask<'_, T, Shallow> {
        ask()
    }
}

/// The witness of `value`'s type; called only inside `if false { .. }`.
#[must_use]
pub fn witness<T: ?Sized>(value: &T) -> Witness<T> {
    let _ = value;
    Witness(PhantomData)
}

/// `value`, unchanged; `check` is only type-checked, never called (the
/// check of a value in a block's last statement, which nothing after it
/// could fix the type of).
#[inline]
pub fn pass_check<T>(value: T, check: impl FnOnce(&T)) -> T {
    let _ = check;
    value
}

/// A type as seen by the checks.
#[derive(Debug)]
pub struct Probe<T: ?Sized, D = Deep>(PhantomData<(D, Of<T>)>);

/// A probe as a check asks it, `(&&&&&probe).errgroup_verdict()` made
/// once here instead of in every check: method resolution starts five
/// references deep and tries each level's trait in turn (see the module
/// docs).
pub type Ask<'a, T, D = Deep> = &'a &'a &'a &'a &'a Probe<T, D>;

/// The probe of a type, as a check asks it.
const fn ask<'a, T: ?Sized, D>() -> Ask<'a, T, D> {
    &&&&&Probe(PhantomData)
}

/// A probe that looks through every wrapper ([`Raw`]): for a type that
/// inference has fixed, at a block's late checks.
#[derive(Debug)]
pub struct Deep;

/// A probe that looks only through pointers and guards ([`Head`]): for a
/// type that inference may not have fixed yet (`x.try_into().map_err(f)`
/// is a `Result<?, E>` until later code says what `?` is, and a deep probe
/// would take the unknown for a raw endpoint).
#[derive(Debug)]
pub struct Shallow;

/// A deep probe that also takes a function (or closure) that returns a
/// raw endpoint, pair or task handle for one (`tokio::spawn`,
/// `mpsc::channel::<u8>` used as values): for names, whose value may be a
/// function item.
#[derive(Debug)]
pub struct Fun;

/// The function probe of a name's value.
#[must_use]
pub fn function<T: ?Sized>(value: &T) -> Ask<'_, T, Fun> {
    let _ = value;
    ask()
}

/// The shallow probe of a place's or a value's type, checked where it is.
#[must_use]
pub fn shallow<T: ?Sized>(value: &T) -> Ask<'_, T, Shallow> {
    let _ = value;
    ask()
}

/// The probe of a place's type, checked where it is (see [`pass_check`]).
#[must_use]
pub fn probe<T: ?Sized>(value: &T) -> Ask<'_, T> {
    let _ = value;
    ask()
}

/// The kind of a raw endpoint.
#[derive(Debug)]
pub struct Channel;
/// The kind of a detached task's handle.
#[derive(Debug)]
pub struct Task;
/// Where [`Raw`] found the value: here.
#[derive(Debug)]
pub struct Here;
/// ... or in element `I` of a tuple, at `M` inside it.
#[derive(Debug)]
pub struct Elem<M, const I: usize>(PhantomData<M>);

/// Declares a trait that finds a raw endpoint or task in a type: its
/// crate and the endpoint or handle itself, both named in the error. A
/// type that does not implement it is one the check took for a raw one
/// while it was still unknown: the message says so, once for all of them.
macro_rules! finder {
    ($(#[$doc:meta])* $name:ident<$($param:ident $(= $default:ty)?),*>) => {
        $(#[$doc])*
        #[diagnostic::on_unimplemented(
            message = "`errgroup!` checked this value before its type (`{Self}`) was known",
            label = "its type is fixed only by later code",
            note = "the raw-channel check takes a type it cannot see yet for a raw endpoint",
            note = "give the value its type where it is made, e.g. `let v: {Self} = ..;` or a turbofish"
        )]
        pub trait $name<$($param $(= $default)?),*> {
            /// The crate the endpoint or task comes from, named in the error.
            type Crate;
            /// The endpoint or handle itself, named in the error.
            type Found: ?Sized;
        }
    };
}

finder! {
    /// Types that are, or hold through a standard wrapper, a raw channel
    /// endpoint (`K` = [`Channel`]) or a detached task's handle ([`Task`]).
    /// `M` says where, so that the impls for a tuple's elements do not overlap.
    Raw<K, M>
}

/// The answer for a raw value: its kind, crate, and type.
#[derive(Debug)]
pub struct Flagged<K, F, T: ?Sized>(PhantomData<(K, F, Of<T>)>);

/// The answer for every other value.
#[derive(Debug)]
pub struct NotRaw;

/// Chosen first: a tuple whose first element is raw (what a channel
/// constructor returns).
pub trait ViaTuple<K, M> {
    /// The kind, crate and type found.
    type Answer;
    /// Never called.
    fn errgroup_verdict(&self) -> Self::Answer {
        unreachable!("errgroup's lint checks never run")
    }
}

// Generic in `T`, bound by `FirstRaw`: choosing this level for a type
// still unknown leaves it unknown (an impl for `Probe<(A, B)>` would make
// it a pair), and once known, it fails on `FirstRaw`, whose message says
// the value was checked too early.
impl<K, M, T: ?Sized + FirstRaw<K, M>> ViaTuple<K, M> for &&&&Probe<T> {
    type Answer = Flagged<K, T::Crate, T::Found>;
}

impl<K, M, T: ?Sized + FirstRaw<K, M>> ViaTuple<K, M> for &&&&Probe<T, Fun> {
    type Answer = Flagged<K, T::Crate, T::Found>;
}

finder! {
    /// A tuple whose first element is, or holds, a raw endpoint or task.
    FirstRaw<K, M>
}

macro_rules! first_raw {
    ($($rest:ident),*) => {
        impl<K, M, A: Raw<K, M>, $($rest),*> FirstRaw<K, M> for (A, $($rest),*) {
            type Crate = A::Crate;
            type Found = A::Found;
        }
    };
}
first_raw!(B);
first_raw!(B, C);
first_raw!(B, C, D);

/// Chosen next: a type that holds a raw endpoint or task.
pub trait ViaRaw<K, M> {
    /// The kind, crate and type found.
    type Answer;
    /// Never called.
    fn errgroup_verdict(&self) -> Self::Answer {
        unreachable!("errgroup's lint checks never run")
    }
}

impl<K, M, T: ?Sized + Raw<K, M>> ViaRaw<K, M> for &&&Probe<T> {
    type Answer = Flagged<K, T::Crate, T::Found>;
}

impl<K, M, T: ?Sized + Raw<K, M>> ViaRaw<K, M> for &&&Probe<T, Fun> {
    type Answer = Flagged<K, T::Crate, T::Found>;
}

/// A function's result as the checks see it: a tuple whose first element
/// is raw (`Tuple` = `true`), or any raw type.
/// Chosen next: a function (or closure) of up to three arguments, `Args`
/// their tuple, whose result is raw.
pub trait ViaFn<Args, R, K, M> {
    /// The kind, crate and type found.
    type Answer;
    /// Never called.
    fn errgroup_verdict(&self) -> Self::Answer {
        unreachable!("errgroup's lint checks never run")
    }
}

// One impl per arity: their `Args` differ, so they do not overlap.
macro_rules! via_fn {
    ($($trait:ident $level:ty, $bound:ident<K, $m:ty>, [$($generic:ident),*]: [$($arg:ident),*];)*) => {$(
        impl<$($arg,)* R: $bound<K, $m>, K, $($generic,)* T: FnOnce($($arg),*) -> R>
            $trait<($($arg,)*), R, K, $m> for $level
        {
            type Answer = Flagged<K, R::Crate, R::Found>;
        }
    )*};
}

via_fn! {
    ViaFn &Probe<T, Fun>, Leaf<K, Here>, []: [];
    ViaFn &Probe<T, Fun>, Leaf<K, Here>, []: [A];
    ViaFn &Probe<T, Fun>, Leaf<K, Here>, []: [A, B];
    ViaFn &Probe<T, Fun>, Leaf<K, Here>, []: [A, B, C];
}

/// The traits the checks call, in scope through `use via::*`.
pub mod via {
    pub use super::{IndexProbe as _, ViaFn as _, ViaOther as _, ViaRaw as _, ViaTuple as _};
}

/// Chosen last: every other type.
pub trait ViaOther {
    /// Never called.
    fn errgroup_verdict(&self) -> NotRaw {
        NotRaw
    }
}

impl<T: ?Sized, D> ViaOther for Probe<T, D> {}

// The shallow probe, at the level of the deep one.

impl<K, T: ?Sized + Head<K>> ViaRaw<K, Here> for &&&Probe<T, Shallow> {
    type Answer = Flagged<K, T::Crate, T::Found>;
}

impl<K, A: Head<K>, B> Head<K> for (A, B) {
    type Crate = A::Crate;
    type Found = A::Found;
}

finder! {
    /// A raw endpoint or task handle itself, or a pair whose first element is
    /// one: what a function used as a value is flagged for returning (its
    /// result type may still hold unknown parameters, which a deeper look
    /// would take for raw ones).
    Leaf<K, M = Here>
}

impl<K, A: Leaf<K>, B> Leaf<K> for (A, B) {
    type Crate = A::Crate;
    type Found = A::Found;
}

finder! {
    /// Types that are a raw endpoint or task handle at their head: directly,
    /// or through a pointer or a guard (`&`, `Box`, `Arc`, a `MutexGuard`), or
    /// first in a pair. What a shallow probe flags: none of these hides an
    /// unknown type behind a known one the way `Result<?, E>` does.
    Head<K, M = Here>
}

macro_rules! head_through {
    ($(<$($lt:lifetime,)? $($param:ident),*> $ty:ty => $inner:ident;)*) => {$(
        impl<$($lt,)? K, $($param: ?Sized),*> Head<K> for $ty
        where
            $inner: Head<K>,
        {
            type Crate = <$inner as Head<K>>::Crate;
            type Found = <$inner as Head<K>>::Found;
        }
    )*};
}

head_through! {
    <'a, T> &'a T => T;
    <'a, T> &'a mut T => T;
    <T> std::boxed::Box<T> => T;
    <T> std::sync::Arc<T> => T;
    <T> std::rc::Rc<T> => T;
    <'a, T> core::cell::Ref<'a, T> => T;
    <'a, T> core::cell::RefMut<'a, T> => T;
    <'a, T> std::sync::MutexGuard<'a, T> => T;
    <'a, T> std::sync::RwLockReadGuard<'a, T> => T;
    <'a, T> std::sync::RwLockWriteGuard<'a, T> => T;
    <'a, T> tokio::sync::MutexGuard<'a, T> => T;
    <'a, T> tokio::sync::MappedMutexGuard<'a, T> => T;
    <T> tokio::sync::OwnedMutexGuard<T> => T;
    <'a, T> tokio::sync::RwLockReadGuard<'a, T> => T;
    <'a, T> tokio::sync::RwLockWriteGuard<'a, T> => T;
    <T> tokio::sync::OwnedRwLockReadGuard<T> => T;
    <T> tokio::sync::OwnedRwLockWriteGuard<T> => T;
}

/// What each check of a [`Flagged`] answer hands on: the crate and the
/// value for the check of its own kind, [`NotRaw`] for the others. An
/// associated type, so the kind may still be unknown when the check is
/// type-checked (rustc fixes it with the rest of the obligations).
pub trait Kind {
    /// The crate a channel check names.
    type Channel<F>;
    /// The value a channel check names.
    type ChannelValue<T: ?Sized>: ?Sized;
    /// The crate a task check names.
    type Task<F>;
    /// The value a task check names.
    type TaskValue<T: ?Sized>: ?Sized;
}

impl Kind for Channel {
    type Channel<F> = F;
    type ChannelValue<T: ?Sized> = T;
    type Task<F> = NotRaw;
    type TaskValue<T: ?Sized> = NotRaw;
}

impl Kind for Task {
    type Channel<F> = NotRaw;
    type ChannelValue<T: ?Sized> = NotRaw;
    type Task<F> = F;
    type TaskValue<T: ?Sized> = T;
}

impl<K: Kind, F, T: ?Sized> Flagged<K, F, T> {
    /// For [`GroupChannel`].
    #[must_use]
    pub fn channel(&self) -> (K::Channel<F>, &'static K::ChannelValue<T>) {
        unreachable!("errgroup's lint checks never run")
    }
    /// For [`GroupTask`].
    #[must_use]
    pub fn task(&self) -> (K::Task<F>, &'static K::TaskValue<T>) {
        unreachable!("errgroup's lint checks never run")
    }
    /// For [`GroupLocalTask`].
    #[must_use]
    pub fn local_task(&self) -> (K::Task<F>, &'static K::TaskValue<T>) {
        unreachable!("errgroup's lint checks never run")
    }
}

impl NotRaw {
    /// Passes.
    #[must_use]
    pub fn channel(&self) -> (NotRaw, &'static NotRaw) {
        (NotRaw, &NotRaw)
    }
    /// Passes.
    #[must_use]
    pub fn task(&self) -> (NotRaw, &'static NotRaw) {
        (NotRaw, &NotRaw)
    }
    /// Passes.
    #[must_use]
    pub fn local_task(&self) -> (NotRaw, &'static NotRaw) {
        (NotRaw, &NotRaw)
    }
}

/// Declares a trait a raw value's check fails on, with its own message:
/// only [`NotRaw`] implements it, so a check passes for every other value
/// only if the verdict was [`NotRaw`].
macro_rules! bound {
    ($(#[$attr:meta])* $name:ident) => {
        $(#[$attr])*
        pub trait $name<Crate> {
            /// Compiles only for [`NotRaw`]: `found` is the crate and the
            /// value a verdict names.
            fn errgroup_bound(found: (Crate, &Self)) {
                let _ = found;
            }
        }

        #[diagnostic::do_not_recommend]
        impl $name<NotRaw> for NotRaw {}
    };
}

bound! {
    /// What a raw channel endpoint inside a branch fails on.
    #[diagnostic::on_unimplemented(
        message = "an `errgroup!` branch names a raw {Crate} channel endpoint (`{Self}`)",
        label = "a raw channel, not bound to the group",
        note = "a raw channel is not closed when the group is cancelled, so a branch blocked on it can hang the group",
        note = "use a group-bound channel: the header `let (tx, rx) = channel(cap);` above the branches, or `ctx.channel(cap)`; or mark the branch `#[allow(raw_channel)]`"
    )]
    GroupChannel
}

bound! {
    /// What a detached task inside a branch fails on.
    #[diagnostic::on_unimplemented(
        message = "an `errgroup!` branch starts or holds a detached {Crate} task (`{Self}`)",
        label = "a detached task",
        note = "the group neither waits for nor cancels a detached task",
        note = "run it as a branch marked `#[spawn]`, start it with `ctx.spawn(name, future)`, or give it a nested `errgroup!`; or mark the branch `#[allow(detached_spawn)]`"
    )]
    GroupTask
}

bound! {
    /// What a `spawn_local` inside a branch fails on: its future need not be
    /// `Send`, which `#[spawn]` and `ctx.spawn` require.
    #[diagnostic::on_unimplemented(
        message = "an `errgroup!` branch starts a detached {Crate} local task (`{Self}`)",
        label = "a detached local task",
        note = "the group neither waits for nor cancels a detached task",
        note = "run the future in the branch's own task with a nested `errgroup! {{ .. }}` inside the branch (its branches need not be `Send`); or mark the branch `#[allow(detached_spawn)]`"
    )]
    GroupLocalTask
}

/// A place `container[index]` as seen by the probes, without evaluating or
/// moving `index` a second time: only its type is taken, from `&index`.
pub trait IndexProbe<I> {
    /// The element's type, in code that never runs.
    type Output: ?Sized;
    /// Never returns; called only inside `if false { .. }`.
    fn errgroup_index(&self, index: Ask<'_, I>) -> &Self::Output;
}

impl<C: ?Sized + core::ops::Index<I>, I> IndexProbe<I> for C {
    type Output = C::Output;
    fn errgroup_index(&self, _index: Ask<'_, I>) -> &C::Output {
        unreachable!("errgroup's lint probes never run")
    }
}

/// The crates a raw endpoint or task comes from, as the errors name them.
#[allow(non_camel_case_types)]
pub mod from {
    /// tokio (`tokio::sync::{mpsc, oneshot, broadcast, watch}`, `tokio::task`).
    #[derive(Debug)]
    pub struct tokio;
    /// std (`std::sync::mpsc`, `std::thread`); not `std`, a name rustc
    /// would print with its whole path.
    #[derive(Debug)]
    pub struct stdlib;
    /// async-channel.
    #[derive(Debug)]
    pub struct async_channel;
    /// crossbeam-channel.
    #[derive(Debug)]
    pub struct crossbeam_channel;
    /// flume.
    #[derive(Debug)]
    pub struct flume;
    /// kanal.
    #[derive(Debug)]
    pub struct kanal;
    /// futures-channel.
    #[derive(Debug)]
    pub struct futures_channel;
}

/// A raw channel endpoint, as the lint features' test names it: `T` holds
/// one, directly (`M` = [`Here`]) or through the wrappers.
pub trait RawEndpoint<M = Here> {}

impl<M, T: ?Sized + Raw<Channel, M>> RawEndpoint<M> for T {}

/// A raw channel pair, as a constructor returns it.
pub trait RawPair {}

impl<A: RawEndpoint, B: RawEndpoint> RawPair for (A, B) {}

// An optional crate's impls carry its feature twice: to compile them only
// with it, and (on docs.rs, `--cfg docsrs`) to label them with it.
macro_rules! raw {
    ($kind:ident: $($(#[cfg(feature = $feature:literal)])? $($ty:ident)::+ => $from:ident;)*) => {$(
        $(#[cfg(feature = $feature)] #[cfg_attr(docsrs, doc(cfg(feature = $feature)))])?
        impl<T> Raw<$kind, Here> for $($ty)::+<T> {
            type Crate = from::$from;
            type Found = Self;
        }

        $(#[cfg(feature = $feature)] #[cfg_attr(docsrs, doc(cfg(feature = $feature)))])?
        impl<T> Head<$kind> for $($ty)::+<T> {
            type Crate = from::$from;
            type Found = Self;
        }

        $(#[cfg(feature = $feature)] #[cfg_attr(docsrs, doc(cfg(feature = $feature)))])?
        impl<T> Leaf<$kind> for $($ty)::+<T> {
            type Crate = from::$from;
            type Found = Self;
        }
    )*};
}

raw! { Channel:
    tokio::sync::mpsc::Sender => tokio;
    tokio::sync::mpsc::Receiver => tokio;
    tokio::sync::mpsc::UnboundedSender => tokio;
    tokio::sync::mpsc::UnboundedReceiver => tokio;
    tokio::sync::mpsc::WeakSender => tokio;
    tokio::sync::mpsc::WeakUnboundedSender => tokio;
    tokio::sync::mpsc::OwnedPermit => tokio;
    tokio::sync::oneshot::Sender => tokio;
    tokio::sync::oneshot::Receiver => tokio;
    tokio::sync::broadcast::Sender => tokio;
    tokio::sync::broadcast::WeakSender => tokio;
    tokio::sync::broadcast::Receiver => tokio;
    tokio::sync::watch::Sender => tokio;
    tokio::sync::watch::Receiver => tokio;
    std::sync::mpsc::Sender => stdlib;
    std::sync::mpsc::SyncSender => stdlib;
    std::sync::mpsc::Receiver => stdlib;
    std::sync::mpsc::IntoIter => stdlib;
    async_channel::Sender => async_channel;
    async_channel::Receiver => async_channel;
    async_channel::WeakSender => async_channel;
    async_channel::WeakReceiver => async_channel;
    #[cfg(feature = "crossbeam-channel")] crossbeam_channel::Sender => crossbeam_channel;
    #[cfg(feature = "crossbeam-channel")] crossbeam_channel::Receiver => crossbeam_channel;
    #[cfg(feature = "flume")] flume::Sender => flume;
    #[cfg(feature = "flume")] flume::Receiver => flume;
    #[cfg(feature = "flume")] flume::WeakSender => flume;
    #[cfg(feature = "flume-0_11")] flume_0_11::Sender => flume;
    #[cfg(feature = "flume-0_11")] flume_0_11::Receiver => flume;
    #[cfg(feature = "flume-0_11")] flume_0_11::WeakSender => flume;
    #[cfg(feature = "kanal")] kanal::Sender => kanal;
    #[cfg(feature = "kanal")] kanal::Receiver => kanal;
    #[cfg(feature = "kanal")] kanal::AsyncSender => kanal;
    #[cfg(feature = "kanal")] kanal::AsyncReceiver => kanal;
    #[cfg(feature = "futures-channel")] futures_channel::mpsc::Sender => futures_channel;
    #[cfg(feature = "futures-channel")] futures_channel::mpsc::Receiver => futures_channel;
    #[cfg(feature = "futures-channel")] futures_channel::mpsc::UnboundedSender => futures_channel;
    #[cfg(feature = "futures-channel")] futures_channel::mpsc::UnboundedReceiver => futures_channel;
    #[cfg(feature = "futures-channel")] futures_channel::oneshot::Sender => futures_channel;
    #[cfg(feature = "futures-channel")] futures_channel::oneshot::Receiver => futures_channel;
}

raw! { Task:
    tokio::task::JoinHandle => tokio;
    tokio::task::JoinSet => tokio;
    std::thread::JoinHandle => stdlib;
}

/// Wrappers a raw endpoint or task is reached through: `$ty<.., T>` holds
/// what `T` holds.
macro_rules! through {
    ($(<$($lt:lifetime,)? $($param:ident),*> $ty:ty => $inner:ident;)*) => {$(
        impl<$($lt,)? K, M, $($param: ?Sized),*> Raw<K, M> for $ty
        where
            $inner: Raw<K, M>,
        {
            type Crate = <$inner as Raw<K, M>>::Crate;
            type Found = <$inner as Raw<K, M>>::Found;
        }
    )*};
}

through! {
    <'a, T> &'a T => T;
    <'a, T> &'a mut T => T;
    <T> std::boxed::Box<T> => T;
    <T> std::sync::Arc<T> => T;
    <T> std::sync::Weak<T> => T;
    <T> std::rc::Rc<T> => T;
    <T> std::rc::Weak<T> => T;
    <T> core::cell::RefCell<T> => T;
    <'a, T> core::cell::Ref<'a, T> => T;
    <'a, T> core::cell::RefMut<'a, T> => T;
    <T> std::sync::Mutex<T> => T;
    <T> std::sync::RwLock<T> => T;
    <'a, T> std::sync::MutexGuard<'a, T> => T;
    <'a, T> std::sync::RwLockReadGuard<'a, T> => T;
    <'a, T> std::sync::RwLockWriteGuard<'a, T> => T;
    <T> tokio::sync::Mutex<T> => T;
    <T> tokio::sync::RwLock<T> => T;
    <'a, T> tokio::sync::MutexGuard<'a, T> => T;
    <'a, T> tokio::sync::MappedMutexGuard<'a, T> => T;
    <T> tokio::sync::OwnedMutexGuard<T> => T;
    <'a, T> tokio::sync::RwLockReadGuard<'a, T> => T;
    <'a, T> tokio::sync::RwLockWriteGuard<'a, T> => T;
    <'a, T> tokio::sync::RwLockMappedWriteGuard<'a, T> => T;
    <T> tokio::sync::OwnedRwLockReadGuard<T> => T;
    <T> tokio::sync::OwnedRwLockWriteGuard<T> => T;
}

/// Wrappers whose content must be sized.
macro_rules! through_sized {
    ($(<$($param:ident),*> $ty:ty => $inner:ident;)*) => {$(
        impl<K, M, $($param),*> Raw<K, M> for $ty
        where
            $inner: Raw<K, M>,
        {
            type Crate = <$inner as Raw<K, M>>::Crate;
            type Found = <$inner as Raw<K, M>>::Found;
        }
    )*};
}

through_sized! {
    <T> [T] => T;
    <T> Option<T> => T;
    <T, E> Result<T, E> => T;
    <T> core::cell::Cell<T> => T;
    <T> core::cell::OnceCell<T> => T;
    <T> core::mem::ManuallyDrop<T> => T;
    <T> core::pin::Pin<T> => T;
    <T> std::sync::OnceLock<T> => T;
    <T, F> std::sync::LazyLock<T, F> => T;
    <T> tokio::sync::OnceCell<T> => T;
    <T> Vec<T> => T;
    <T> VecDeque<T> => T;
    <T> std::collections::LinkedList<T> => T;
    <T> std::panic::AssertUnwindSafe<T> => T;
    <Key, T, S> HashMap<Key, T, S> => T;
    <Key, T> BTreeMap<Key, T> => T;
}

impl<K, M, T: Raw<K, M>, const N: usize> Raw<K, M> for [T; N] {
    type Crate = T::Crate;
    type Found = T::Found;
}

/// Each element of a tuple, at its own `Elem<M, I>`: the impls do not
/// overlap, and a tuple with one raw element is found by it.
macro_rules! tuple {
    ($i:literal: $($before:ident,)* [$t:ident] $(,$after:ident)*) => {
        impl<K, M, $($before,)* $t: Raw<K, M>, $($after),*> Raw<K, Elem<M, $i>>
            for ($($before,)* $t, $($after,)*)
        {
            type Crate = $t::Crate;
            type Found = $t::Found;
        }
    };
}

tuple!(0: [A], B);
tuple!(1: A, [B]);
tuple!(0: [A], B, C);
tuple!(1: A, [B], C);
tuple!(2: A, B, [C]);
tuple!(0: [A], B, C, D);
tuple!(1: A, [B], C, D);
tuple!(2: A, B, [C], D);
tuple!(3: A, B, C, [D]);
tuple!(0: [A], B, C, D, E);
tuple!(1: A, [B], C, D, E);
tuple!(2: A, B, [C], D, E);
tuple!(3: A, B, C, [D], E);
tuple!(4: A, B, C, D, [E]);
tuple!(0: [A], B, C, D, E, F);
tuple!(1: A, [B], C, D, E, F);
tuple!(2: A, B, [C], D, E, F);
tuple!(3: A, B, C, [D], E, F);
tuple!(4: A, B, C, D, [E], F);
tuple!(5: A, B, C, D, E, [F]);
