//! The cancellation tree: one [`Node`] per group, holding why it was
//! cancelled, its deadline, the hooks to run and the waiters to wake. The
//! lowest layer of the runtime: it knows nothing of branches, tasks or
//! `Ctx` (tokio-util's `tree_node.rs` under `cancellation_token.rs` is the
//! model).
//!
//! # Invariants
//!
//! - A node is cancelled at most once: whoever sets its cause first cancels
//!   it; the cause slot is the truth, and the waiter list only wakes waiters.
//! - A passed deadline counts as the first cause. Queries ([`Node::is_cancelled`],
//!   [`Node::cause`]) see it without changing anything; every cancellation
//!   first turns it into the cause of the group that set it, so a failure
//!   noticed after the deadline passed (and before a timer fired) does not
//!   take the deadline's place.
//! - A waiter ([`Cancellation`]) registers under the hook lock, which the
//!   cancellation takes after setting the cause: a waiter that finds the
//!   hooks not fired is in the list the cancellation drains and wakes.
//!   The cancellation skips the lock when nothing ever registered: both
//!   sides mark the node's flags word (`HOOKED`, `FIRED`) with a
//!   read-modify-write, the registration under the lock, so whichever
//!   comes second sees the other ([`Node::flags`]).
//! - Cancellation runs the node's hooks exactly once, outside any lock:
//!   child groups (which cancel with `Parent(cause)`) and group channels. A
//!   hook registered after the cancellation runs at once.
//!
//! # Deadlock safety
//!
//! No lock is held while calling out: hooks and wakers are taken out of
//! their lists before they run.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cold::Cold;
use crate::error::Cause;
use crate::sync::{Arc, AtomicUsize, Mutex, Ordering, SetOnce, Weak, lock};

/// Something to tell when a node is cancelled: a child group, a channel.
pub(crate) trait OnCancel: Send + Sync {
    fn on_cancel(&self, cause: &Cause);
}

/// What a node's parent link points to: the enclosing group, which holds
/// its node inline so that a group is one allocation. Only the node is
/// read through it.
pub(crate) trait HasNode: Send + Sync {
    fn node(&self) -> &Node;
}

#[derive(Default)]
struct Hooks {
    list: Vec<Weak<dyn OnCancel>>,
    waiters: Waiters,
    /// Handed out (as children) to code that speaks `CancellationToken`;
    /// made by the first that asks.
    token: Option<CancellationToken>,
}

/// The wakers of the [`Cancellation`] futures waiting on a node: a slab,
/// so that a waiter polled again replaces its waker instead of adding one.
#[derive(Default)]
struct Waiters {
    slots: Vec<Slot>,
    /// The first vacant slot, if any; each vacant slot names the next one.
    vacant: Option<usize>,
}

/// A waiter's slot: 16 bytes, as a vacant slot names the next one by index
/// ([`NONE`] for none) rather than by `Option`, so the waker's pointer niche
/// tells the variants apart; one per waiting branch.
enum Slot {
    Waiting(Waker),
    Vacant(usize),
}

const _: () = assert!(std::mem::size_of::<Slot>() == 16);

/// No slot: the end of the vacant list, or a waiter that holds none.
const NONE: usize = usize::MAX;

impl Waiters {
    fn insert(&mut self, waker: Waker) -> usize {
        if let Some(key) = self.vacant {
            let Slot::Vacant(next) = self.slots[key] else {
                unreachable!("errgroup: the vacant list names a waiting slot")
            };
            self.vacant = (next != NONE).then_some(next);
            self.slots[key] = Slot::Waiting(waker);
            key
        } else {
            self.slots.push(Slot::Waiting(waker));
            self.slots.len() - 1
        }
    }

    fn update(&mut self, key: usize, waker: &Waker) {
        if let Slot::Waiting(old) = &mut self.slots[key] {
            old.clone_from(waker);
        }
    }

    fn remove(&mut self, key: usize) {
        self.slots[key] = Slot::Vacant(self.vacant.unwrap_or(NONE));
        self.vacant = Some(key);
    }

    fn wake_all(self) {
        if self.slots.is_empty() {
            return;
        }
        // The in-task branches of a group all wait with their driver's
        // waker: one wake per run of the same task, not one per branch.
        let mut last: Option<Waker> = None;
        for slot in self.slots {
            if let Slot::Waiting(waker) = slot {
                if last.as_ref().is_some_and(|last| last.will_wake(&waker)) {
                    continue;
                }
                if let Some(last) = last.replace(waker) {
                    last.wake();
                }
            }
        }
        if let Some(last) = last {
            last.wake();
        }
    }
}

