//! Lints: raw channels and detached spawns inside branch bodies.
//!
//! Three rules, each off for a branch marked `#[allow(raw_channel)]` or
//! `#[allow(detached_spawn)]`. All three are decided by *type* wherever the
//! name alone could mean something else (a user's `mod flume`, a local
//! `mpsc` module, a closure called `channel`):
//!
//! - **Raw channel constructors.** A call of a path ending in a
//!   constructor's name (`channel`, `bounded`, .., written in full, through
//!   a module, imported anywhere, renamed by a `use` in the body) is passed
//!   through `pass(CALL, |v| check(v))`: evaluated once, where it was, its
//!   temporaries living as long as before; the closure is never called,
//!   only type-checked, after `CALL` was coerced to the type its context
//!   expects. The check fails only when `v` is a raw `(Sender, Receiver)`
//!   pair. A path written with a leading `::` (`::flume::bounded`) can only
//!   be the crate, and is reported here, without a type.
//! - **Raw channel operations.** For `recv.send(..)`, `.recv()`,
//!   `.try_send(..)`, .., the type of the receiver is checked, with no part
//!   of it evaluated, moved or borrowed twice. Two techniques:
//!   - a receiver that is (or is reached through `.lock()`, `.await`, `?`,
//!     `.unwrap()`, .. from) a *place* (`x`, `self.txs[i]`, `(*p).f`) is
//!     probed in an `if false { .. }` statement inserted before the
//!     statement that holds the call: it never runs, moves nothing, and
//!     takes a shared borrow of a place that statement uses anyway. An index
//!     is not evaluated again: only the type of `&i` is taken
//!     (`errgroup_index(probe(&i))` returns the element's type). A place
//!     named by a binding of the same statement's `if let` / `while let`
//!     condition is probed at the top of that body instead, and one named
//!     by a match arm's pattern (in its guard or body) at the top of the
//!     arm's body: where the name means the same.
//!   - any other receiver is a *value* computed from a call, a method call,
//!     an `.await` or a `?` (`make_tx()`, `get_rx().await`,
//!     `state.lock().await` under `.tx`). That base value is rewritten in
//!     place into `(match BASE { v => { if false { check(&v.tx) } v } })`:
//!     evaluated once, where it was, and moved into `v` and out again, which
//!     a value (unlike a place) allows. A method call then autorefs the
//!     match's result exactly as it did the original value (`&`, `&mut` or
//!     by value: the method decides, as before), and the temporaries of
//!     `BASE` live as long as before (a `match` scrutinee's temporaries
//!     live to the end of the enclosing statement). The projections above
//!     the base (`.tx`, `[i]`, `*`) are replayed on `&v` inside the check.
//! - **Detached spawns.** A call of a path ending in `spawn`,
//!   `spawn_blocking` or `spawn_local` is passed through `pass` as
//!   constructors are: the check fails only for tokio's or std's
//!   `JoinHandle`. `::tokio::spawn(..)` is reported by path.
//!
//! Each check is a path call `GroupBound::errgroup_bound(..)` whose argument
//! is spanned from the first to the last token the user wrote, so the error
//! covers them (see `runtime/lints.rs` for how the check picks its answer).
//!
//! Code inside macro invocations is linted when its tokens parse as Rust: a
//! `select!`'s arms (`pat = future, if guard => handler`, `else =>`), a
//! comma-separated list of expressions (`join!`, `vec!`, `assert!`,
//! `format!`), `vec![x; n]`, or statements. Anything else is left as it is,
//! and so are `stringify!`-like macros, whose arguments never run. The
//! place probes of an argument go before the statement that holds the
//! macro (as for any expression); a `select!` handler gets its own at its
//! top, where the arm's bindings are in scope; no statement is added among
//! a statement-list macro's own. The tokens are only replaced when a check
//! had to be written inline.
//!
//! Not covered (and why): a macro body that does not parse as one of those
//! (there is no syntax to rewrite); a place named by a `let` inside a
//! statement-list macro (no statement can be added there); a receiver that is a macro call
//! (`my_tx!().send(..)`: it may expand to a place, which the rewrite would
//! move); an index other than a literal, a name or `&place` under a field
//! (`pairs[i + 1].tx.send(..)`: the index cannot be replayed without
//! evaluating it again, so the collection is probed, which catches
//! `txs[i + 1].send(..)` only); a constructor or spawn renamed by a `use`
//! outside the branch (`use tokio::spawn as go;`: the name is all the macro
//! sees); the endpoints and constructors of `crossbeam-channel`, `flume`,
//! `kanal` and `futures` without the cargo feature that names their types
//! (a constructor written from the crate root, `::flume::bounded`, is
//! reported by path).
//!
//! Rejected although valid: a call named like a constructor or a spawn
//! whose result type is a bare type parameter that only *later* code fixes
//! (`let v = unbounded(); let n: u32 = v;` with a user's
//! `fn unbounded<T: Default>() -> T`): the check meets an unknown type and
//! takes it for a raw one; the error says so, and fixing the type at the
//! call compiles; and an
//! argument of a user's macro that matches it token by token rather than
//! as an expression, when the check rewrote it.

