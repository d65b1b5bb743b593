//! The typed tree of one block: a [`Config`] from its headers and its
//! [`Branch`]es, each with its attributes already read ([`Attrs`]).
//!
//! The rules that can be decided as the tree is built are kept here, where
//! a value is set: a header given twice, after a branch, or with a value
//! that can never work (`limit = 0`, `channel(0)`), and a branch name used
//! twice. They are reported in source order, with the syntax errors.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::{Expr, ExprForLoop, Ident, Lit, Path, Type};

use crate::attr::Attrs;
use crate::errors::Errors;

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

impl Input {
    /// Adds a branch, reporting a name an earlier branch has. Branches that
    /// did not parse are left out of the comparison: their name may be the
    /// very thing that is broken.
    pub(crate) fn push_branch(&mut self, branch: Branch, errors: &mut Errors) {
        let parsed = |b: &Branch| !matches!(b.body, Body::Broken);
        if parsed(&branch)
            && self
                .branches
                .iter()
                .any(|b| parsed(b) && b.name == branch.name)
        {
            errors.at(
                branch.name.span(),
                format!(
                    "the branch name `{}` is used twice\nhelp: give every branch its own name; the names identify failed tasks",
                    branch.name
                ),
            );
        }
        self.branches.push(branch);
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
    /// Sets one header written at `key`, reporting what makes it wrong: a
    /// place after a branch, a second setting, a value that cannot work.
    /// The first setting of a key is the one kept.
    pub(crate) fn set(
        &mut self,
        key: Span,
        header: Header,
        after_branch: bool,
        errors: &mut Errors,
    ) {
        let name = header.key().name();
        if after_branch {
            errors.at(
                key,
                format!("the `{name}` header comes after a branch\nhelp: move every header above the first branch"),
            );
        }
        let order = self.written;
        self.written += 1;
        let taken = match &header {
            Header::Timeout(_) => self.timeout.is_some(),
            Header::Deadline(_) => self.deadline.is_some(),
            Header::Parent(_) => self.parent.is_some(),
            Header::Limit(_) => self.limit.is_some(),
            Header::Grace(_) => self.grace.is_some(),
            Header::ShutdownOn(_) => self.shutdown_on.is_some(),
            Header::OnErrorContinue => self.supervise.is_some(),
            Header::Crate(_) => self.krate.is_some(),
            Header::ErrorType(_) => self.error_type.is_some(),
            Header::Channel(_) => false,
        };
        if taken {
            errors.at(
                key,
                format!("the `{name}` header is set twice\nhelp: remove one of the two"),
            );
        }
        let other_timing = match &header {
            Header::Timeout(_) => self.deadline.is_some(),
            Header::Deadline(_) => self.timeout.is_some(),
            _ => false,
        };
        if other_timing {
            errors.at(
                key,
                "`timeout` and `deadline` both set the group's deadline\nhelp: keep one of them",
            );
        }
        match &header {
            Header::Limit(limit) => {
                if let Some(zero) = literal_zero(limit) {
                    errors.at(
                        zero,
                        "`limit = 0` would never let a branch run\nhelp: use `limit = 1` or more, or leave `limit` out for no limit",
                    );
                }
            }
            Header::Channel(channel) => {
                if let Some(zero) = channel.capacity.as_ref().and_then(literal_zero) {
                    errors.at(
                        zero,
                        "a group channel needs room for at least one item (Go's unbuffered channel has no equivalent here)\n\
                         help: use `channel(1)`",
                    );
                }
            }
            _ => {}
        }
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

/// The span of `expr` if it is the literal `0`.
fn literal_zero(expr: &Expr) -> Option<Span> {
    match expr {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Int(n) if n.base10_digits() == "0" => Some(n.span()),
            _ => None,
        },
        _ => None,
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
