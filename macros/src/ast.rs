//! The typed tree of one block: a [`Config`] from its headers and its
//! [`Branch`]es, each with its attributes already read ([`Attrs`]). The
//! tree only holds what was written; the rules it must satisfy are in
//! `valid.rs`.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::{Expr, ExprForLoop, Ident, Path, Type};

use crate::mode::Mode;

/// The whole block.
#[derive(Default)]
pub(crate) struct Input {
    pub(crate) config: Config,
    pub(crate) branches: Vec<Branch>,
}

pub(crate) struct Branch {
    pub(crate) attrs: Attrs,
    pub(crate) name: Ident,
    pub(crate) body: Body,
}

pub(crate) enum Body {
    Expr(Expr),
    For(ExprForLoop),
    /// The branch did not parse (the error is already recorded). Kept so
    /// the error stub has one value per branch the user wrote.
    Broken,
}

/// What the attributes of one branch ask for.
#[derive(Default)]
pub(crate) struct Attrs {
    pub(crate) mode: Mode,
    /// The mode attribute's name (`spawn`, `blocking`): a moving branch's
    /// `move` is spanned there, so rustc's "value moved here" points at it.
    pub(crate) mode_span: Option<Span>,
    /// `clone(a, b)` on `#[spawn]` or `#[blocking]`: the names cloned into
    /// the branch before it moves them, each as written.
    pub(crate) clones: Vec<Ident>,
    /// `#[allow(raw_channel)]`.
    pub(crate) allow_raw_channel: bool,
    /// `#[allow(detached_spawn)]`.
    pub(crate) allow_detached_spawn: bool,
}

impl Input {
    /// The branch that runs in the group's own task (`Spawn::inline`): the
    /// last, when every branch is a plain `#[spawn]` one and there are two
    /// or more. The group's task would only wait for the others, so no
    /// parallelism is lost, and a 2-branch group spawns one task, not two.
    /// Decided here once; the runtime only runs it so, when it is polled
    /// inside a tokio task at all (what no macro can know).
    pub(crate) fn inline_branch(&self) -> Option<usize> {
        let all_spawn = self
            .branches
            .iter()
            .all(|b| b.attrs.mode == Mode::Spawn && matches!(b.body, Body::Expr(_)));
        (self.branches.len() >= 2 && all_spawn).then(|| self.branches.len() - 1)
    }
}

/// A header key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    Timeout,
    Deadline,
    Parent,
    Limit,
    Grace,
    ShutdownOn,
    OnError,
    Crate,
    ErrorType,
    Channel,
}

impl Key {
    /// The keys written `key = value;` with an identifier as the key (`crate`
    /// is a keyword, `type Error` and `let` have their own syntax).
    pub(crate) const NAMED: [Key; 7] = [
        Key::Timeout,
        Key::Deadline,
        Key::Parent,
        Key::Limit,
        Key::Grace,
        Key::OnError,
        Key::ShutdownOn,
    ];

    pub(crate) fn named(ident: &Ident) -> Option<Key> {
        Key::NAMED.into_iter().find(|key| ident == key.name())
    }

    /// The key as written, and as errors name the header.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Key::Timeout => "timeout",
            Key::Deadline => "deadline",
            Key::Parent => "parent",
            Key::Limit => "limit",
            Key::Grace => "grace",
            Key::ShutdownOn => "shutdown_on",
            Key::OnError => "on_error",
            Key::Crate => "crate",
            Key::ErrorType => "type Error",
            Key::Channel => "let",
        }
    }

    /// What precedes the value (`timeout =`).
    pub(crate) fn before_value(self) -> &'static str {
        match self {
            Key::Timeout => "timeout =",
            Key::Deadline => "deadline =",
            Key::Parent => "parent =",
            Key::Limit => "limit =",
            Key::Grace => "grace =",
            Key::ShutdownOn => "shutdown_on =",
            Key::OnError => "on_error =",
            Key::Crate => "crate =",
            Key::ErrorType => "type Error =",
            Key::Channel => "let .. =",
        }
    }

    /// The header written out, for a help.
    pub(crate) fn example(self) -> &'static str {
        match self {
            Key::Timeout => "`timeout = Duration::from_secs(5);`",
            Key::Deadline => "`deadline = Instant::now() + Duration::from_secs(5);`",
            Key::Parent => "`parent = ctx;`",
            Key::Limit => "`limit = 8;`",
            Key::Grace => "`grace = Duration::from_secs(1);`",
            Key::ShutdownOn => "`shutdown_on = tokio::signal::ctrl_c();`",
            Key::OnError => "`on_error = continue;`",
            Key::Crate => "`crate = my_crate::errgroup;`",
            Key::ErrorType => "`type Error = anyhow::Error;`",
            Key::Channel => "`let (tx, rx) = channel(16);`",
        }
    }
}

