//! Which branches never yield `Ok`, read from their syntax. Such a branch
//! goes through `__private::never_ok`: its body's `Ok` type is
//! `Infallible`, and its value type as a branch comes from a closure that
//! diverges (`|never| match never {}`), so rustc fixes it from the code
//! around the group, and by the never-type fallback when nothing there
//! does. `failing => Err("boom")` would otherwise need `Err::<(), _>`, and
//! fixing the type to `()` instead would reject a caller that names it
//! (`-> Result<(Result<u8, E>, ..), ..>` under `on_error = continue`).
//!
//! A branch never yields `Ok` when its tail, looked at through blocks and
//! into every arm of an `if`/`else` or a `match`, is one of:
//!
//! - `Err(..)` (a path ending in `Err`, with no generic arguments: an
//!   `Err::<u8, _>(..)` keeps the type it names);
//! - `return Err(..)`, with or without its semicolon;
//! - a `loop` no `break` leaves;
//! - `panic!(..)`, `unreachable!(..)`, `todo!(..)` or `unimplemented!(..)`
//!   (bare, or as `std::`/`core::` paths), which never complete;
//!
//! and no `return` in the body (outside closures, async blocks and items,
//! whose returns are their own) returns anything but `Err(..)`.
//!
//! The answer must never be "yes" for a body that can yield `Ok`: its `Ok`
//! would meet `Infallible`, an error. Where the syntax cannot tell (a
//! `break` or a `return` inside a macro invocation, a labelled block that may be left
//! with a value), the answer is "no", and the type is inferred as before.

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::{self, Visit};
use syn::{Block, Expr, ExprLoop, Stmt};

/// Whether the branch `name => body` never yields `Ok`.
pub(crate) fn expr(body: &Expr) -> bool {
    tail(body, true) && !returns_other(|v| v.visit_expr(body))
}

/// Whether the fan-out item body `for .. in .. { block }` never yields `Ok`.
pub(crate) fn block(body: &Block) -> bool {
    block_tail(body) && !returns_other(|v| v.visit_block(body))
}

/// Whether `expr`, as a value, is `Err(..)` (when `err` allows it) or never
/// completes.
fn tail(expr: &Expr, err: bool) -> bool {
    match expr {
        Expr::Call(call) => err && is_err(&call.func),
        Expr::Return(ret) => ret.expr.as_deref().is_some_and(|value| tail(value, true)),
        Expr::Loop(l) => !breaks_out(l),
        Expr::Block(b) => b.label.is_none() && block_tail(&b.block),
        Expr::Unsafe(b) => block_tail(&b.block),
        Expr::Paren(e) => tail(&e.expr, err),
        Expr::Group(e) => tail(&e.expr, err),
        Expr::If(e) => match &e.else_branch {
            Some((_, other)) => block_tail(&e.then_branch) && tail(other, err),
            None => false,
        },
        Expr::Match(m) => m.arms.iter().all(|arm| tail(&arm.body, err)),
        Expr::Macro(m) => diverges(&m.mac),
        _ => false,
    }
}

/// `panic!`, `unreachable!`, `todo!`, `unimplemented!`: bare, or as
/// `std::..`/`core::..`, never another crate's macro of the same name.
fn diverges(mac: &syn::Macro) -> bool {
    let segments = &mac.path.segments;
    let prefix_ok = match segments.len() {
        1 => mac.path.leading_colon.is_none(),
        2 => segments[0].ident == "std" || segments[0].ident == "core",
        _ => false,
    };
    prefix_ok
        && segments.last().is_some_and(|s| {
            ["panic", "unreachable", "todo", "unimplemented"]
                .iter()
                .any(|name| s.ident == name)
        })
}

/// Whether a block's value is `Err(..)` or never completes: its tail
/// expression is, or its last statement never completes.
fn block_tail(block: &Block) -> bool {
    match block.stmts.last() {
        Some(Stmt::Expr(e, None)) => tail(e, true),
        Some(Stmt::Expr(e, Some(_))) => tail(e, false),
        Some(Stmt::Macro(m)) => diverges(&m.mac),
        _ => false,
    }
}

/// `Err`, `Result::Err`, `std::result::Result::Err`, without generics.
fn is_err(func: &Expr) -> bool {
    let Expr::Path(path) = func else {
        return false;
    };
    path.qself.is_none()
        && path.path.segments.last().is_some_and(|s| s.ident == "Err")
        && path.path.segments.iter().all(|s| s.arguments.is_none())
}

/// Whether a `break` may leave `l`: one without a label outside any inner
/// loop, one naming `l`'s label, or any `break` inside a macro invocation.
fn breaks_out(l: &ExprLoop) -> bool {
    struct Breaks<'a> {
        label: Option<&'a syn::Lifetime>,
        depth: usize,
        found: bool,
    }
    impl<'ast> Visit<'ast> for Breaks<'_> {
        fn visit_expr_break(&mut self, b: &'ast syn::ExprBreak) {
            match &b.label {
                None => self.found |= self.depth == 0,
                Some(label) => self.found |= Some(label) == self.label,
            }
            visit::visit_expr_break(self, b);
        }
        fn visit_expr_loop(&mut self, e: &'ast syn::ExprLoop) {
            self.depth += 1;
            visit::visit_expr_loop(self, e);
            self.depth -= 1;
        }
        fn visit_expr_while(&mut self, e: &'ast syn::ExprWhile) {
            self.depth += 1;
            visit::visit_expr_while(self, e);
            self.depth -= 1;
        }
        fn visit_expr_for_loop(&mut self, e: &'ast syn::ExprForLoop) {
            self.depth += 1;
            visit::visit_expr_for_loop(self, e);
            self.depth -= 1;
        }
        fn visit_macro(&mut self, m: &'ast syn::Macro) {
            self.found |= has_keyword(&m.tokens, "break");
        }
        // A `break` cannot leave these.
        fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {}
        fn visit_expr_async(&mut self, _: &'ast syn::ExprAsync) {}
        fn visit_expr_const(&mut self, _: &'ast syn::ExprConst) {}
        fn visit_item(&mut self, _: &'ast syn::Item) {}
    }
    let mut breaks = Breaks {
        label: l.label.as_ref().map(|label| &label.name),
        depth: 0,
        found: false,
    };
    breaks.visit_block(&l.body);
    breaks.found
}

/// Whether the body, visited by `visit`, has a `return` of anything but
/// `Err(..)`, or a `return` the syntax hides (in a macro invocation).
fn returns_other(visit: impl FnOnce(&mut Returns)) -> bool {
    let mut returns = Returns { found: false };
    visit(&mut returns);
    returns.found
}

struct Returns {
    found: bool,
}

impl<'ast> Visit<'ast> for Returns {
    fn visit_expr_return(&mut self, r: &'ast syn::ExprReturn) {
        self.found |= !r.expr.as_deref().is_some_and(|value| tail(value, true));
        visit::visit_expr_return(self, r);
    }
    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.found |= has_keyword(&m.tokens, "return");
    }
    // Their returns are their own.
    fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {}
    fn visit_expr_async(&mut self, _: &'ast syn::ExprAsync) {}
    fn visit_expr_const(&mut self, _: &'ast syn::ExprConst) {}
    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

fn has_keyword(tokens: &TokenStream, keyword: &str) -> bool {
    tokens.clone().into_iter().any(|tt| match tt {
        TokenTree::Ident(i) => i == keyword,
        TokenTree::Group(g) => has_keyword(&g.stream(), keyword),
        _ => false,
    })
}
