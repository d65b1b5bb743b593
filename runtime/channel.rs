//! Group-bound channels: multi-producer, multi-consumer channels that close
//! when their group is cancelled.
//!
//! A thin layer over [`async_channel`]: each channel registers one hook with
//! its group's cancellation tree ([`Node::on_cancel`]); the hook records the
//! cause and closes the channel, which wakes every blocked sender and
//! receiver. Operations themselves never race a cancellation future, so a
//! send or receive costs what the underlying channel costs, plus one atomic
//! load.
//!
//! # Invariants
//!
//! - The hook holds only weak references to the channel: it never keeps a
//!   sender or receiver alive, so "every sender gone" and "no receiver left"
//!   mean what they say.
//! - The cause is recorded before the channel is closed, so an operation
//!   that sees the channel closed and a cause set was stopped by the
//!   cancellation; closed without a cause means every sender (or every
//!   receiver) is gone.
//! - Once the cause is set, a new `recv` or `send` fails at once, even with
//!   items buffered or room free: a cancelled group stops moving data. (A
//!   `recv` already waiting when the channel closes may still take an item
//!   buffered in that instant: the item is delivered, not lost.)
//! - Items still buffered at the cancellation are not lost silently:
//!   [`Receiver::drain`] hands them out after it; what nobody drains is
//!   dropped with the channel.

use std::fmt;
// `SendError`'s mutex only makes the error `Sync`; it is never shared.
use std::sync::{Mutex, PoisonError};

use crate::sync::{Arc, SetOnce, Weak};

use crate::cancel::{Node, OnCancel};
use crate::error::{Cancelled, Cause};

/// What a channel's senders and receivers share: why it was cancelled, and
/// the hook its group runs on cancellation.
struct Shared<T> {
    cause: SetOnce<Cause>,
    tx: async_channel::WeakSender<T>,
    rx: async_channel::WeakReceiver<T>,
}

impl<T: Send> OnCancel for Shared<T> {
    fn on_cancel(&self, cause: &Cause) {
        self.cause.set(cause.clone());
        if let Some(tx) = self.tx.upgrade() {
            tx.close();
        } else if let Some(rx) = self.rx.upgrade() {
            rx.close();
        }
    }
}

impl<T> Shared<T> {
    /// The `Cancelled` a send or receive hands out once the group is
    /// cancelled: an echo of the cancellation in the branch that gets it.
    fn cancelled(&self) -> Option<Cancelled> {
        let cancelled = self.cause.get().map(Cancelled::new);
        if cancelled.is_some() {
            crate::echo::handed();
        }
        cancelled
    }
}

/// A channel bound to the group of `node`: closed when it is cancelled.
pub(crate) fn bound<T: Send + 'static>(
    node: &Node,
    capacity: Option<usize>,
) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = match capacity {
        Some(capacity) => {
            assert!(
                capacity > 0,
                "errgroup: a group channel needs room for at least one item, got capacity 0 \
                 (Go's unbuffered channel has no equivalent here): use `channel(1)`"
            );
            async_channel::bounded(capacity)
        }
        None => async_channel::unbounded(),
    };
    let shared = Arc::new(Shared {
        cause: SetOnce::new(),
        tx: tx.downgrade(),
        rx: rx.downgrade(),
    });
    let hook: Weak<dyn OnCancel> = Arc::downgrade(&shared) as Weak<Shared<T>>;
    node.on_cancel(hook);
    (
        Sender {
            inner: tx,
            shared: Arc::clone(&shared),
        },
        Receiver { inner: rx, shared },
    )
}