/// One parsed header, on its way into the [`Config`].
pub(crate) enum Header {
    Timeout(Expr),
    Deadline(Expr),
    Parent(Expr),
    Limit(Expr),
    Grace(Expr),
    ShutdownOn(Expr),
    OnErrorContinue,
    Crate(Path),
    ErrorType(Type),
    Channel(Box<Channel>),
}

impl Header {
    pub(crate) fn key(&self) -> Key {
        match self {
            Header::Timeout(_) => Key::Timeout,
            Header::Deadline(_) => Key::Deadline,
            Header::Parent(_) => Key::Parent,
            Header::Limit(_) => Key::Limit,
            Header::Grace(_) => Key::Grace,
            Header::ShutdownOn(_) => Key::ShutdownOn,
            Header::OnErrorContinue => Key::OnError,
            Header::Crate(_) => Key::Crate,
            Header::ErrorType(_) => Key::ErrorType,
            Header::Channel(_) => Key::Channel,
        }
    }
}

/// A `let (tx, rx) = channel::<T>(cap);` or `unbounded::<T>()` header.
pub(crate) struct Channel {
    pub(crate) tx: Ident,
    pub(crate) rx: Ident,
    /// The constructor's name (`channel` or `unbounded`), spanned as written.
    pub(crate) constructor: Ident,
    /// The item type from a turbofish, if any.
    pub(crate) item: Option<Type>,
    /// The capacity of a bounded channel.
    pub(crate) capacity: Option<Expr>,
}

/// A header's value and where its key is written.
pub(crate) struct Setting<T> {
    /// Where errors about the header point.
    pub(crate) key: Span,
    pub(crate) value: T,
    /// The header's place among those written: values are evaluated in the
    /// order the user wrote them.
    pub(crate) order: usize,
}

/// What the headers configure, each at most once.
#[derive(Default)]
pub(crate) struct Config {
    pub(crate) timeout: Option<Setting<Expr>>,
    pub(crate) deadline: Option<Setting<Expr>>,
    pub(crate) parent: Option<Setting<Expr>>,
    pub(crate) limit: Option<Setting<Expr>>,
    pub(crate) grace: Option<Setting<Expr>>,
    pub(crate) shutdown_on: Option<Setting<Expr>>,
    /// `on_error = continue;`: supervisor mode.
    pub(crate) supervise: Option<Setting<()>>,
    pub(crate) krate: Option<Setting<Path>>,
    pub(crate) error_type: Option<Setting<Type>>,
    /// Any number, in the order written.
    pub(crate) channels: Vec<Channel>,
    /// Headers set so far, valid or not.
    written: usize,
}

impl Config {
    /// Sets one header written at `key` (`valid::header` has checked it);
    /// the first setting of a key is the one kept.
    pub(crate) fn set(&mut self, key: Span, header: Header) {
        let order = self.written;
        self.written += 1;
        let (slot, value) = match header {
            Header::Timeout(e) => (&mut self.timeout, e),
            Header::Deadline(e) => (&mut self.deadline, e),
            Header::Parent(e) => (&mut self.parent, e),
            Header::Limit(e) => (&mut self.limit, e),
            Header::Grace(e) => (&mut self.grace, e),
            Header::ShutdownOn(e) => (&mut self.shutdown_on, e),
            Header::OnErrorContinue => {
                self.supervise.get_or_insert(Setting {
                    key,
                    value: (),
                    order,
                });
                return;
            }
            Header::Crate(path) => {
                self.krate.get_or_insert(Setting {
                    key,
                    value: path,
                    order,
                });
                return;
            }
            Header::ErrorType(ty) => {
                self.error_type.get_or_insert(Setting {
                    key,
                    value: ty,
                    order,
                });
                return;
            }
            Header::Channel(channel) => {
                self.channels.push(*channel);
                return;
            }
        };
        slot.get_or_insert(Setting { key, value, order });
    }

    /// The path the expansion reaches the runtime by.
    pub(crate) fn krate(&self) -> Krate {
        Krate(self.krate.as_ref().map(|s| s.value.clone()))
    }
}

/// The `errgroup` crate as the expansion names it: `::errgroup`, or the
/// path of the `crate = ..;` header (a re-export, a renamed dependency).
#[derive(Clone)]
pub(crate) struct Krate(Option<Path>);

impl Krate {
    /// The crate's root; `::errgroup` is spanned at `span`.
    pub(crate) fn root(&self, span: Span) -> TokenStream {
        match &self.0 {
            None => quote_spanned!(span=> ::errgroup),
            // As written: the path resolves where the user wrote it.
            Some(path) => quote!(#path),
        }
    }

    /// `<root>::__private`, what the expansion calls.
    pub(crate) fn private(&self, span: Span) -> TokenStream {
        let root = self.root(span);
        quote_spanned!(span=> #root::__private)
    }
}
