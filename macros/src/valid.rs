//! Every rule a block must follow beyond its syntax, in one place: its
//! headers (each at most once, above the branches, with a value that can
//! work), its branches (one name each, at least one branch), their
//! attributes (one mode, each flag and `clone(..)` once, each name cloned
//! once, never `ctx`) and their bodies (no rebinding of `ctx`, no `.await`
//! in a synchronous body, no branch `ctx` moved into a `ctx.spawn` or pool
//! task). Every violation is collected, so one build
//! reports all of them.
//!
//! The parser and the attribute reader call the rules on a header, a
//! branch or an attribute as they read it, so that these errors come out
//! in source order with the syntax errors around them; the rules on the
//! bodies and on the block as a whole ([`check`]) run once it is parsed.

use proc_macro2::{Span, TokenStream};
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{Attribute, Expr, Ident, Lit, Meta, MetaList, Token};

use crate::ast::{Attrs, Body, Branch, Config, Header, Input};
use crate::errors::Errors;
use crate::mode::Mode;

/// A header about to be set into `config`, written at `key`: not after a
/// branch, not a second time, `timeout` or `deadline` (not both), and no
/// value that can never work (`limit = 0`, `channel(0)`).
pub(crate) fn header(
    config: &Config,
    key: Span,
    header: &Header,
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
    let taken = match header {
        Header::Timeout(_) => config.timeout.is_some(),
        Header::Deadline(_) => config.deadline.is_some(),
        Header::Parent(_) => config.parent.is_some(),
        Header::Limit(_) => config.limit.is_some(),
        Header::Grace(_) => config.grace.is_some(),
        Header::ShutdownOn(_) => config.shutdown_on.is_some(),
        Header::OnErrorContinue => config.supervise.is_some(),
        Header::Crate(_) => config.krate.is_some(),
        Header::ErrorType(_) => config.error_type.is_some(),
        Header::Channel(_) => false,
    };
    if taken {
        errors.at(
            key,
            format!("the `{name}` header is set twice\nhelp: remove one of the two"),
        );
    }
    let other_timing = match header {
        Header::Timeout(_) => config.deadline.is_some(),
        Header::Deadline(_) => config.timeout.is_some(),
        _ => false,
    };
    if other_timing {
        errors.at(
            key,
            "`timeout` and `deadline` both set the group's deadline\nhelp: keep one of them",
        );
    }
    match header {
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

/// A branch about to join `input`: no earlier branch has its name.
/// Branches that did not parse are left out of the comparison: their name
/// may be the very thing that is broken.
pub(crate) fn branch_name(input: &Input, branch: &Branch, errors: &mut Errors) {
    let parsed = |b: &Branch| !matches!(b.body, Body::Broken);
    if parsed(branch)
        && input
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
}

/// A mode attribute (`#[spawn]`, `#[blocking]`) on a branch whose
/// attributes so far are `read`: whether it may set the mode, else the
/// error (given twice, or both modes).
pub(crate) fn mode(read: &Attrs, mode: Mode, attr: &Attribute, errors: &mut Errors) -> bool {
    match read.mode {
        Mode::InTask => true,
        set if set == mode => {
            duplicate(attr, mode.attribute().unwrap_or_default(), errors);
            false
        }
        _ => {
            errors.push(syn::Error::new_spanned(
                attr,
                "a branch cannot be both `#[spawn]` and `#[blocking]`\nhelp: keep `#[blocking]` for synchronous CPU-bound work, or `#[spawn]` for an async task on another worker",
            ));
            false
        }
    }
}

/// A flag attribute (`#[allow(raw_channel)]`) given once.
pub(crate) fn flag(already: bool, name: &str, attr: &Attribute, errors: &mut Errors) {
    if already {
        duplicate(attr, name, errors);
    }
}

fn duplicate(attr: &Attribute, name: &str, errors: &mut Errors) {
    errors.push(syn::Error::new_spanned(
        attr,
        format!("`#[{name}]` is given twice\nhelp: remove this one"),
    ));
}

/// The options of `#[name(..)]`, as listed: at least one.
pub(crate) fn options(
    list: &MetaList,
    name: &str,
    options: &Punctuated<Meta, Token![,]>,
    errors: &mut Errors,
) {
    if options.is_empty() {
        errors.push(syn::Error::new_spanned(
            list,
            format!(
                "empty options\nhelp: write `#[{name}]`, or list the names the branch clones: `#[{name}(clone(db, cfg))]`"
            ),
        ));
    }
}

/// A `clone(..)` option, `seen` one before it or not: given once.
pub(crate) fn clone_option(seen: bool, clone: &MetaList, errors: &mut Errors) {
    if seen {
        errors.push(syn::Error::new_spanned(
            &clone.path,
            "`clone(..)` is given twice\nhelp: list every name in one `clone(..)`",
        ));
    }
}

/// The names of one `clone(..)`, as listed: at least one.
pub(crate) fn clone_list(
    clone: &MetaList,
    names: &Punctuated<Expr, Token![,]>,
    errors: &mut Errors,
) {
    if names.is_empty() {
        errors.push(syn::Error::new_spanned(
            clone,
            "`clone()` names nothing\nhelp: list the names the branch clones, `clone(db, cfg)`, or remove `clone()`",
        ));
    }
}

/// One name of a `clone(..)`, with `cloned` those before it: whether it
/// is cloned, else the error (`ctx`, or a name given twice).
pub(crate) fn clone_name(cloned: &[Ident], ident: &Ident, errors: &mut Errors) -> bool {
    if ident == "ctx" {
        errors.push(syn::Error::new_spanned(
            ident,
            "`ctx` is the branch's own: every branch gets its `ctx` without `clone`\n\
             help: remove `ctx` from the list",
        ));
        false
    } else if cloned.contains(ident) {
        errors.push(syn::Error::new_spanned(
            ident,
            format!("`{ident}` is cloned twice\nhelp: remove this one"),
        ));
        false
    } else {
        true
    }
}

/// The rules on the parsed block: its bodies, and at least one branch.
pub(crate) fn check(input: &Input, errors: &mut Errors) {
    for branch in &input.branches {
        let blocking = branch.attrs.mode.is_sync();
        match &branch.body {
            Body::Broken => {}
            Body::For(fan_out) => {
                let mut bindings = Bindings::default();
                bindings.visit_pat(&fan_out.pat);
                let body = block_expr(&fan_out.body);
                check_body(&body, &bindings.ctx, blocking, errors);
            }
            Body::Expr(body) => check_body(body, &[], blocking, errors),
        }
    }
    // Only when nothing else is wrong: a block whose one branch did not
    // parse, or whose headers have mistakes, is not also told it is empty.
    if input.branches.is_empty() && errors.is_empty() {
        errors.at(
            Span::call_site(),
            "this `errgroup!` has no branches\nhelp: add one per concurrent task: `name => expression,`",
        );
    }
}

/// `ctx` rebinding, and `.await` in a synchronous (`#[blocking]`) body.
fn check_body(body: &Expr, pattern_rebinds: &[Span], blocking: bool, errors: &mut Errors) {
    let mut scan = Scan::default();
    scan.visit_expr(body);
    for &span in pattern_rebinds.iter().chain(&scan.ctx_rebinds) {
        errors.at(
            span,
            "this rebinds `ctx`, the group's injected context, inside a branch\nhelp: give the new binding another name; `ctx` must stay this branch's context",
        );
    }
    for (span, spawner, method) in scan.ctx_in_spawn {
        errors.at(
            span,
            format!("`ctx` cannot move into a task started with `{spawner}.{method}`: it is this branch's context, borrowed for the branch, and the task may outlive it\nhelp: use `{spawner}.spawn_with(name, |ctx| async move {{ .. }})`: the task gets a ctx of its own"),
        );
    }
    if blocking {
        for span in scan.awaits {
            errors.push(syn::Error::new_spanned(
                span,
                "a `#[blocking]` branch body is synchronous and cannot `.await`\nhelp: remove `#[blocking]` to run it as an async branch, or remove the `.await`",
            ));
        }
    }
}

/// A fan-out body as an expression, for the rules written on expressions.
fn block_expr(block: &syn::Block) -> Expr {
    Expr::Block(syn::ExprBlock {
        attrs: Vec::new(),
        label: None,
        block: block.clone(),
    })
}

/// What a branch body contains, as far as the rules care.
#[derive(Default)]
struct Scan {
    ctx_rebinds: Vec<Span>,
    /// `.await`s outside nested async blocks and closures, as `.await`.
    awaits: Vec<TokenStream>,
    /// `ctx` used in the future given to `ctx.spawn` or a pool's `spawn`:
    /// the first use in each, the spawner's name and the method.
    ctx_in_spawn: Vec<(Span, String, String)>,
    /// Names bound to `ctx.pool()..` in this body: `Pool`s, whose tasks
    /// are `'static` too.
    pools: Vec<syn::Ident>,
}

impl<'ast> Visit<'ast> for Scan {
    fn visit_local(&mut self, local: &'ast syn::Local) {
        let mut bindings = Bindings::default();
        bindings.visit_pat(&local.pat);
        self.ctx_rebinds.extend(bindings.ctx);
        if let (syn::Pat::Ident(name), Some(init)) = (&local.pat, &local.init) {
            if is_ctx_pool(&init.expr) {
                self.pools.push(name.ident.clone());
            }
        }
        visit::visit_local(self, local);
    }

    fn visit_expr_await(&mut self, node: &'ast syn::ExprAwait) {
        let (dot, kw) = (node.dot_token, node.await_token);
        self.awaits.push(quote::quote!(#dot #kw));
        visit::visit_expr_await(self, node);
    }

    fn visit_expr_method_call(&mut self, node: &'ast syn::ExprMethodCall) {
        let spawner = match &*node.receiver {
            Expr::Path(path) if path.qself.is_none() => path.path.get_ident(),
            _ => None,
        };
        let spawner = spawner.filter(|name| {
            (*name == "ctx" && node.method == "spawn")
                || (self.pools.contains(name)
                    && (node.method == "spawn" || node.method == "spawn_queued"))
        });
        if let Some(spawner) = spawner {
            for arg in &node.args {
                if let Expr::Async(task) = arg {
                    let mut uses = CtxUses::default();
                    uses.visit_expr_async(task);
                    let (spawner, method) = (spawner.to_string(), node.method.to_string());
                    self.ctx_in_spawn.extend(
                        uses.first
                            .map(|span| (span, spawner.clone(), method.clone())),
                    );
                }
            }
        }
        visit::visit_expr_method_call(self, node);
    }

    fn visit_expr_async(&mut self, node: &'ast syn::ExprAsync) {
        let awaits = self.awaits.len();
        visit::visit_expr_async(self, node);
        self.awaits.truncate(awaits);
    }

    fn visit_expr_closure(&mut self, node: &'ast syn::ExprClosure) {
        let awaits = self.awaits.len();
        visit::visit_expr_closure(self, node);
        self.awaits.truncate(awaits);
    }
}

/// The `ctx` bindings of a `let` pattern, however deep (`let (ctx, n) = ..`).
#[derive(Default)]
struct Bindings {
    ctx: Vec<Span>,
}

impl<'ast> Visit<'ast> for Bindings {
    fn visit_pat_ident(&mut self, node: &'ast syn::PatIdent) {
        if node.ident == "ctx" {
            self.ctx.push(node.ident.span());
        }
        visit::visit_pat_ident(self, node);
    }
}

/// Whether `expr` is `ctx.pool()`, maybe followed by more method calls
/// (`.limit(8).supervise(..)`).
fn is_ctx_pool(expr: &Expr) -> bool {
    let mut expr = expr;
    let mut pool = false;
    while let Expr::MethodCall(call) = expr {
        pool = call.method == "pool";
        expr = &call.receiver;
    }
    pool && matches!(expr, Expr::Path(path) if path.qself.is_none() && path.path.is_ident("ctx"))
}

/// The first use of the branch's `ctx` in a future; a closure whose
/// parameters bind `ctx` has its own (`spawn_with`'s), and a macro's
/// tokens (a nested `errgroup!`) are its own business.
#[derive(Default)]
struct CtxUses {
    first: Option<Span>,
}

impl<'ast> Visit<'ast> for CtxUses {
    fn visit_expr_path(&mut self, node: &'ast syn::ExprPath) {
        if node.qself.is_none() && node.path.is_ident("ctx") && self.first.is_none() {
            self.first = Some(node.path.segments[0].ident.span());
        }
        visit::visit_expr_path(self, node);
    }

    fn visit_expr_closure(&mut self, node: &'ast syn::ExprClosure) {
        let mut bindings = Bindings::default();
        for input in &node.inputs {
            bindings.visit_pat(input);
        }
        if bindings.ctx.is_empty() {
            visit::visit_expr_closure(self, node);
        }
    }
}