/// The sending half of a group-bound channel. Cloning makes another
/// producer; the channel closes for receivers once every `Sender` is gone.
///
/// Made by a `let (tx, rx) = channel(cap);` header of
/// [`errgroup!`](macro@crate::errgroup), or by [`Ctx::channel`](crate::Ctx::channel)
/// and [`Ctx::unbounded`](crate::Ctx::unbounded).
///
/// ```
/// use errgroup::errgroup;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
/// let (sum,) = errgroup! {
///     type Error = anyhow::Error;
///     let (tx, rx) = channel::<u64>(16);
///     evens => { for n in (0..10).step_by(2) { tx.send(n).await?; } Ok(()) },
///     odds  => { for n in (1..10).step_by(2) { tx.send(n).await?; } Ok(()) },
///     sum   => {
///         let mut sum = 0;
///         while let Some(n) = rx.recv().await? { sum += n; }
///         Ok(sum)
///     },
/// }
/// .map(|((), (), sum)| (sum,))?;
/// assert_eq!(sum, 45);
/// # Ok(()) }
/// ```
pub struct Sender<T> {
    inner: async_channel::Sender<T>,
    shared: Arc<Shared<T>>,
}

/// The receiving half of a group-bound channel. Cloning makes another
/// consumer; each item goes to exactly one of them.
///
/// ```
/// use errgroup::errgroup;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> anyhow::Result<()> {
/// let (_, a, b) = errgroup! {
///     type Error = anyhow::Error;
///     let (tx, rx) = channel::<u32>(4);
///     produce => { for n in 0..100 { tx.send(n).await?; } Ok(()) },
///     worker1 => { let mut got = 0; while let Some(_) = rx.recv().await? { got += 1; } Ok(got) },
///     worker2 => { let mut got = 0; while let Some(_) = rx.recv().await? { got += 1; } Ok(got) },
/// }?;
/// assert_eq!(a + b, 100);
/// # Ok(()) }
/// ```
pub struct Receiver<T> {
    inner: async_channel::Receiver<T>,
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        Receiver {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("len", &self.inner.len())
            .field("capacity", &self.inner.capacity())
            .field("cause", &self.shared.cause.get())
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("len", &self.inner.len())
            .field("capacity", &self.inner.capacity())
            .field("cause", &self.shared.cause.get())
            .finish_non_exhaustive()
    }
}

impl<T> Sender<T> {
    /// Sends `value`, waiting while the channel is full.
    ///
    /// Fails, handing `value` back, once the group is cancelled (a send
    /// blocked on a full channel returns at once) or when no receiver is
    /// left. The error converts into `anyhow::Error` and `Box<dyn Error>`
    /// whatever `T` is, so `tx.send(v).await?` works in any branch.
    ///
    /// # Cancellation safety
    ///
    /// The value is owned by the returned future until it is sent. If the
    /// future is dropped before it completes (a `select!` took another
    /// branch, the group's `grace` expired, the group's future was dropped),
    /// the value was **not** sent and is dropped together with the future;
    /// it is never half-sent and never sent twice. A send stopped by the
    /// group's cancellation does not drop it: the future completes with
    /// [`SendError`], whose [`into_inner`](SendError::into_inner) gives it
    /// back. To keep a value whatever happens, use
    /// [`try_send`](Sender::try_send), which never waits and always hands it
    /// back on failure.
    ///
    /// ```
    /// use errgroup::errgroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let result = errgroup! {
    ///     type Error = anyhow::Error;
    ///     let (tx, rx) = channel::<String>(1);
    ///     produce => {
    ///         tx.send("first".to_string()).await?;
    ///         // Full, and nobody reads: returns once `fail` cancels the group.
    ///         match tx.send("second".to_string()).await {
    ///             Ok(()) => unreachable!(),
    ///             Err(e) => Ok(e.into_inner()),
    ///         }
    ///     },
    ///     fail => { let _ = &rx; Err(anyhow::anyhow!("stop")) },
    /// };
    /// assert_eq!(result.unwrap_err().to_string(), "task `fail` failed: stop");
    /// # }
    /// ```
    pub async fn send(&self, value: T) -> Result<(), SendError<T>> {
        // A cancelled channel is closed; the check up front also stops a
        // send into a channel that still has room.
        if self.shared.cause.is_set() {
            return Err(self.error(value));
        }
        self.inner.send(value).await.map_err(|e| self.error(e.0))
    }

