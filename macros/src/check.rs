//! Check: the usage rules of a parsed block. Every violation is collected,
//! so one build reports all of them.

use proc_macro2::{Span, TokenStream};
use syn::visit::{self, Visit};
use syn::{Attribute, Expr, Lit, Meta};

use crate::parse::{Body, Branch, HeaderKind, Input, closest};

/// What the attributes of one branch ask for.
#[derive(Default)]
pub(crate) struct Mode {
    pub(crate) spawn: bool,
    pub(crate) blocking: bool,
}

/// A block that passed every rule, ready to expand.
pub(crate) struct Checked {
    pub(crate) modes: Vec<Mode>,
    pub(crate) supervise: bool,
}

/// Collects errors; [`Errors::finish`] combines them into one.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    pub(crate) fn finish(self) -> Option<syn::Error> {
        self.0
    }
}

pub(crate) fn check(input: &Input, errors: &mut Errors) -> Checked {
    check_headers(input, errors);
    let modes = input
        .branches
        .iter()
        .enumerate()
        .map(|(i, b)| check_branch(b, &input.branches[..i], errors))
        .collect();
    if input.branches.is_empty() && input.errors.is_empty() {
        errors.at(
            Span::call_site(),
            "this `errgroup!` has no branches\nhelp: add one per concurrent task: `name => expression,`",
        );
    }
    Checked {
        modes,
        supervise: has_header(input, |h| matches!(h, HeaderKind::OnErrorContinue)),
    }
}

fn has_header(input: &Input, pred: impl Fn(&HeaderKind) -> bool) -> bool {
    input.headers.iter().any(|h| pred(&h.kind))
}

fn check_headers(input: &Input, errors: &mut Errors) {
    let mut seen: Vec<&'static str> = Vec::new();
    for header in &input.headers {
        let name = header.kind.name();
        if header.after_branch {
            errors.at(
                header.key,
                format!("the `{name}` header comes after a branch\nhelp: move every header above the first branch"),
            );
        }
        if name != "let" && seen.contains(&name) {
            errors.at(
                header.key,
                format!("the `{name}` header is set twice\nhelp: remove one of the two"),
            );
        }
        let timing = ["timeout", "deadline"];
        if timing.contains(&name) && seen.iter().any(|s| timing.contains(s) && *s != name) {
            errors.at(
                header.key,
                "`timeout` and `deadline` both set the group's deadline\nhelp: keep one of them",
            );
        }
        seen.push(name);
        if let HeaderKind::Limit(Expr::Lit(lit)) = &header.kind {
            if let Lit::Int(n) = &lit.lit {
                if n.base10_digits() == "0" {
                    errors.at(
                        n.span(),
                        "`limit = 0` would never let a branch run\nhelp: use `limit = 1` or more, or leave `limit` out for no limit",
                    );
                }
            }
        }
    }
}

/// A branch named like an earlier one.
fn check_name(branch: &Branch, earlier: &[Branch], errors: &mut Errors) {
    let parsed = |b: &&Branch| !matches!(b.body, Body::Broken);
    if parsed(&branch) && earlier.iter().filter(parsed).any(|b| b.name == branch.name) {
        errors.at(
            branch.name.span(),
            format!(
                "the branch name `{}` is used twice\nhelp: give every branch its own name; the names identify failed tasks",
                branch.name
            ),
        );
    }
}

const ATTRS: &str =
    "`#[spawn]`, `#[blocking]`, `#[allow(raw_channel)]` and `#[allow(detached_spawn)]`";

