//! Lints: raw channels and detached spawns inside branch bodies.
//!
//! Three rules, each off for a branch marked `#[allow(raw_channel)]` or
//! `#[allow(detached_spawn)]`:
//!
//! - **Raw channel constructors, by path.** A call whose path is a known
//!   constructor (`tokio::sync::mpsc::channel`, `flume::bounded`, ..),
//!   written in full or through a `use` (renamed or not, glob or not) inside
//!   the body, is an error reported here. A *partial* path the body does not
//!   resolve (`mpsc::channel(8)`, the `mpsc` imported outside the macro) is
//!   checked by type instead, as a user's own `mpsc` module may have a
//!   `channel` fn: the callee is passed through
//!   `::errgroup::__private::lints::Callee`, which fails to compile only when
//!   the function returns a raw `(Sender, Receiver)` pair.
//! - **Raw channel operations, by type.** For `recv.send(..)`, `.recv()`,
//!   `.try_send(..)`, .. the receiver's *place* (a variable, a field, `*p`,
//!   `v[i]`, also under `.lock()`, `.await`, `?`, `.unwrap()`, ..) is probed
//!   in an `if false { .. }` statement inserted before the statement that
//!   holds the call: it never runs, moves nothing, and borrows (shared) only
//!   a place that statement uses anyway. The probe fails to compile only when
//!   the place's type is a raw endpoint (see `runtime/lints.rs`).
//! - **Detached spawns, by path.** `tokio::spawn`, `tokio::task::spawn`,
//!   `spawn_blocking`, `spawn_local`, `std::thread::spawn`, also written
//!   `thread::spawn` / `task::spawn`, or through a `use` inside the body.
//!
//! Not covered (and why): code inside macro calls (`select!`, `vec![..]`:
//! their tokens are not Rust syntax to a proc macro); a bare `channel(8)` or
//! `spawn(..)` imported outside the macro (it may be a local variable, which
//! the probe would move); an operation whose receiver is not a place
//! (`make_tx().send(x)`, `state.lock().unwrap().tx.send(x)`: probing it would
//! evaluate or move something); an operation whose receiver is bound in the
//! same statement before it (`if let Some(tx) = a && tx.send(..)`, a match
//! guard): there is no earlier statement where the name means the same.

use std::collections::BTreeMap;

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::visit_mut::{self, VisitMut};
use syn::{Attribute, Block, Expr, Meta, Pat, Stmt, UseTree};

use crate::parse::{Body, Input};

/// Constructors of raw channels: a module path and its constructor fns.
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

/// Detached spawns, in full.
const SPAWNS: &[&[&str]] = &[
    &["tokio", "spawn"],
    &["tokio", "task", "spawn"],
    &["tokio", "task", "spawn_blocking"],
    &["tokio", "task", "spawn_local"],
    &["std", "thread", "spawn"],
];