    /// Sends `value` if there is room now, without waiting.
    ///
    /// # Cancellation safety
    ///
    /// Nothing to cancel: it returns at once, and on failure the value is in
    /// the error ([`TrySendError::into_inner`]).
    ///
    /// ```
    /// use errgroup::{errgroup, TrySendError};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (full,) = errgroup! {
    ///     fill => {
    ///         let (tx, _rx) = ctx.channel::<u8>(1);
    ///         tx.try_send(1).unwrap();
    ///         Ok::<_, ()>(matches!(tx.try_send(2), Err(TrySendError::Full(2))))
    ///     },
    /// }
    /// .unwrap();
    /// assert!(full);
    /// # }
    /// ```
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        if self.shared.cause.is_set() {
            return Err(TrySendError::Closed(self.error(value)));
        }
        self.inner.try_send(value).map_err(|e| match e {
            async_channel::TrySendError::Full(value) => TrySendError::Full(value),
            async_channel::TrySendError::Closed(value) => TrySendError::Closed(self.error(value)),
        })
    }

    fn error(&self, value: T) -> SendError<T> {
        SendError {
            value: Mutex::new(value),
            reason: match self.shared.cancelled() {
                Some(cancelled) => Reason::Cancelled(cancelled),
                None => Reason::NoReceiver,
            },
        }
    }

    /// How many items are buffered.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (len,) = errgroup::errgroup! {
    ///     count => { let (tx, _rx) = ctx.unbounded(); tx.try_send(1).unwrap(); Ok::<_, ()>(tx.len()) },
    /// }.unwrap();
    /// assert_eq!(len, 1);
    /// # }
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether nothing is buffered.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (empty,) = errgroup::errgroup! {
    ///     check => { let (tx, _rx) = ctx.channel::<u8>(4); Ok::<_, ()>(tx.is_empty()) },
    /// }.unwrap();
    /// assert!(empty);
    /// # }
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// The capacity, `None` for an unbounded channel.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (cap,) = errgroup::errgroup! {
    ///     check => { let (tx, _rx) = ctx.channel::<u8>(4); Ok::<_, ()>(tx.capacity()) },
    /// }.unwrap();
    /// assert_eq!(cap, Some(4));
    /// # }
    /// ```
    #[must_use]
    pub fn capacity(&self) -> Option<usize> {
        self.inner.capacity()
    }
}

impl<T> Receiver<T> {
    /// Receives the next item, waiting while the channel is empty.
    ///
    /// - `Ok(Some(item))`: an item;
    /// - `Ok(None)`: every sender is gone and the buffer is drained, so a
    ///   `while let Some(x) = rx.recv().await? { .. }` loop ends cleanly;
    /// - `Err(Cancelled)`: the group is cancelled. A receive blocked on an
    ///   empty channel returns at once; items still buffered are not
    ///   delivered: [`drain`](Self::drain) takes them, or they are dropped
    ///   with the channel.
    ///
    /// # Cancellation safety
    ///
    /// Cancellation safe: if the future is dropped before it completes, no
    /// item was taken, and the next `recv` (here or on a clone) gets it.
    ///
    /// ```
    /// use errgroup::errgroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (_, received) = errgroup! {
    ///     type Error = anyhow::Error;
    ///     let (tx, rx) = channel(8);
    ///     produce => { for word in ["a", "b", "c"] { tx.send(word).await?; } Ok(()) },
    ///     consume => {
    ///         let mut got = Vec::new();
    ///         while let Some(word) = rx.recv().await? { got.push(word); }
    ///         Ok(got)
    ///     },
    /// }
    /// .unwrap();
    /// assert_eq!(received, ["a", "b", "c"]);
    /// # }
    /// ```
    pub async fn recv(&self) -> Result<Option<T>, Cancelled> {
        if let Some(cancelled) = self.shared.cancelled() {
            return Err(cancelled);
        }
        match self.inner.recv().await {
            Ok(value) => Ok(Some(value)),
            Err(async_channel::RecvError) => match self.shared.cancelled() {
                Some(cancelled) => Err(cancelled),
                None => Ok(None),
            },
        }
    }