/// One group's place in the cancellation tree.
pub(crate) struct Node {
    cause: SetOnce<Cause>,
    /// This group's own deadline, from `timeout`/`deadline`.
    deadline: Option<Instant>,
    /// The earliest deadline of this group and its ancestors.
    effective_deadline: Option<Instant>,
    parent: Option<Arc<dyn HasNode>>,
    /// Made by the first registration, and taken by the cancellation: a
    /// [`Cold`], so that a node nothing registered with (most groups' core)
    /// drops it with a test, where its three lists' drop was a call.
    hooks: Mutex<Cold<Hooks>>,
    /// [`HOOKED`] once a hook, waiter or token was registered (under the
    /// hook lock), [`FIRED`] once the cause is set: a cancellation takes the
    /// hook lock only if something was registered, as most groups' one
    /// cancellation (`Finished`) has nobody to tell. Both are
    /// read-modify-writes of this word, so of a registration and a
    /// cancellation racing, one sees the other: the cancellation drains the
    /// registration, or the registration sees the node fired.
    flags: AtomicUsize,
    /// A word of the node's owner (state.rs's flags), opaque here: kept in
    /// the node so that a group reaches its ancestors' words through the
    /// parent links, without a call up into them.
    owner_word: AtomicUsize,
}

/// [`Node::flags`]: something was registered under the hook lock.
const HOOKED: usize = 1;
/// [`Node::flags`]: the cause is set; a registration from now on fires at once.
const FIRED: usize = 2;

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("cause", &self.cause.get())
            .field("deadline", &self.effective_deadline)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// A root node without a deadline, as its group's core is first
    /// written in place; [`Node::place`] then puts it where it belongs.
    // `#[inline]`: written in place in its group's core rather than copied in.
    #[inline]
    pub(crate) fn new() -> Node {
        Node {
            cause: SetOnce::new(),
            deadline: None,
            effective_deadline: None,
            parent: None,
            hooks: Mutex::new(Cold::new(None)),
            flags: AtomicUsize::new(0),
            owner_word: AtomicUsize::new(0),
        }
    }

    /// Puts a new node under `parent` (it inherits the parent's
    /// deadline), with `deadline`. The owner registers itself as the
    /// parent's hook once it has an `Arc`.
    #[inline]
    pub(crate) fn place(&mut self, parent: Option<Arc<dyn HasNode>>, deadline: Option<Instant>) {
        let inherited = parent.as_ref().and_then(|p| p.node().effective_deadline);
        self.effective_deadline = match (deadline, inherited) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.deadline = deadline;
        self.parent = parent;
    }

    /// Whether the hooks have fired, or are about to (see [`Node::flags`]);
    /// marks the node as hooked. Called under the hook lock by whoever is
    /// about to register: the one record of the cancellation is the cause,
    /// and `FIRED` is set once it is, before the lock is taken to drain.
    fn fired(&self, _hooks: &Cold<Hooks>) -> bool {
        self.flags.fetch_or(HOOKED, Ordering::AcqRel) & FIRED != 0
    }

    pub(crate) fn parent(&self) -> Option<&Node> {
        self.parent.as_deref().map(HasNode::node)
    }

    /// The owner's word (see the field).
    #[inline]
    pub(crate) fn owner_word(&self) -> &AtomicUsize {
        &self.owner_word
    }

    /// Cancels the node with `cause`; `false` if it was already cancelled,
    /// or if its deadline had passed: then the deadline is the cause.
    pub(crate) fn cancel(&self, cause: Cause) -> bool {
        if !self.cause.is_set() && self.deadline_passed() {
            let owner = self.owner_of_deadline();
            if std::ptr::eq(owner, self) {
                self.set_cause(Cause::DeadlineExceeded);
                return false;
            }
            // Reaches this node through the hooks of the levels between...
            owner.set_cause(Cause::DeadlineExceeded);
            if self.cause.is_set() {
                return false;
            }
            // ...unless this call is that hook running: `cause` is then how
            // the owner's cancellation reaches this node.
        }
        self.set_cause(cause)
    }

    fn set_cause(&self, cause: Cause) -> bool {
        if !self.cause.set(cause) {
            return false;
        }
        // Nothing registered: nobody to tell, no lock to take.
        if self.flags.fetch_or(FIRED, Ordering::AcqRel) & HOOKED == 0 {
            return true;
        }
        let Some(Hooks {
            list: hooks,
            waiters,
            token,
        }) = lock(&self.hooks).take()
        else {
            return true;
        };
        waiters.wake_all();
        if let Some(token) = token {
            token.cancel();
        }
        // The cause is read (a lock and a clone) only for hooks to run: most
        // groups have none.
        if hooks.is_empty() {
            return true;
        }
        if let Some(cause) = self.cause.get() {
            for hook in hooks.iter().filter_map(Weak::upgrade) {
                hook.on_cancel(&cause);
            }
        }
        true
    }

    /// Runs `hook` when the node is cancelled, or now if it already is.
    pub(crate) fn on_cancel(&self, hook: Weak<dyn OnCancel>) {
        let mut hooks = lock(&self.hooks);
        if self.fired(&hooks) {
            drop(hooks);
            if let (Some(hook), Some(cause)) = (hook.upgrade(), self.cause.get()) {
                hook.on_cancel(&cause);
            }
            return;
        }
        let list = &mut hooks.get_or_insert_default().list;
        if list.len() == list.capacity() {
            // Child groups come and go; keep the list as long as the live ones.
            list.retain(|w| w.strong_count() > 0);
        }
        list.push(hook);
    }

    /// Whether the node's cause is set (a passed deadline not yet turned
    /// into one does not count).
    pub(crate) fn is_set(&self) -> bool {
        self.cause.is_set()
    }

    /// What [`cancel`](Node::cancel) would return, where it need not be
    /// called as nobody could see the cause it keeps: `Some(false)` if
    /// the node is cancelled already, `Some(true)` if it is not and has
    /// nothing to tell (nothing hooked, no deadline passed that
    /// `cancel` would make the cause instead), `None` otherwise.
    pub(crate) fn would_cancel(&self) -> Option<bool> {
        if self.cause.is_set() {
            return Some(false);
        }
        if self.flags.load(Ordering::Acquire) & HOOKED != 0 || self.deadline_passed() {
            return None;
        }
        Some(true)
    }

    /// Whether the node is cancelled, or its deadline has passed. A query:
    /// it changes nothing (a spinning branch still sees a deadline that no
    /// timer has turned into a cancellation yet).
    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cause.is_set() || self.deadline_passed()
    }

    #[inline]
    fn deadline_passed(&self) -> bool {
        self.effective_deadline
            .is_some_and(|at| Instant::now() >= at)
    }

    /// The node whose own deadline is the effective one.
    fn owner_of_deadline(&self) -> &Node {
        let at = self.effective_deadline;
        let mut node = self;
        while node.deadline != at {
            match node.parent() {
                Some(parent) => node = parent,
                None => break,
            }
        }
        node
    }

    /// Why the node was cancelled, `None` while it is not. A deadline that
    /// has passed unseen by any timer is reported as the cancellation it is
    /// about to be: `DeadlineExceeded` on the group that set it, wrapped in
    /// `Parent` once per level below it.
    pub(crate) fn cause(&self) -> Option<Cause> {
        if let Some(cause) = self.cause.get() {
            return Some(cause);
        }
        if !self.deadline_passed() {
            return None;
        }
        let at = self.effective_deadline;
        let mut levels = 0;
        let mut node = self;
        while node.deadline != at {
            match node.parent() {
                Some(parent) => {
                    if let Some(cause) = parent.cause.get() {
                        return Some(wrap(cause, levels + 1));
                    }
                    node = parent;
                    levels += 1;
                }
                None => break,
            }
        }
        Some(wrap(Cause::DeadlineExceeded, levels))
    }

    /// A token cancelled with this node (a child: cancelling it cancels
    /// nothing here).
    pub(crate) fn token(&self) -> CancellationToken {
        let mut hooks = lock(&self.hooks);
        if self.fired(&hooks) {
            let token = CancellationToken::new();
            token.cancel();
            return token;
        }
        hooks
            .get_or_insert_default()
            .token
            .get_or_insert_with(CancellationToken::new)
            .child_token()
    }

    /// Completes once the node is cancelled.
    pub(crate) fn cancellation(&self) -> Cancellation<'_> {
        Cancellation {
            node: self,
            key: NONE,
        }
    }

    pub(crate) fn effective_deadline(&self) -> Option<Instant> {
        self.effective_deadline
    }

    #[inline]
    pub(crate) fn own_deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

