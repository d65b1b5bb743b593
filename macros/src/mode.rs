//! Where a branch runs, and what that makes of its body: one value per
//! mode, whose methods answer every question the other stages ask of it
//! (which constructor, which adapters, whether the body is a future or a
//! closure, whether it owns what it names).

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote_spanned};

/// Where a branch runs.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Polled in the calling task (no attribute).
    #[default]
    InTask,
    /// `#[spawn]`: a tokio task.
    Spawn,
    /// `#[blocking]`: synchronous code on tokio's blocking pool.
    Blocking,
}

impl Mode {
    /// The attribute that asks for the mode, as written (`spawn`).
    pub(crate) fn attribute(self) -> Option<&'static str> {
        match self {
            Mode::InTask => None,
            Mode::Spawn => Some("spawn"),
            Mode::Blocking => Some("blocking"),
        }
    }

    /// The runtime's constructor for the mode's branches.
    fn constructor(self) -> &'static str {
        match self {
            Mode::InTask => "InTask",
            Mode::Spawn => "Spawn",
            Mode::Blocking => "Blocking",
        }
    }

    /// Whether the body is synchronous code, run as a closure given `&ctx`,
    /// rather than a future: it cannot `.await`.
    pub(crate) fn is_sync(self) -> bool {
        self == Mode::Blocking
    }

    /// Whether the body runs away from the caller (a task, a thread), so it
    /// moves what it names and is `'static`; an in-task body borrows.
    pub(crate) fn moves(self) -> bool {
        self != Mode::InTask
    }

    /// `<rt>::InTask`, `<rt>::Spawn` or `<rt>::Blocking`.
    pub(crate) fn constructor_path(self, rt: &TokenStream, site: Span) -> TokenStream {
        let name = format_ident!("{}", self.constructor(), span = site);
        quote_spanned!(site=> #rt::#name)
    }

    /// The runtime adapter `adapter` (`never_ok`, `supervise`) for the
    /// mode: a synchronous body has its own (`never_ok_blocking`).
    pub(crate) fn adapter(self, adapter: &str, site: Span) -> Ident {
        if self.is_sync() {
            format_ident!("{}_blocking", adapter, span = site)
        } else {
            format_ident!("{}", adapter, span = site)
        }
    }

    /// What the body's `ctx` is bound from: the closure's `&BranchCtx`
    /// parameter itself, or a borrow of the future's own `ctx`.
    pub(crate) fn ctx_source(self, ctx: &Ident, site: Span) -> TokenStream {
        if self.is_sync() {
            quote_spanned!(site=> #ctx)
        } else {
            quote_spanned!(site=> &#ctx)
        }
    }

    /// The `ctx` argument of `.branch(..)`: a blocking branch's closure is
    /// given it by reference later, so it is handed over; a spawned or
    /// in-task body has its own (moved or borrowed), and the runtime, which
    /// needs only the group (the scope's) and the name, gets the name, a
    /// constant (read from a borrowed ctx, it was a test of which kind of
    /// ctx it is, per branch at run time).
    pub(crate) fn ctx_argument(self, ctx: &Ident, name: &str, site: Span) -> TokenStream {
        match self {
            Mode::Blocking => quote_spanned!(site=> #ctx),
            Mode::Spawn | Mode::InTask => quote_spanned!(site=> #name),
        }
    }

    /// `stmts` as the mode's body, spanned at `span`: `move |ctx: &T| { .. }`,
    /// `async move { .. }`, or `async { .. }`.
    pub(crate) fn body(
        self,
        span: Span,
        ctx: &Ident,
        ctx_type: &TokenStream,
        stmts: &TokenStream,
    ) -> TokenStream {
        if self.is_sync() {
            quote_spanned!(span=> move |#ctx: &#ctx_type| { #stmts })
        } else if self.moves() {
            quote_spanned!(span=> async move { #stmts })
        } else {
            quote_spanned!(span=> async { #stmts })
        }
    }
}
