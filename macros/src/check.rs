//! Check: the usage rules of branch bodies (no rebinding of `ctx`, no
//! `.await` in a `#[blocking]` body) and of the block as a whole (at least
//! one branch). The rules decided while parsing (headers, attributes,
//! names) live in `ast.rs` and `attr.rs`. Every violation is collected, so
//! one build reports all of them.

use proc_macro2::{Span, TokenStream};
use syn::Expr;
use syn::visit::{self, Visit};

use crate::ast::{Body, Input};
use crate::attr::Mode;
use crate::errors::Errors;

pub(crate) fn check(input: &Input, errors: &mut Errors) {
    for branch in &input.branches {
        let blocking = branch.attrs.mode == Mode::Blocking;
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

/// `ctx` rebinding, and `.await` in a `#[blocking]` body.
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