/// The rules of one branch, in source order: attributes, name, body.
fn check_branch(branch: &Branch, earlier: &[Branch], errors: &mut Errors) -> Mode {
    let mut mode = Mode::default();
    let mut allows: Vec<String> = Vec::new();
    for attr in &branch.attrs {
        match attr_kind(attr) {
            Some(AttrKind::Spawn) if mode.spawn => duplicate_attr(attr, "spawn", errors),
            Some(AttrKind::Blocking) if mode.blocking => duplicate_attr(attr, "blocking", errors),
            Some(AttrKind::Spawn) if mode.blocking => spawn_with_blocking(attr, errors),
            Some(AttrKind::Blocking) if mode.spawn => spawn_with_blocking(attr, errors),
            Some(AttrKind::Spawn) => mode.spawn = true,
            Some(AttrKind::Blocking) => mode.blocking = true,
            Some(AttrKind::Allow(lint)) if allows.contains(&lint) => {
                duplicate_attr(attr, &format!("allow({lint})"), errors);
            }
            Some(AttrKind::Allow(lint)) => allows.push(lint),
            None => unknown_attr(attr, errors),
        }
    }
    check_name(branch, earlier, errors);
    match &branch.body {
        Body::Broken => {}
        Body::For(fan_out) => {
            let mut bindings = Bindings::default();
            bindings.visit_pat(&fan_out.pat);
            let body = block_expr(&fan_out.body);
            check_body(&body, &bindings.ctx, &mode, errors);
        }
        Body::Expr(body) => check_body(body, &[], &mode, errors),
    }
    mode
}

/// `ctx` rebinding, and `.await` in a `#[blocking]` body.
fn check_body(body: &Expr, pattern_rebinds: &[Span], mode: &Mode, errors: &mut Errors) {
    let mut scan = Scan::default();
    scan.visit_expr(body);
    for &span in pattern_rebinds.iter().chain(&scan.ctx_rebinds) {
        errors.at(
            span,
            "this rebinds `ctx`, the group's injected context, inside a branch\nhelp: give the new binding another name; `ctx` must stay this branch's context",
        );
    }
    if mode.blocking {
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

enum AttrKind {
    Spawn,
    Blocking,
    Allow(String),
}

fn attr_kind(attr: &Attribute) -> Option<AttrKind> {
    match &attr.meta {
        Meta::Path(path) if path.is_ident("spawn") => Some(AttrKind::Spawn),
        Meta::Path(path) if path.is_ident("blocking") => Some(AttrKind::Blocking),
        Meta::List(allow) if allow.path.is_ident("allow") => {
            let lint: syn::Ident = allow.parse_args().ok()?;
            (lint == "raw_channel" || lint == "detached_spawn")
                .then(|| AttrKind::Allow(lint.to_string()))
        }
        _ => None,
    }
}

fn unknown_attr(attr: &Attribute, errors: &mut Errors) {
    let name = attr.path().get_ident().map(ToString::to_string);
    let help = match name
        .as_deref()
        .and_then(|n| closest(n, &["spawn", "blocking"]))
    {
        Some(known) => format!("did you mean `#[{known}]`?"),
        None => format!("a branch takes {ATTRS}"),
    };
    errors.push(syn::Error::new_spanned(
        attr,
        format!("unknown branch attribute\nhelp: {help}"),
    ));
}

fn duplicate_attr(attr: &Attribute, name: &str, errors: &mut Errors) {
    errors.push(syn::Error::new_spanned(
        attr,
        format!("`#[{name}]` is given twice\nhelp: remove this one"),
    ));
}

fn spawn_with_blocking(attr: &Attribute, errors: &mut Errors) {
    errors.push(syn::Error::new_spanned(
        attr,
        "a branch cannot be both `#[spawn]` and `#[blocking]`\nhelp: keep `#[blocking]` for synchronous CPU-bound work, or `#[spawn]` for an async task on another worker",
    ));
}

/// What a branch body contains, as far as the rules care.
#[derive(Default)]
struct Scan {
    ctx_rebinds: Vec<Span>,
    /// `.await`s outside nested async blocks and closures, as `.await`.
    awaits: Vec<TokenStream>,
}

impl<'ast> Visit<'ast> for Scan {
    fn visit_local(&mut self, local: &'ast syn::Local) {
        let mut bindings = Bindings::default();
        bindings.visit_pat(&local.pat);
        self.ctx_rebinds.extend(bindings.ctx);
        visit::visit_local(self, local);
    }

    fn visit_expr_await(&mut self, node: &'ast syn::ExprAwait) {
        let (dot, kw) = (node.dot_token, node.await_token);
        self.awaits.push(quote::quote!(#dot #kw));
        visit::visit_expr_await(self, node);
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