    /// Receives an item if one is buffered now, without waiting.
    ///
    /// # Cancellation safety
    ///
    /// Nothing to cancel: it returns at once.
    ///
    /// ```
    /// use errgroup::{errgroup, TryRecvError};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (got,) = errgroup! {
    ///     check => {
    ///         let (tx, rx) = ctx.channel::<u8>(2);
    ///         assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    ///         tx.try_send(7).unwrap();
    ///         drop(tx);
    ///         let got = rx.try_recv().unwrap();
    ///         assert!(matches!(rx.try_recv(), Err(TryRecvError::Closed)));
    ///         Ok::<_, ()>(got)
    ///     },
    /// }
    /// .unwrap();
    /// assert_eq!(got, 7);
    /// # }
    /// ```
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        if let Some(cancelled) = self.shared.cancelled() {
            return Err(TryRecvError::Cancelled(cancelled));
        }
        self.inner.try_recv().map_err(|e| match e {
            async_channel::TryRecvError::Empty => TryRecvError::Empty,
            async_channel::TryRecvError::Closed => match self.shared.cancelled() {
                Some(cancelled) => TryRecvError::Cancelled(cancelled),
                None => TryRecvError::Closed,
            },
        })
    }

    /// Takes every item buffered now, without waiting, *even once the group
    /// is cancelled*: a consumer told to stop can hand back (nack, requeue,
    /// return to a pool) what was sent but never delivered, so that no item
    /// a `send` accepted is lost silently. After the cancellation nothing
    /// new arrives, so one `drain` empties the channel for good.
    ///
    /// ```
    /// use errgroup::errgroup;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut unprocessed = Vec::new();
    /// let result = errgroup! {
    ///     type Error = anyhow::Error;
    ///     let (tx, rx) = channel(8);
    ///     produce => {
    ///         for job in 1..=3 { tx.send(job).await?; }
    ///         std::fs::read("/no/such/jobs")?; // the source goes away
    ///         Ok(())
    ///     },
    ///     consume => {
    ///         ctx.cancelled().await;
    ///         unprocessed.extend(rx.drain());
    ///         Ok(())
    ///     },
    /// };
    /// assert!(result.is_err());
    /// assert_eq!(unprocessed, [1, 2, 3]);
    /// # }
    /// ```
    pub fn drain(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(|| self.inner.try_recv().ok())
    }

    /// How many items are buffered.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (len,) = errgroup::errgroup! {
    ///     count => { let (tx, rx) = ctx.channel(4); tx.try_send(1).unwrap(); Ok::<_, ()>(rx.len()) },
    /// }.unwrap();
    /// assert_eq!(len, 1);
    /// # }
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether nothing is buffered.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (empty,) = errgroup::errgroup! {
    ///     check => { let (_tx, rx) = ctx.channel::<u8>(4); Ok::<_, ()>(rx.is_empty()) },
    /// }.unwrap();
    /// assert!(empty);
    /// # }
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

/// Why a send failed.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Reason {
    Cancelled(Cancelled),
    NoReceiver,
}

/// A failed [`Sender::send`]: the value that was not sent, and why.
///
/// It implements [`std::error::Error`] + `Send + Sync + 'static` for every
/// `T: Send + 'static` (without `T: Debug` or `T: Sync`), so `?` turns it
/// into `anyhow::Error` or `Box<dyn Error + Send + Sync>`.
///
/// ```
/// use errgroup::errgroup;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (back,) = errgroup! {
///     send => {
///         let (tx, rx) = ctx.channel::<Vec<u8>>(1);
///         drop(rx);
///         let err = tx.send(vec![1, 2, 3]).await.unwrap_err();
///         assert!(err.cancelled().is_none());
///         assert_eq!(err.to_string(), "send failed: no receiver left");
///         Ok::<_, ()>(err.into_inner())
///     },
/// }
/// .unwrap();
/// assert_eq!(back, [1, 2, 3]);
/// # }
/// ```
pub struct SendError<T> {
    // A `Mutex` makes the error `Sync` for any `T: Send`; it is only locked
    // to take the value out.
    value: Mutex<T>,
    reason: Reason,
}