/// Detached spawns commonly written from their module (`use std::thread;`).
const PARTIAL_SPAWNS: &[[&str; 2]] = &[
    ["thread", "spawn"],
    ["task", "spawn"],
    ["task", "spawn_blocking"],
    ["task", "spawn_local"],
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

const CHANNEL_HELP: &str = "help: use a group-bound channel: the header `let (tx, rx) = channel(cap);` above the branches, or `ctx.channel(cap)` in the body";

const SPAWN_HELP: &str = "help: run it as a branch marked `#[spawn]`, start it with `ctx.spawn(name, future)`, or give it a nested `errgroup!`";

/// Applies the lints to every branch: reports the path-based errors and
/// adds the type probes to the bodies.
pub(crate) fn lint(input: &mut Input) -> Option<syn::Error> {
    let mut errors: Option<syn::Error> = None;
    for branch in &mut input.branches {
        let allow_channel = allows(&branch.attrs, "raw_channel");
        let allow_spawn = allows(&branch.attrs, "detached_spawn");
        if allow_channel && allow_spawn {
            continue;
        }
        let mut linter = Linter {
            uses: Uses::default(),
            channels: !allow_channel,
            spawns: !allow_spawn,
            frames: Vec::new(),
            errors: Vec::new(),
        };
        match &mut branch.body {
            Body::Broken => continue,
            Body::Expr(body) => {
                linter.uses.visit_expr(body);
                linter.frames.push(Frame::default());
                linter.visit_expr_mut(body);
                let frame = linter.frames.pop().unwrap_or_default();
                wrap(body, frame);
            }
            Body::For(fan_out) => {
                linter.uses.visit_block(&fan_out.body);
                linter.visit_block_mut(&mut fan_out.body);
            }
        }
        for e in linter.errors {
            match &mut errors {
                Some(all) => all.combine(e),
                None => errors = Some(e),
            }
        }
    }
    errors
}

fn allows(attrs: &[Attribute], lint: &str) -> bool {
    attrs.iter().any(|attr| match &attr.meta {
        Meta::List(args) if args.path.is_ident("allow") => args
            .parse_args::<syn::Ident>()
            .is_ok_and(|ident| ident == lint),
        _ => false,
    })
}

/// `use` items inside a body: local names and glob prefixes, resolved to
/// full paths. Scoping is ignored (a `use` anywhere in the body counts).
#[derive(Default)]
struct Uses {
    names: BTreeMap<String, Vec<String>>,
    globs: Vec<Vec<String>>,
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
            UseTree::Glob(_) => self.globs.push(prefix.clone()),
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
    Constructor(String),
    /// A partial path that may name a constructor: checked by type.
    MaybeConstructor,
    Spawn(String),
    Other,
}

impl Uses {
    fn classify(&self, path: &syn::Path) -> Callee {
        let written: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        let Some(first) = written.first() else {
            return Callee::Other;
        };
        if ["crate", "self", "super", "Self"].contains(&first.as_str()) {
            return Callee::Other;
        }
        let mut candidates = Vec::new();
        let resolved = path.leading_colon.is_none() && self.names.contains_key(first);
        match self.names.get(first) {
            Some(full) if path.leading_colon.is_none() => {
                let mut path = full.clone();
                path.extend(written.iter().skip(1).cloned());
                candidates.push(path);
            }
            _ => candidates.push(written.clone()),
        }
        if written.len() == 1 && !resolved {
            for glob in &self.globs {
                let mut path = glob.clone();
                path.push(first.clone());
                candidates.push(path);
            }
        }
        for full in &candidates {
            if let Some(display) = constructor(full) {
                return Callee::Constructor(display);
            }
            if SPAWNS.iter().any(|s| eq(s, full)) {
                return Callee::Spawn(full.join("::"));
            }
        }
        if resolved || written.len() < 2 || path.leading_colon.is_some() {
            return Callee::Other;
        }
        let tail = [&written[written.len() - 2], &written[written.len() - 1]];
        if PARTIAL_SPAWNS
            .iter()
            .any(|s| s[0] == tail[0] && s[1] == tail[1])
        {
            return Callee::Spawn(written.join("::"));
        }
        let family_tail = CONSTRUCTORS.iter().any(|(module, fns)| {
            module.last().is_some_and(|m| *m == tail[0]) && fns.contains(&tail[1].as_str())
        });
        if family_tail {
            Callee::MaybeConstructor
        } else {
            Callee::Other
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

/// The probes for one statement (or one closure or match-arm body), and
/// the names bound inside it so far (not yet in scope before it).
#[derive(Default)]
struct Frame {
    probes: Vec<TokenStream>,
    bound: Vec<String>,
}

struct Linter {
    uses: Uses,
    channels: bool,
    spawns: bool,
    frames: Vec<Frame>,
    errors: Vec<syn::Error>,
}

impl Linter {
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

    /// Probes the place `receiver` is reached from, when there is one.
    fn probe(&mut self, receiver: &Expr) {
        let Some((place, root)) = place_of(receiver) else {
            return;
        };
        if self.frame().bound.contains(&root) {
            return;
        }
        let span = place.span().resolved_at(Span::mixed_site());
        let lints = quote_spanned!(span=> ::errgroup::__private::lints);
        self.frame().probes.push(quote_spanned! {span=>
            #[allow(clippy::all, clippy::pedantic, unused_must_use)]
            let () = (&#lints::probe(&#place)).errgroup_check();
        });
    }
}

/// The place an operation's receiver is reached from, and the name it
/// starts at.
fn place_of(receiver: &Expr) -> Option<(&Expr, String)> {
    match receiver {
        Expr::Paren(inner) => place_of(&inner.expr),
        Expr::Reference(reference) => place_of(&reference.expr),
        Expr::Await(inner) => place_of(&inner.base),
        Expr::Try(inner) => place_of(&inner.expr),
        Expr::MethodCall(call) if THROUGH.contains(&call.method.to_string().as_str()) => {
            place_of(&call.receiver)
        }
        place => is_place(place).map(|root| (place, root)),
    }
}

/// A place expression that can be borrowed without evaluating anything:
/// `x`, `self`, `x.field`, `(*x).field`, `x[0]`; its root name.
fn is_place(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Path(path) if path.qself.is_none() && path.path.segments.len() == 1 => {
            Some(path.path.segments[0].ident.to_string())
        }
        Expr::Field(field) => is_place(&field.base),
        Expr::Paren(inner) => is_place(&inner.expr),
        Expr::Unary(unary) if matches!(unary.op, syn::UnOp::Deref(_)) => is_place(&unary.expr),
        Expr::Index(index) if matches!(*index.index, Expr::Lit(_)) => is_place(&index.expr),
        _ => None,
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
fn wrap(body: &mut Expr, frame: Frame) {
    if let Some(probe) = probe_stmt(frame) {
        let inner = std::mem::replace(body, Expr::Verbatim(TokenStream::new()));
        *body = Expr::Verbatim(quote!({ #probe #inner }));
    }
}

fn probe_stmt(frame: Frame) -> Option<TokenStream> {
    if frame.probes.is_empty() {
        return None;
    }
    let site = Span::mixed_site();
    let probes = frame.probes;
    Some(quote_spanned! {site=>
        if false {
            #[allow(unused_imports)]
            use ::errgroup::__private::lints::{OtherOperation as _, RawOperation as _};
            #(#probes)*
        }
    })
}

impl VisitMut for Linter {
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
            if let Some(probe) = probe_stmt(frame) {
                stmts.push(Stmt::Expr(Expr::Verbatim(probe), None));
            }
            stmts.push(stmt);
        }
        block.stmts = stmts;
    }

    fn visit_expr_closure_mut(&mut self, closure: &mut syn::ExprClosure) {
        self.frames.push(Frame::default());
        self.visit_expr_mut(&mut closure.body);
        let frame = self.frames.pop().unwrap_or_default();
        wrap(&mut closure.body, frame);
    }

    fn visit_arm_mut(&mut self, arm: &mut syn::Arm) {
        self.bind(&arm.pat);
        // The guard, if any, is part of the pattern.
        self.visit_pat_mut(&mut arm.pat);
        self.frames.push(Frame::default());
        self.visit_expr_mut(&mut arm.body);
        let frame = self.frames.pop().unwrap_or_default();
        wrap(&mut arm.body, frame);
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
        let span = call.func.span();
        match self.uses.classify(&path.path) {
            Callee::Constructor(full) if self.channels => {
                self.errors.push(syn::Error::new_spanned(
                    &*call,
                    format!(
                        "`{full}` creates a raw channel, which the group does not close when it is cancelled\n{CHANNEL_HELP}"
                    ),
                ));
            }
            Callee::MaybeConstructor if self.channels && call.args.len() <= 1 => {
                let method = if call.args.is_empty() {
                    quote_spanned!(span.resolved_at(Span::mixed_site())=> errgroup_callee0)
                } else {
                    quote_spanned!(span.resolved_at(Span::mixed_site())=> errgroup_callee1)
                };
                let func = &call.func;
                let site = span.resolved_at(Span::mixed_site());
                let wrapped = quote_spanned! {site=>
                    ({
                        #[allow(unused_imports)]
                        use ::errgroup::__private::lints::{
                            OtherCallee0 as _, OtherCallee1 as _, RawConstructor0 as _,
                            RawConstructor1 as _,
                        };
                        (&::errgroup::__private::lints::Callee(#func)).#method()
                    }.0)
                };
                *call.func = Expr::Verbatim(wrapped);
            }
            Callee::Spawn(full) if self.spawns => {
                self.errors.push(syn::Error::new_spanned(
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
            self.probe(&call.receiver);
        }
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}

    fn visit_macro_mut(&mut self, _: &mut syn::Macro) {}
}