use std::collections::BTreeMap;

use proc_macro2::{Delimiter, Group, Ident, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::visit_mut::{self, VisitMut};
use syn::{Block, Expr, Pat, Stmt, Token, UseTree};

use crate::ast::{Body, Input, Krate};
use crate::errors::Errors;

/// Constructors of raw channels: a module path and its constructor fns
/// (certain when written with a leading `::`).
const CONSTRUCTORS: &[(&[&str], &[&str])] = &[
    (
        &["tokio", "sync", "mpsc"],
        &["channel", "unbounded_channel"],
    ),
    (&["tokio", "sync", "oneshot"], &["channel"]),
    (&["tokio", "sync", "broadcast"], &["channel"]),
    (&["tokio", "sync", "watch"], &["channel"]),
    (&["std", "sync", "mpsc"], &["channel", "sync_channel"]),
    (&["crossbeam_channel"], &["bounded", "unbounded"]),
    (&["crossbeam", "channel"], &["bounded", "unbounded"]),
    (&["flume"], &["bounded", "unbounded"]),
    (&["async_channel"], &["bounded", "unbounded"]),
    (
        &["kanal"],
        &["bounded", "unbounded", "bounded_async", "unbounded_async"],
    ),
    (&["futures", "channel", "mpsc"], &["channel", "unbounded"]),
    (&["futures", "channel", "oneshot"], &["channel"]),
    (&["futures_channel", "mpsc"], &["channel", "unbounded"]),
    (&["futures_channel", "oneshot"], &["channel"]),
];

/// Detached spawns, in full (certain when written `::tokio::spawn`).
const SPAWNS: &[&[&str]] = &[
    &["tokio", "spawn"],
    &["tokio", "task", "spawn"],
    &["tokio", "task", "spawn_blocking"],
    &["tokio", "task", "spawn_local"],
    &["std", "thread", "spawn"],
];

/// Methods of raw endpoints whose receivers are probed by type.
const OPERATIONS: &[&str] = &[
    "send",
    "recv",
    "try_send",
    "try_recv",
    "recv_many",
    "try_recv_many",
    "blocking_send",
    "blocking_recv",
    "blocking_recv_many",
    "send_timeout",
    "recv_timeout",
    "send_deadline",
    "recv_deadline",
    "send_async",
    "recv_async",
    "send_blocking",
    "recv_blocking",
    "reserve",
    "try_reserve",
    "reserve_many",
    "try_reserve_many",
    "unbounded_send",
    "try_next",
    "try_iter",
    "changed",
    "wait_for",
    "borrow_and_update",
    "send_replace",
    "send_modify",
    "send_if_modified",
];

/// Steps from a receiver down to the place it is reached from
/// (`rx.lock().await.recv()` probes `rx`).
const THROUGH: &[&str] = &[
    "lock",
    "read",
    "write",
    "borrow",
    "borrow_mut",
    "as_ref",
    "as_mut",
    "as_deref",
    "as_deref_mut",
    "clone",
    "unwrap",
    "expect",
    "get_mut",
    "blocking_lock",
];

/// Names of raw channel constructors: a call of a path ending in one of
/// these has the value it returns checked by type.
const CONSTRUCTOR_NAMES: &[&str] = &[
    "channel",
    "unbounded_channel",
    "sync_channel",
    "bounded",
    "unbounded",
    "bounded_async",
    "unbounded_async",
];

/// Names of detached spawns: a call of a path ending in one of these has
/// the value it returns checked by type.
const SPAWN_NAMES: &[&str] = &["spawn", "spawn_blocking", "spawn_local"];

/// Macros whose arguments are not code that runs: never rewritten.
const NOT_CODE: &[&str] = &[
    "stringify",
    "concat",
    "concat_idents",
    "include",
    "include_str",
    "include_bytes",
    "env",
    "option_env",
    "cfg",
    "compile_error",
    "module_path",
    "file",
    "line",
    "column",
    "macro_rules",
    "errgroup",
];

const CHANNEL_HELP: &str = "help: use a group-bound channel: the header `let (tx, rx) = channel(cap);` above the branches, or `ctx.channel(cap)` in the body";

const SPAWN_HELP: &str = "help: run it as a branch marked `#[spawn]`, start it with `ctx.spawn(name, future)`, or give it a nested `errgroup!`";

/// Applies the lints to every branch: reports the path-based errors and
/// adds the type checks to the bodies.
pub(crate) fn lint(input: &mut Input, errors: &mut Errors) {
    let krate = input.config.krate();
    for branch in &mut input.branches {
        let attrs = &branch.attrs;
        if attrs.allow_raw_channel && attrs.allow_detached_spawn {
            continue;
        }
        let mut linter = Linter {
            uses: Uses::default(),
            channels: !attrs.allow_raw_channel,
            spawns: !attrs.allow_detached_spawn,
            frames: Vec::new(),
            errors: &mut *errors,
            krate: &krate,
        };
        match &mut branch.body {
            Body::Broken => {}
            Body::Expr(body) => {
                linter.uses.visit_expr(body);
                linter.frames.push(Frame::default());
                linter.visit_expr_mut(body);
                let frame = linter.frames.pop().unwrap_or_default();
                wrap(body, frame, &krate);
            }
            Body::For(fan_out) => {
                linter.uses.visit_block(&fan_out.body);
                linter.visit_block_mut(&mut fan_out.body);
            }
        }
    }
}

/// `use` items inside a body: local names resolved to full paths. Scoping
/// is ignored (a `use` anywhere in the body counts).
#[derive(Default)]
struct Uses {
    names: BTreeMap<String, Vec<String>>,
}

impl Uses {
    fn tree(&mut self, prefix: &mut Vec<String>, tree: &UseTree) {
        match tree {
            UseTree::Path(path) => {
                prefix.push(path.ident.to_string());
                self.tree(prefix, &path.tree);
                prefix.pop();
            }
            UseTree::Name(name) => {
                let mut full = prefix.clone();
                if name.ident != "self" {
                    full.push(name.ident.to_string());
                }
                if let Some(last) = full.last().cloned() {
                    self.names.insert(last, full);
                }
            }
            UseTree::Rename(rename) => {
                let mut full = prefix.clone();
                if rename.ident != "self" {
                    full.push(rename.ident.to_string());
                }
                self.names.insert(rename.rename.to_string(), full);
            }
            UseTree::Glob(_) => {}
            UseTree::Group(group) => {
                for tree in &group.items {
                    self.tree(prefix, tree);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Uses {
    fn visit_item_use(&mut self, node: &'ast syn::ItemUse) {
        self.tree(&mut Vec::new(), &node.tree);
    }
}

/// What a call's path names.
enum Callee {
    /// A known constructor, written from the crate root (`::flume::bounded`).
    Constructor(String),
    /// A known spawn, written from the crate root (`::tokio::spawn`).
    Spawn(String),
    /// Named like a constructor or a spawn (the name, after a `use` in
    /// the body): compared by type with the known functions of that name.
    Named(String),
    Other,
}

impl Uses {
    fn classify(&self, path: &syn::Path) -> Callee {
        let written: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        let Some(first) = written.first() else {
            return Callee::Other;
        };
        let full = match self.names.get(first) {
            Some(full) if path.leading_colon.is_none() => {
                let mut path = full.clone();
                path.extend(written.iter().skip(1).cloned());
                path
            }
            _ => written.clone(),
        };
        if path.leading_colon.is_some() {
            if let Some(display) = constructor(&full) {
                return Callee::Constructor(display);
            }
            if SPAWNS.iter().any(|s| eq(s, &full)) {
                return Callee::Spawn(full.join("::"));
            }
        }
        match full.last() {
            Some(last)
                if CONSTRUCTOR_NAMES.contains(&last.as_str())
                    || SPAWN_NAMES.contains(&last.as_str()) =>
            {
                Callee::Named(last.clone())
            }
            _ => Callee::Other,
        }
    }
}

fn eq(known: &[&str], path: &[String]) -> bool {
    known.len() == path.len() && known.iter().zip(path).all(|(k, p)| k == p)
}

/// `tokio::sync::mpsc::channel` for a full constructor path.
fn constructor(full: &[String]) -> Option<String> {
    let (name, module) = full.split_last()?;
    CONSTRUCTORS
        .iter()
        .any(|(m, fns)| eq(m, module) && fns.contains(&name.as_str()))
        .then(|| full.join("::"))
}

/// The checks for one statement (or one closure or match-arm body), and
/// the names bound inside it so far (not yet in scope before it).
#[derive(Default)]
struct Frame {
    probes: Vec<TokenStream>,
    bound: Vec<String>,
    /// Checks of places named by an `if let` / `while let` binding of this
    /// statement: emitted at the top of that `if`'s or `while`'s body,
    /// where the names mean what they mean in the condition.
    deferred: Vec<TokenStream>,
}

struct Linter<'a> {
    uses: Uses,
    channels: bool,
    spawns: bool,
    frames: Vec<Frame>,
    errors: &'a mut Errors,
    krate: &'a Krate,
}

/// The three type checks, each a `GroupBound*` trait whose message the
/// error shows (see `runtime/lints.rs`).
#[derive(Clone, Copy)]
enum Check {
    Operation,
    Constructor,
    Spawn,
}

impl Check {
    /// The `GroupBound*` trait and the method that picks its argument.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Check::Operation => ("GroupBound", "errgroup_check"),
            Check::Constructor => ("GroupBoundConstructor", "errgroup_pair"),
            Check::Spawn => ("GroupTask", "errgroup_task"),
        }
    }

    /// `GroupBound::errgroup_bound((&probe).errgroup_check());`, whose
    /// argument spans `first..=last`: the error covers the tokens the user
    /// wrote, not only the first one, and the callee shares the span, so
    /// rustc adds no second label. The spans are the user's own, hygiene
    /// included (the names here are absolute paths and trait methods), so
    /// rustc does not end the error with a note that it comes from a macro.
    fn call(self, probe: &TokenStream, (first, last): (Span, Span), krate: &Krate) -> TokenStream {
        let (bound, method) = self.names();
        let private = krate.private(first);
        let lints = quote_spanned!(first=> #private::lints);
        let bound = Ident::new(bound, first);
        let method = Ident::new(method, first);
        let mut receiver = Group::new(Delimiter::Parenthesis, quote_spanned!(first=> & #probe));
        receiver.set_span(first);
        let mut args = Group::new(Delimiter::Parenthesis, TokenStream::new());
        args.set_span(last);
        let callee = Ident::new("errgroup_bound", last);
        quote_spanned! {first=>
            #[allow(clippy::all, clippy::pedantic)]
            #lints::#bound::#callee(#receiver.#method #args);
        }
    }

    /// The check of an operation's receiver, `value` a place or a binding.
    fn operation(value: &TokenStream, span: (Span, Span), krate: &Krate) -> TokenStream {
        let private = krate.private(span.0);
        Check::Operation.call(
            &quote_spanned!(span.0=> #private::lints::probe(&#value)),
            span,
            krate,
        )
    }
}

/// The `use` that brings the checks' methods into scope.
fn imports(krate: &Krate) -> TokenStream {
    let private = krate.private(Span::mixed_site());
    quote_spanned! {Span::mixed_site()=>
        #[allow(unused_imports)]
        use #private::lints::{
            IndexProbe as _, OtherConstructor as _, OtherOperation as _, OtherSpawn as _,
            RawConstructor as _, RawOperation as _, RawSpawn as _,
        };
    }
}

/// The first and the last token of `tokens`.
fn ends(tokens: TokenStream) -> (Span, Span) {
    let mut first = None;
    let mut last = None;
    for tree in tokens {
        let span = match &tree {
            TokenTree::Group(group) => group.span_close(),
            tree => tree.span(),
        };
        first.get_or_insert_with(|| match &tree {
            TokenTree::Group(group) => group.span_open(),
            tree => tree.span(),
        });
        last = Some(span);
    }
    let first = first.unwrap_or_else(Span::call_site);
    (first, last.unwrap_or(first))
}

/// `(match EXPR { v => { if false { check(&replay(v)) } v } })`: `EXPR`
/// evaluated once, where it was, its type checked on the way.
fn checked_value(
    expr: &Expr,
    replay: &dyn Fn(TokenStream) -> TokenStream,
    span: (Span, Span),
    krate: &Krate,
) -> Expr {
    let site = Span::mixed_site();
    let value = Ident::new("__errgroup_value", site);
    let checked = replay(quote!(#value));
    let call = Check::operation(&checked, span, krate);
    let imports = imports(krate);
    Expr::Verbatim(quote_spanned! {site=>
        (match #expr {
            #value => {
                if false {
                    #imports
                    #call
                }
                #value
            }
        })
    })
}

/// A place expression rebuilt for a probe, and the names it reads.
struct Place {
    tokens: TokenStream,
    names: Vec<String>,
    /// False when an index could not be replayed: `tokens` is the
    /// collection, and no projection above it can be applied.
    exact: bool,
}

/// The place an operation's receiver is reached from, if any.
fn place_of<'e>(receiver: &'e Expr, krate: &Krate) -> Option<(Place, &'e Expr)> {
    match receiver {
        Expr::Paren(inner) => place_of(&inner.expr, krate),
        Expr::Group(inner) => place_of(&inner.expr, krate),
        Expr::Reference(reference) => place_of(&reference.expr, krate),
        Expr::Await(inner) => place_of(&inner.base, krate),
        Expr::Try(inner) => place_of(&inner.expr, krate),
        Expr::MethodCall(call) if THROUGH.contains(&call.method.to_string().as_str()) => {
            place_of(&call.receiver, krate)
        }
        place => place_tokens(place, krate).map(|p| (p, place)),
    }
}

/// A place expression that can be borrowed without evaluating anything
/// but `Deref` and `Index`: `x`, `self`, `x.field`, `(*x).field`, `x[0]`,
/// `x[i]`, `x[&key]`.
fn place_tokens(expr: &Expr, krate: &Krate) -> Option<Place> {
    match expr {
        Expr::Path(path) if path.qself.is_none() => {
            let names = match path.path.get_ident() {
                Some(ident) => vec![ident.to_string()],
                None => Vec::new(),
            };
            Some(Place {
                tokens: quote!(#path),
                names,
                exact: true,
            })
        }
        Expr::Paren(inner) => place_tokens(&inner.expr, krate),
        Expr::Group(inner) => place_tokens(&inner.expr, krate),
        Expr::Field(field) => {
            let base = place_tokens(&field.base, krate)?;
            Some(project(base, |tokens| {
                let member = &field.member;
                quote!((#tokens).#member)
            }))
        }
        Expr::Unary(unary) if matches!(unary.op, syn::UnOp::Deref(_)) => {
            let base = place_tokens(&unary.expr, krate)?;
            Some(project(base, |tokens| quote!((*#tokens))))
        }
        Expr::Index(index) => {
            let mut base = place_tokens(&index.expr, krate)?;
            if !base.exact {
                return Some(base);
            }
            match index_tokens(&index.index, krate) {
                Some((replayed, names)) => {
                    base.names.extend(names);
                    Some(project(base, replayed))
                }
                None => Some(Place {
                    exact: false,
                    ..base
                }),
            }
        }
        _ => None,
    }
}

fn project(place: Place, f: impl FnOnce(TokenStream) -> TokenStream) -> Place {
    if place.exact {
        Place {
            tokens: f(place.tokens),
            ..place
        }
    } else {
        place
    }
}

type Replay = Box<dyn Fn(TokenStream) -> TokenStream>;

/// How `collection[index]` is replayed in a probe, and the names the index
/// reads: a literal as written; a name or `&place` by its type only, so it
/// is neither evaluated nor moved again.
fn index_tokens(index: &Expr, krate: &Krate) -> Option<(Replay, Vec<String>)> {
    match index {
        Expr::Lit(lit) => {
            let lit = lit.clone();
            Some((Box::new(move |tokens| quote!((#tokens)[#lit])), Vec::new()))
        }
        Expr::Paren(inner) => index_tokens(&inner.expr, krate),
        Expr::Group(inner) => index_tokens(&inner.expr, krate),
        Expr::Path(_) | Expr::Reference(_) => {
            let place = match index {
                Expr::Reference(reference) => {
                    let inner = place_tokens(&reference.expr, krate).filter(|p| p.exact)?;
                    let and = reference.and_token;
                    let mutability = reference.mutability;
                    Place {
                        tokens: {
                            let t = inner.tokens;
                            quote!(#and #mutability #t)
                        },
                        ..inner
                    }
                }
                path => place_tokens(path, krate)?,
            };
            let index = place.tokens;
            let site = Span::mixed_site();
            let private = krate.private(site);
            Some((
                Box::new(
                    move |tokens| quote_spanned!(site=> (*(#tokens).errgroup_index(#private::lints::probe(&#index)))),
                ),
                place.names,
            ))
        }
        _ => None,
    }
}

impl Linter<'_> {
    fn frame(&mut self) -> &mut Frame {
        if self.frames.is_empty() {
            self.frames.push(Frame::default());
        }
        let last = self.frames.len() - 1;
        &mut self.frames[last]
    }

    fn bind(&mut self, pat: &Pat) {
        let mut names = Names::default();
        names.visit_pat(pat);
        self.frame().bound.extend(names.0);
    }

    /// Checks the type of an operation's receiver: by its place, in the
    /// statement before, or else by the value it is computed from, inline.
    fn operation(&mut self, receiver: &mut Expr) {
        if let Some((place, expr)) = place_of(receiver, self.krate) {
            let call = Check::operation(&place.tokens, ends(expr.to_token_stream()), self.krate);
            let frame = self.frame();
            if place.names.iter().any(|n| frame.bound.contains(n)) {
                frame.deferred.push(call);
            } else {
                frame.probes.push(call);
            }
            return;
        }
        let span = ends(receiver.to_token_stream());
        let mut projections = Vec::new();
        wrap_base(receiver, &mut projections, span, self.krate);
    }

    /// Visits the condition of an `if` or a `while`, then its body; the
    /// checks of names the condition binds go at the top of the body.
    fn condition(&mut self, cond: &mut Expr, body: &mut Block) {
        let frame = self.frame();
        let bound = frame.bound.len();
        let outer = std::mem::take(&mut frame.deferred);
        self.visit_expr_mut(cond);
        let frame = self.frame();
        let deferred = std::mem::replace(&mut frame.deferred, outer);
        frame.bound.truncate(bound);
        self.visit_block_mut(body);
        let deferred = Frame {
            probes: deferred,
            ..Frame::default()
        };
        if let Some(probe) = probe_stmt(deferred, self.krate) {
            body.stmts
                .insert(0, Stmt::Expr(Expr::Verbatim(probe), None));
        }
    }
}

/// One step from a receiver down to the value it is computed from.
enum Projection {
    Field(syn::Member),
    Deref,
    Index(Expr),
}

/// Finds the value under `expr`'s fields, indexes and derefs and rewrites
/// it into a checked value (see the module docs).
fn wrap_base(
    expr: &mut Expr,
    projections: &mut Vec<Projection>,
    span: (Span, Span),
    krate: &Krate,
) {
    match expr {
        Expr::Field(field) => {
            projections.push(Projection::Field(field.member.clone()));
            wrap_base(&mut field.base, projections, span, krate);
        }
        Expr::Index(index) => {
            projections.push(Projection::Index((*index.index).clone()));
            wrap_base(&mut index.expr, projections, span, krate);
        }
        Expr::Unary(unary) if matches!(unary.op, syn::UnOp::Deref(_)) => {
            projections.push(Projection::Deref);
            wrap_base(&mut unary.expr, projections, span, krate);
        }
        Expr::Paren(inner) => wrap_base(&mut inner.expr, projections, span, krate),
        Expr::Group(inner) => wrap_base(&mut inner.expr, projections, span, krate),
        // Value expressions only: moving one into the `match` is what
        // evaluating it did already. (A macro call may expand to a place.)
        Expr::Call(_)
        | Expr::MethodCall(_)
        | Expr::Await(_)
        | Expr::Try(_)
        | Expr::Block(_)
        | Expr::Unsafe(_)
        | Expr::If(_)
        | Expr::Match(_) => {
            let replay = |value: TokenStream| {
                let mut tokens = value;
                for projection in projections.iter().rev() {
                    tokens = match projection {
                        Projection::Field(member) => quote!((#tokens).#member),
                        Projection::Deref => quote!((*#tokens)),
                        Projection::Index(index) => match index_tokens(index, krate) {
                            Some((replayed, _)) => replayed(tokens),
                            None => break,
                        },
                    };
                }
                tokens
            };
            *expr = checked_value(expr, &replay, span, krate);
        }
        _ => {}
    }
}

/// The names a pattern binds.
#[derive(Default)]
struct Names(Vec<String>);

impl<'ast> Visit<'ast> for Names {
    fn visit_pat_ident(&mut self, node: &'ast syn::PatIdent) {
        self.0.push(node.ident.to_string());
        visit::visit_pat_ident(self, node);
    }
}

/// `{ if false { probes } body }` when the frame has probes.
fn wrap(body: &mut Expr, frame: Frame, krate: &Krate) {
    if let Some(probe) = probe_stmt(frame, krate) {
        let inner = std::mem::replace(body, Expr::Verbatim(TokenStream::new()));
        *body = Expr::Verbatim(quote!({ #probe #inner }));
    }
}

fn probe_stmt(frame: Frame, krate: &Krate) -> Option<TokenStream> {
    if frame.probes.is_empty() {
        return None;
    }
    let site = Span::mixed_site();
    let probes = frame.probes;
    let imports = imports(krate);
    Some(quote_spanned! {site=>
        if false {
            #imports
            #(#probes)*
        }
    })
}

impl VisitMut for Linter<'_> {
    fn visit_block_mut(&mut self, block: &mut Block) {
        let mut stmts = Vec::with_capacity(block.stmts.len());
        for mut stmt in std::mem::take(&mut block.stmts) {
            self.frames.push(Frame::default());
            match &mut stmt {
                // A `let`'s own bindings are not in scope in its initializer.
                Stmt::Local(local) => {
                    if let Some(init) = &mut local.init {
                        self.visit_expr_mut(&mut init.expr);
                        if let Some((_, diverge)) = &mut init.diverge {
                            self.visit_expr_mut(diverge);
                        }
                    }
                }
                // Nested items are not part of the branch's run.
                Stmt::Item(_) => {}
                stmt => visit_mut::visit_stmt_mut(self, stmt),
            }
            let frame = self.frames.pop().unwrap_or_default();
            if let Some(probe) = probe_stmt(frame, self.krate) {
                stmts.push(Stmt::Expr(Expr::Verbatim(probe), None));
            }
            stmts.push(stmt);
        }
        block.stmts = stmts;
    }

    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        visit_mut::visit_expr_mut(self, expr);
        let Expr::Call(call) = expr else { return };
        let Expr::Path(path) = &*call.func else {
            return;
        };
        if path.qself.is_some() {
            return;
        }
        let check = match self.uses.classify(&path.path) {
            Callee::Named(name) if self.channels && CONSTRUCTOR_NAMES.contains(&name.as_str()) => {
                Check::Constructor
            }
            Callee::Named(name) if self.spawns && SPAWN_NAMES.contains(&name.as_str()) => {
                Check::Spawn
            }
            _ => return,
        };
        let span = ends(expr.to_token_stream());
        let site = Span::mixed_site();
        let value = Ident::new("__errgroup_value", site);
        let private = self.krate.private(span.0);
        let call = check.call(
            &quote_spanned!(span.0=> #private::lints::probe(#value)),
            span,
            self.krate,
        );
        let imports = imports(self.krate);
        let private = self.krate.private(site);
        *expr = Expr::Verbatim(quote_spanned! {site=>
            #private::lints::pass(#expr, |#value| {
                #imports
                #call
            })
        });
    }

    fn visit_expr_closure_mut(&mut self, closure: &mut syn::ExprClosure) {
        self.frames.push(Frame::default());
        self.visit_expr_mut(&mut closure.body);
        let frame = self.frames.pop().unwrap_or_default();
        wrap(&mut closure.body, frame, self.krate);
    }

    // The guard (part of the pattern) and the body see the pattern's
    // bindings: the checks of both go at the top of the body.
    fn visit_arm_mut(&mut self, arm: &mut syn::Arm) {
        self.frames.push(Frame::default());
        self.visit_pat_mut(&mut arm.pat);
        self.visit_expr_mut(&mut arm.body);
        let frame = self.frames.pop().unwrap_or_default();
        wrap(&mut arm.body, frame, self.krate);
    }

    fn visit_expr_if_mut(&mut self, node: &mut syn::ExprIf) {
        self.condition(&mut node.cond, &mut node.then_branch);
        if let Some((_, else_branch)) = &mut node.else_branch {
            self.visit_expr_mut(else_branch);
        }
    }

    fn visit_expr_while_mut(&mut self, node: &mut syn::ExprWhile) {
        self.condition(&mut node.cond, &mut node.body);
    }

    fn visit_expr_let_mut(&mut self, node: &mut syn::ExprLet) {
        self.visit_expr_mut(&mut node.expr);
        self.bind(&node.pat);
    }

    fn visit_expr_call_mut(&mut self, call: &mut syn::ExprCall) {
        visit_mut::visit_expr_call_mut(self, call);
        let Expr::Path(path) = &*call.func else {
            return;
        };
        if path.qself.is_some() {
            return;
        }
        match self.uses.classify(&path.path) {
            Callee::Constructor(full) if self.channels => {
                self.errors.lint(syn::Error::new_spanned(
                    &*call,
                    format!(
                        "`{full}` creates a raw channel, which the group does not close when it is cancelled\n{CHANNEL_HELP}"
                    ),
                ));
            }
            Callee::Spawn(full) if self.spawns => {
                self.errors.lint(syn::Error::new_spanned(
                    &*call,
                    format!(
                        "`{full}` starts a detached task that the group neither waits for nor cancels\n{SPAWN_HELP}"
                    ),
                ));
            }
            _ => {}
        }
    }

    fn visit_expr_method_call_mut(&mut self, call: &mut syn::ExprMethodCall) {
        visit_mut::visit_expr_method_call_mut(self, call);
        if self.channels && OPERATIONS.contains(&call.method.to_string().as_str()) {
            self.operation(&mut call.receiver);
        }
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}

    fn visit_expr_macro_mut(&mut self, node: &mut syn::ExprMacro) {
        self.lint_macro(&mut node.mac);
    }

    fn visit_stmt_macro_mut(&mut self, node: &mut syn::StmtMacro) {
        self.lint_macro(&mut node.mac);
    }

    // Macros in patterns and types hold no code that runs.
    fn visit_macro_mut(&mut self, _: &mut syn::Macro) {}
}

/// A macro body, split into what is linted and what is kept as written.
enum Piece {
    Tokens(TokenStream),
    /// An expression evaluated where the macro is (a `join!` argument, a
    /// `select!` future): its probes go before the enclosing statement.
    Expr(Expr),
    /// A `select!` handler, with the names its arm's pattern binds.
    Handler(Expr),
    Stmts(Vec<Stmt>),
}

impl Linter<'_> {
    /// Lints the body of a macro invocation when it parses as Rust (see
    /// the module docs); leaves it untouched otherwise, or when nothing in
    /// it needs a check.
    fn lint_macro(&mut self, mac: &mut syn::Macro) {
        let Some(name) = mac.path.segments.last().map(|s| s.ident.to_string()) else {
            return;
        };
        if NOT_CODE.contains(&name.as_str()) {
            return;
        }
        let mut pieces = Vec::new();
        let mut rest = mac.tokens.clone();
        // `biased;` opens tokio's `select!` and `join!`.
        let mut trees = rest.clone().into_iter();
        if let (Some(TokenTree::Ident(biased)), Some(TokenTree::Punct(semi))) =
            (trees.next(), trees.next())
        {
            if biased == "biased" && semi.as_char() == ';' {
                pieces.push(Piece::Tokens(quote!(#biased #semi)));
                rest = trees.collect();
            }
        }
        let select = name == "select" || name == "select_biased";
        let parsed = select
            .then(|| parse_select.parse2(rest.clone()).ok())
            .flatten()
            .or_else(|| parse_exprs.parse2(rest.clone()).ok())
            .or_else(|| parse_repeat.parse2(rest.clone()).ok())
            .or_else(|| parse_stmts.parse2(rest).ok());
        let Some(parsed) = parsed else { return };
        pieces.extend(parsed);
        let before: TokenStream = pieces.iter().map(piece_tokens).collect();
        for piece in &mut pieces {
            match piece {
                Piece::Tokens(_) => {}
                Piece::Expr(expr) => self.visit_expr_mut(expr),
                Piece::Handler(expr) => {
                    self.frames.push(Frame::default());
                    self.visit_expr_mut(expr);
                    let frame = self.frames.pop().unwrap_or_default();
                    wrap(expr, frame, self.krate);
                }
                // No statement is added among the macro's own (`tokio::pin!`
                // takes `let`s only): the checks go before the enclosing
                // statement, and those of names the body binds are dropped.
                Piece::Stmts(stmts) => {
                    self.frames.push(Frame::default());
                    for stmt in stmts {
                        match stmt {
                            Stmt::Local(local) => {
                                if let Some(init) = &mut local.init {
                                    self.visit_expr_mut(&mut init.expr);
                                    if let Some((_, diverge)) = &mut init.diverge {
                                        self.visit_expr_mut(diverge);
                                    }
                                }
                                self.bind(&local.pat);
                            }
                            Stmt::Item(_) => {}
                            stmt => visit_mut::visit_stmt_mut(self, stmt),
                        }
                    }
                    let inner = self.frames.pop().unwrap_or_default();
                    self.frame().probes.extend(inner.probes);
                }
            }
        }
        let after: TokenStream = pieces.iter().map(piece_tokens).collect();
        if after.to_string() != before.to_string() {
            mac.tokens = after;
        }
    }
}

fn piece_tokens(piece: &Piece) -> TokenStream {
    match piece {
        Piece::Tokens(tokens) => tokens.clone(),
        Piece::Expr(expr) | Piece::Handler(expr) => expr.to_token_stream(),
        Piece::Stmts(stmts) => quote!(#(#stmts)*),
    }
}

/// `a, b, c` (`join!`, `vec!`, `assert!`, `format!`, ..).
fn parse_exprs(input: ParseStream) -> syn::Result<Vec<Piece>> {
    let exprs = Punctuated::<Expr, Token![,]>::parse_terminated(input)?;
    let mut pieces = Vec::new();
    for pair in exprs.into_pairs() {
        let (expr, comma) = pair.into_tuple();
        pieces.push(Piece::Expr(expr));
        if let Some(comma) = comma {
            pieces.push(Piece::Tokens(quote!(#comma)));
        }
    }
    Ok(pieces)
}

/// `value; count` (`vec![x; n]`).
fn parse_repeat(input: ParseStream) -> syn::Result<Vec<Piece>> {
    let value: Expr = input.parse()?;
    let semi: Token![;] = input.parse()?;
    let count: Expr = input.parse()?;
    Ok(vec![
        Piece::Expr(value),
        Piece::Tokens(quote!(#semi)),
        Piece::Expr(count),
    ])
}

fn parse_stmts(input: ParseStream) -> syn::Result<Vec<Piece>> {
    Ok(vec![Piece::Stmts(Block::parse_within(input)?)])
}

/// The arms of tokio's and futures' `select!`: `pattern = future, if
/// guard => handler,`, and `else` / `default` / `complete => handler,`.
fn parse_select(input: ParseStream) -> syn::Result<Vec<Piece>> {
    let mut pieces = Vec::new();
    while !input.is_empty() {
        if input.peek(Token![else]) || (input.peek(syn::Ident) && input.peek2(Token![=>])) {
            let keyword: TokenTree = input.parse()?;
            let arrow: Token![=>] = input.parse()?;
            pieces.push(Piece::Tokens(quote!(#keyword #arrow)));
        } else {
            let pat = Pat::parse_multi_with_leading_vert(input)?;
            let eq: Token![=] = input.parse()?;
            pieces.push(Piece::Tokens(quote!(#pat #eq)));
            pieces.push(Piece::Expr(input.parse()?));
            if input.peek(Token![,]) && input.peek2(Token![if]) {
                let comma: Token![,] = input.parse()?;
                let if_token: Token![if] = input.parse()?;
                pieces.push(Piece::Tokens(quote!(#comma #if_token)));
                pieces.push(Piece::Expr(input.parse()?));
            }
            let arrow: Token![=>] = input.parse()?;
            pieces.push(Piece::Tokens(quote!(#arrow)));
        }
        if input.peek(syn::token::Brace) {
            let block: Block = input.parse()?;
            pieces.push(Piece::Handler(Expr::Block(syn::ExprBlock {
                attrs: Vec::new(),
                label: None,
                block,
            })));
            if input.peek(Token![,]) {
                let comma: Token![,] = input.parse()?;
                pieces.push(Piece::Tokens(quote!(#comma)));
            }
        } else {
            pieces.push(Piece::Handler(input.parse()?));
            if !input.is_empty() {
                let comma: Token![,] = input.parse()?;
                pieces.push(Piece::Tokens(quote!(#comma)));
            }
        }
    }
    Ok(pieces)
}