impl<T> SendError<T> {
    /// The value that was not sent.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (v,) = errgroup::errgroup! {
    ///     s => { let (tx, _) = ctx.channel(1); Ok::<_, ()>(tx.send(5).await.unwrap_err().into_inner()) },
    /// }.unwrap();
    /// assert_eq!(v, 5);
    /// # }
    /// ```
    pub fn into_inner(self) -> T {
        self.value
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The cancellation that stopped the send; `None` when it failed
    /// because no receiver was left.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (none,) = errgroup::errgroup! {
    ///     s => { let (tx, _) = ctx.channel(1); Ok::<_, ()>(tx.send(5).await.unwrap_err().cancelled().is_none()) },
    /// }.unwrap();
    /// assert!(none);
    /// # }
    /// ```
    #[must_use]
    pub fn cancelled(&self) -> Option<&Cancelled> {
        match &self.reason {
            Reason::Cancelled(cancelled) => Some(cancelled),
            Reason::NoReceiver => None,
        }
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendError")
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            Reason::Cancelled(cancelled) => write!(f, "send failed: {cancelled}"),
            Reason::NoReceiver => f.write_str("send failed: no receiver left"),
        }
    }
}

impl<T> std::error::Error for SendError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.reason {
            Reason::Cancelled(cancelled) => Some(cancelled),
            Reason::NoReceiver => None,
        }
    }
}

/// A failed [`Sender::try_send`].
///
/// ```
/// use errgroup::TrySendError;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (v,) = errgroup::errgroup! {
///     s => {
///         let (tx, _rx) = ctx.channel(1);
///         tx.try_send(1).unwrap();
///         let err = tx.try_send(2).unwrap_err();
///         assert!(matches!(err, TrySendError::Full(_)));
///         Ok::<_, ()>(err.into_inner())
///     },
/// }.unwrap();
/// assert_eq!(v, 2);
/// # }
/// ```
///
/// Variants may be added in a minor release (`#[non_exhaustive]`): a
/// `match` needs a `_` arm, or use [`into_inner`](TrySendError::into_inner).
#[non_exhaustive]
pub enum TrySendError<T> {
    /// The channel is full; the value is handed back.
    Full(T),
    /// The group is cancelled or no receiver is left.
    Closed(SendError<T>),
}

impl<T> TrySendError<T> {
    /// The value that was not sent.
    ///
    /// ```
    /// let err = errgroup::TrySendError::Full(3);
    /// assert_eq!(err.into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(value) => value,
            TrySendError::Closed(e) => e.into_inner(),
        }
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Closed(e) => f.debug_tuple("Closed").field(e).finish(),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("send failed: channel full"),
            TrySendError::Closed(e) => e.fmt(f),
        }
    }
}

impl<T> std::error::Error for TrySendError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TrySendError::Full(_) => None,
            TrySendError::Closed(e) => e.source(),
        }
    }
}

/// A failed [`Receiver::try_recv`].
///
/// ```
/// use errgroup::TryRecvError;
/// assert_eq!(TryRecvError::Empty.to_string(), "receive failed: channel empty");
/// ```
///
/// Variants may be added in a minor release (`#[non_exhaustive]`): a
/// `match` needs a `_` arm.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TryRecvError {
    /// Nothing is buffered now.
    Empty,
    /// Every sender is gone and the buffer is drained.
    Closed,
    /// The group is cancelled.
    Cancelled(Cancelled),
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("receive failed: channel empty"),
            TryRecvError::Closed => f.write_str("receive failed: every sender is gone"),
            TryRecvError::Cancelled(c) => write!(f, "receive failed: {c}"),
        }
    }
}

impl std::error::Error for TryRecvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TryRecvError::Cancelled(c) => Some(c),
            _ => None,
        }
    }
}