fn wrap(mut cause: Cause, levels: usize) -> Cause {
    for _ in 0..levels {
        cause = Cause::Parent(Box::new(cause));
    }
    cause
}

/// Completes once its node is cancelled (by its cause; a passed deadline is
/// the caller's to check, as the group's timer turns it into a cancellation).
///
/// # Cancellation safety
///
/// Cancellation safe: dropping it only takes its waker out of the list.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub(crate) struct Cancellation<'a> {
    node: &'a Node,
    /// Its slot in the waiter list, once it has waited.
    /// ([`NONE`] until then: a `usize` rather than an `Option`, 8 bytes less
    /// in every waiting branch.)
    key: usize,
}

impl Future for Cancellation<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.node.cause.is_set() {
            return Poll::Ready(());
        }
        let mut hooks = lock(&this.node.hooks);
        if this.node.fired(&hooks) {
            // The list was drained with our slot in it (or, fired without
            // the lock, never held it).
            this.key = NONE;
            return Poll::Ready(());
        }
        let waiters = &mut hooks.get_or_insert_default().waiters;
        match this.key {
            NONE => this.key = waiters.insert(cx.waker().clone()),
            key => waiters.update(key, cx.waker()),
        }
        Poll::Pending
    }
}

impl Drop for Cancellation<'_> {
    fn drop(&mut self) {
        // Once the cause is set, the cancellation drains the list (it has,
        // or is about to, under the lock): nothing to take out.
        if self.key != NONE && !self.node.cause.is_set() {
            let key = self.key;
            let mut hooks = lock(&self.node.hooks);
            if self.node.flags.load(Ordering::Acquire) & FIRED == 0 {
                if let Some(hooks) = hooks.as_mut() {
                    hooks.waiters.remove(key);
                }
            }
        }
    }
}
