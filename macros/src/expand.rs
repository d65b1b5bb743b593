//! Expand: a checked block into calls on `::errgroup::__private` (or the
//! `crate = ..;` header's path).
//!
//! The expansion is a block expression that awaits, like `tokio::try_join!`:
//! the header values become a `Config`, each branch one constructor call
//! (`InTask`, `Spawn` or `Blocking`, `.branch(..)` for one body and
//! `.fan_out(..)` for a `for` branch), and the tuple of branches, pinned
//! in the block, is handed to `scope.run(..)`, the runtime's loop. In-task branches live in that
//! future, so they may borrow locals. Internal names carry
//! `Span::mixed_site()`, so branch bodies cannot see them; only `ctx` is
//! given the caller's span on purpose.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::ast::{Body, Branch, Config, Input, Krate};
use crate::mode::Mode;
use crate::never_ok;

/// The most branches the runtime's tuples hold; more are nested.
const MAX_TUPLE: usize = 8;

/// The block's expansion; `imports`, the lint checks' `use`
/// (`lints::lint`), goes first in it.
pub(crate) fn expand(input: &Input, imports: Option<&TokenStream>) -> TokenStream {
    let site = Span::mixed_site();
    let krate = input.config.krate();
    let rt = krate.private(site);
    let scope = format_ident!("__errgroup_scope", span = site);

    let error_type = error_type(&input.config, quote!(_));
    let config = config(input, &rt);

    let channels = channels(&input.config, &scope, &rt, site);
    let mut setup = channels.setup.clone();
    let mut branches = Vec::new();
    let inline = input.inline_branch();
    let shadow = shadows_once(input);
    for (i, branch) in input.branches.iter().enumerate() {
        let mode = branch.attrs.mode;
        let names = Names {
            site,
            scope: &scope,
            rt: &rt,
            krate: &krate,
            ctx: format_ident!("__errgroup_ctx{}", i, span = site),
            item: format_ident!("__errgroup_item{}", i, span = site),
            supervise: input.config.supervise.is_some(),
            limited: input.config.limit.is_some(),
            ends: channels.ends_for(branch, i, &rt, site),
            moving: branch.attrs.mode_span,
            clones: clones(&branch.attrs.clones, &rt),
            shadow: !shadow,
        };
        setup.extend([names.ends.setup.clone()]);
        let future = match &branch.body {
            Body::Expr(body) => {
                let (ctx, name) = (&names.ctx, branch.name.to_string());
                // A `#[spawn]` body is `'static`: its ctx owns the group.
                let make = if mode == Mode::Spawn {
                    format_ident!("owned_ctx", span = site)
                } else {
                    format_ident!("ctx", span = site)
                };
                setup.extend([quote_spanned!(site=> let #ctx = #scope.#make(#name);)]);
                single(&names, &name, body, mode, inline == Some(i))
            }
            Body::For(fan_out) => fan_out_branch(&names, &branch.name, fan_out, mode),
            Body::Broken => continue,
        };
        branches.push(future);
    }
    setup.extend([channels.drops]);

    let values: Vec<_> = (0..branches.len())
        .map(|i| format_ident!("__errgroup_value{}", i, span = site))
        .collect();
    let tuple = nest(&branches, Some(&rt));
    // Pinned where the block keeps them: the group's future points to
    // them, and awaiting it moves a few words, not every branch. Bound
    // first, so that `pin!` is handed a name, not the branches' tokens;
    // pinned in a `let`, so that the run below, the block's tail, holds no
    // temporary (under 2018/2021 a tail's temporaries outlive the block's
    // locals, which the branches borrow).
    let pinned = format_ident!("__errgroup_branches", span = site);
    let joined = if shadow {
        let user_ctx = quote_spanned!(Span::call_site()=> ctx);
        quote_spanned!(site=> { fn #user_ctx() {} #rt::join(#tuple) })
    } else {
        quote_spanned!(site=> #rt::join(#tuple))
    };
    setup.extend([quote_spanned!(site=>
        let #pinned = #joined;
        let #pinned = #rt::pin!(#pinned);
    )]);
    let tuple = &pinned;
    // A signal that is not a future is reported once, at the value: the
    // call that turns it into its future and the run's `.await` (which
    // awaits it too) are both spanned there.
    let run = if let Some(signal) = &input.config.shutdown_on {
        let method = format_ident!("shutdown_on", span = signal.key);
        let value = &signal.value;
        let span = value.span();
        let signal = quote_spanned!(span=> ::core::future::IntoFuture::into_future(#value));
        let run = quote_spanned!(site=> #scope.run(#tuple).#method(#signal));
        quote_spanned!(span=> #run.await)
    } else {
        quote_spanned!(site=> #scope.run(#tuple).await)
    };
    let run = if branches.len() > MAX_TUPLE {
        let nested = nest(&values, None);
        quote_spanned! {site=>
            match #run {
                #rt::Result::Ok(#nested) => #rt::Result::Ok((#(#values,)*)),
                #rt::Result::Err(error) => #rt::Result::Err(error),
            }
        }
    } else {
        run
    };
    // The run is the tail, not a `let` and its name: the group's value
    // then goes from the driver's output to where the block's value goes
    // with one copy fewer (64 bytes for a trivial group).
    quote_spanned! {site=>
        {
            #imports
            let #scope = #rt::Scope::<#error_type>::new(#config);
            #setup
            #run
        }
    }
}

/// Whether the `fn ctx` that each branch's `let ctx` needs (see
/// [`Names::bind_ctx`]) is written once, in a block around the tuple of
/// branches, instead of once per branch: one item per group, not per
/// branch (each costs every build its own queries). Not when a fan-out's
/// items expression, which the tuple holds outside any body, names `ctx`
/// (an enclosing branch's, in a nested group): it would name the `fn`.
fn shadows_once(input: &Input) -> bool {
    fn names_ctx(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|tree| match tree {
            proc_macro2::TokenTree::Ident(ident) => ident == "ctx",
            proc_macro2::TokenTree::Group(group) => names_ctx(group.stream()),
            _ => false,
        })
    }
    !input.branches.iter().any(|branch| match &branch.body {
        Body::For(fan_out) => names_ctx(quote::ToTokens::to_token_stream(&fan_out.expr)),
        Body::Expr(_) | Body::Broken => false,
    })
}

/// `let name = Clone::clone(&name);` for each name of a `clone(..)` list,
/// spanned where the name is written: the binding is the one the body sees,
/// the argument the variable outside.
fn clones(names: &[syn::Ident], rt: &TokenStream) -> TokenStream {
    names
        .iter()
        .map(|name| quote_spanned!(name.span()=> let #name = #rt::Clone::clone(&#name);))
        .collect()
}

/// `(a, b, ..)`, nested so that no tuple holds more than [`MAX_TUPLE`]; an
/// inner tuple of branches goes through `join` (`rt`) to be one branch.
fn nest<T: quote::ToTokens>(items: &[T], rt: Option<&TokenStream>) -> TokenStream {
    if items.len() <= MAX_TUPLE {
        return quote!((#(#items,)*));
    }
    let (flat, rest) = items.split_at(MAX_TUPLE - 1);
    let rest = nest(rest, rt);
    let rest = match rt {
        Some(rt) => quote!(#rt::join(#rest)),
        None => rest,
    };
    quote!((#(#flat,)* #rest,))
}

/// The generated names one branch uses.
struct Names<'a> {
    site: Span,
    scope: &'a syn::Ident,
    rt: &'a TokenStream,
    krate: &'a Krate,
    ctx: syn::Ident,
    item: syn::Ident,
    supervise: bool,
    /// The group has a `limit`: its in-task and `#[spawn]` branches may
    /// wait for a permit (`InTask::limited`, `Spawn::limited`,
    /// `Spawn::inline_limited`); without one they keep no phase
    /// (`InTask::branch`, `Spawn::branch`, `Spawn::inline`).
    limited: bool,
    ends: Ends,
    /// Where a `#[spawn]` or `#[blocking]` attribute names its mode: the
    /// moving body is spanned there, so that rustc's "value moved here"
    /// (E0382) points at the attribute, where `clone(..)` is the fix.
    moving: Option<Span>,
    /// `let db = Clone::clone(&db);` per name in the attribute's `clone(..)`.
    clones: TokenStream,
    /// Whether `bind_ctx` writes the `fn ctx` (see [`shadows_once`]).
    shadow: bool,
}

impl Names<'_> {
    /// `let ctx: &BranchCtx<_> = <from>;`, with `ctx` visible to the body:
    /// typed by the group's error type, so that `ctx.spawn`'s task is. A
    /// `fn ctx` around it shadows any item of the user's named `ctx` (a
    /// const, a static, a unit struct, an imported enum variant): the `let`
    /// would otherwise be a pattern matching that item, or be rejected,
    /// where a name that resolves to a fn is a fresh binding. It is written
    /// once, in a block around the tuple of branches ([`shadows_once`]),
    /// or else here, first in the body's block (items in a block are in
    /// scope in all of it). Neither needs an `allow` for going unused:
    /// rustc does not lint a macro's own tokens.
    fn bind_ctx(&self, from: &TokenStream) -> TokenStream {
        let user_ctx = quote_spanned!(Span::call_site()=> ctx);
        let ctx_type = self.ctx_type();
        let shadow = self
            .shadow
            .then(|| quote_spanned!(self.site=> fn #user_ctx() {}));
        quote_spanned! {self.site=>
            #shadow
            let #user_ctx: &#ctx_type = #from;
        }
    }

    /// `::errgroup::BranchCtx<_>`, through the crate's path: `_` is the
    /// group's error type, which the runtime's constructors tie it to.
    fn ctx_type(&self) -> TokenStream {
        let root = self.krate.root(self.site);
        quote_spanned!(self.site=> #root::BranchCtx<_>)
    }

    /// `{ let db = Clone::clone(&db); body }` for a `clone(db)` list: the
    /// clones are what the moving body captures.
    fn with_clones(&self, body: TokenStream) -> TokenStream {
        if self.clones.is_empty() {
            return body;
        }
        let clones = &self.clones;
        quote_spanned!(self.site=> { #clones #body })
    }

    /// `body`, through `never_ok` when it never yields `Ok` (`never_ok.rs`),
    /// then supervised under `on_error = continue`.
    fn adapt(&self, body: TokenStream, mode: Mode, never_ok: bool) -> TokenStream {
        let rt = self.rt;
        let body = if never_ok {
            let adapter = mode.adapter("never_ok", self.site);
            if self.supervise {
                let never = format_ident!("__errgroup_never", span = self.site);
                // Its `Result<T, E>` is a value the caller may name.
                quote_spanned!(self.site=> #rt::#adapter(#body, |#never| match #never {}))
            } else {
                // Its value never exists; `()` lets the group's value be
                // `Default` (`.allow_shutdown()`) in every edition, where a
                // type left to the never-type fallback is `!` (2024) or
                // trips its lint (2018/2021).
                quote_spanned!(self.site=> #rt::#adapter(#body, #rt::never_unit))
            }
        } else {
            body
        };
        if !self.supervise {
            return body;
        }
        let adapter = mode.adapter("supervise", self.site);
        quote_spanned!(self.site=> #rt::#adapter(#body))
    }
}

/// A plain branch `name`, given `ctx` in scope under `names.ctx`; `inline`:
/// a `#[spawn]` branch run in the group's task (`Spawn::inline`).
fn single(
    names: &Names,
    name: &str,
    user_body: &syn::Expr,
    mode: Mode,
    inline: bool,
) -> TokenStream {
    let body = user_body;
    let Names {
        site, scope, ctx, ..
    } = names;
    let site = *site;
    let ends = names.ends.bind(&names.ends.held);
    let constructor = mode.constructor_path(names.rt, site);
    // A body that starts with a block (`{ .. } > x`) must not become a
    // block statement followed by a stray operator: in parentheses, which
    // are then needed (so not linted).
    let body = if starts_with_block(body) || starts_with_crate(body) {
        quote_spanned!(body.span()=> (#body))
    } else {
        quote!(#body)
    };
    let ctx_type = names.ctx_type();
    let bind = names.bind_ctx(&mode.ctx_source(ctx, site));
    // A moving body is spanned at its attribute (`Names::moving`).
    let span = names.moving.unwrap_or(body.span());
    let body = mode.body(span, ctx, &ctx_type, &quote!(#bind #ends #body));
    let ctx_arg = mode.ctx_argument(ctx, name, site);
    let body = names.adapt(body, mode, never_ok::expr(user_body));
    let body = names.with_clones(body);
    // A branch of a group with `limit` may wait for a permit; without one
    // it keeps no phase. A `#[blocking]` branch's own `branch` does both.
    let limited = names.limited && mode != Mode::Blocking;
    let method = match (inline, limited) {
        (true, false) => "inline",
        (true, true) => "inline_limited",
        (false, true) => "limited",
        (false, false) => "branch",
    };
    let method = format_ident!("{}", method, span = site);
    quote_spanned! {site=>
        #constructor.#method(&#scope, #ctx_arg, #body)
    }
}

/// Whether `expr` is not block-like but its leftmost part is: written as a
/// statement, it would end after that part.
fn starts_with_block(expr: &syn::Expr) -> bool {
    fn block_like(expr: &syn::Expr) -> bool {
        use syn::Expr as E;
        matches!(
            expr,
            E::Block(_)
                | E::If(_)
                | E::Match(_)
                | E::Loop(_)
                | E::While(_)
                | E::ForLoop(_)
                | E::Unsafe(_)
                | E::TryBlock(_)
                | E::Const(_)
        )
    }
    !block_like(expr) && block_like(leftmost(expr))
}

/// Whether `expr` starts with `crate`, which a statement would read as the
/// start of an item (`crate.x` is no value, but the output must still be
/// one expression for rustc to report that).
fn starts_with_crate(expr: &syn::Expr) -> bool {
    matches!(leftmost(expr), syn::Expr::Path(p) if p.qself.is_none()
        && p.path.leading_colon.is_none()
        && p.path.segments.first().is_some_and(|s| s.ident == "crate"))
}

/// The part of `expr` written first.
fn leftmost(expr: &syn::Expr) -> &syn::Expr {
    use syn::Expr as E;
    match expr {
        E::Binary(e) => leftmost(&e.left),
        E::MethodCall(e) => leftmost(&e.receiver),
        E::Field(e) => leftmost(&e.base),
        E::Index(e) => leftmost(&e.expr),
        E::Cast(e) => leftmost(&e.expr),
        E::Try(e) => leftmost(&e.expr),
        E::Await(e) => leftmost(&e.base),
        E::Call(e) => leftmost(&e.func),
        E::Assign(e) => leftmost(&e.left),
        E::Range(syn::ExprRange {
            start: Some(start), ..
        }) => leftmost(start),
        _ => expr,
    }
}

/// A fan-out branch: one task per item of its iterator.
fn fan_out_branch(
    names: &Names,
    name: &syn::Ident,
    fan_out: &syn::ExprForLoop,
    mode: Mode,
) -> TokenStream {
    let Names {
        site,
        scope,
        rt,
        ctx,
        item,
        ..
    } = names;
    let site = *site;
    let name = name.to_string();
    let (pat, items, block) = (&fan_out.pat, &fan_out.expr, &fan_out.body);
    // A `for` pattern may be an or-pattern (`for | a | b in ..`), which a
    // `let` takes only in parentheses.
    let pat = if matches!(&**pat, syn::Pat::Or(_)) {
        quote!((#pat))
    } else {
        quote!(#pat)
    };
    // The statements, not the block: the braces would be linted as unneeded.
    let stmts = &block.stmts;
    // The branch's clones of the channel ends it names go to the fan-out,
    // which clones them for each item and drops them when no item will
    // start again.
    let (held, lent) = (names.ends.held(), names.ends.lent_param());
    let ends = names.ends.bind(&names.ends.lent);
    let constructor = mode.constructor_path(rt, site);
    let ctx_type = names.ctx_type();
    let never_ok = never_ok::block(block);
    // A moving body is spanned at its attribute (`Names::moving`).
    let span = names.moving.unwrap_or(block.span());
    let clones = &names.clones;
    let bind = names.bind_ctx(&mode.ctx_source(ctx, site));
    // A moving body owns what it names. An in-task one borrows from the
    // caller, as a plain branch does, except its item, ctx and ends, which
    // it is made to own: `ctx` rebound, the item taken out of `Moved`.
    let stmts = if mode.moves() {
        quote_spanned! {span=>
            #bind
            #ends
            #[allow(clippy::no_effect_underscore_binding)]
            let #pat = #item;
            #(#stmts)*
        }
    } else {
        // The ctx is captured by value through its drop at the end, not
        // moved into a local: a future keeps a captured value and a local
        // it was moved into side by side, so every item held it twice.
        let out = format_ident!("__errgroup_out", span = site);
        quote_spanned! {span=>
            #bind
            let #out = {
                #ends
                let #pat = #item.into_inner();
                #(#stmts)*
            };
            // A body that never ends (`loop {}`) never gets here.
            #[allow(unreachable_code)]
            #rt::drop(#ctx);
            #out
        }
    };
    let body = mode.body(span, ctx, &ctx_type, &stmts);
    let body = names.adapt(body, mode, never_ok);
    // Each item's launch: given the item, its ctx (a blocking body gets
    // its ctx from the runtime, by reference) and its clones of the ends.
    let move_kw = mode.moves().then(|| quote_spanned!(span=> move));
    let ctx_param = (!mode.is_sync()).then(|| quote_spanned!(span=> #ctx: #ctx_type,));
    let moved = (!mode.moves()).then(|| quote_spanned!(span=> let #item = #rt::Moved(#item);));
    let launch = quote_spanned! {span=>
        #move_kw |#item, #ctx_param #lent| { #clones #moved #body }
    };
    let launch = names.with_clones(launch);
    quote_spanned! {site=>
        #constructor.fan_out(&#scope, #name, #items, #held, #launch)
    }
}

/// The group's channel headers: made from the scope before the branches.
struct Channels<'a> {
    /// `let (__tx, __rx) = scope.channel(..);` per header.
    setup: TokenStream,
    /// Drops the originals once every branch has its clones: senders and
    /// receivers named by no branch close nothing late.
    drops: TokenStream,
    /// (the user's name, the original's internal name), per end.
    ends: Vec<(&'a syn::Ident, syn::Ident)>,
}

fn channels<'a>(
    config: &'a Config,
    scope: &syn::Ident,
    rt: &TokenStream,
    site: Span,
) -> Channels<'a> {
    let mut channels = Channels {
        setup: TokenStream::new(),
        drops: TokenStream::new(),
        ends: Vec::new(),
    };
    for (c, channel) in config.channels.iter().enumerate() {
        let tx = format_ident!("__errgroup_chan{}_tx", c, span = site);
        let rx = format_ident!("__errgroup_chan{}_rx", c, span = site);
        let method = format_ident!(
            "{}",
            channel.constructor.to_string(),
            span = channel.constructor.span()
        );
        let turbofish = channel.item.as_ref().map(|ty| quote!(::<#ty>));
        let capacity = &channel.capacity;
        channels
            .setup
            .extend([quote_spanned! {channel.constructor.span()=>
                let (#tx, #rx) = #scope.#method #turbofish(#capacity);
            }]);
        channels.drops.extend([quote_spanned! {site=>
            #rt::drop(#tx);
            #rt::drop(#rx);
        }]);
        channels.ends.push((&channel.tx, tx));
        channels.ends.push((&channel.rx, rx));
    }
    channels
}

impl Channels<'_> {
    /// The ends branch `i` names, cloned for it.
    fn ends_for(&self, branch: &Branch, i: usize, rt: &TokenStream, site: Span) -> Ends {
        // Without channels, the body is not turned into tokens to be
        // searched: a cost in every build, the macro being unoptimized in a
        // dev profile.
        let tokens = match &branch.body {
            _ if self.ends.is_empty() => TokenStream::new(),
            Body::Expr(body) => quote!(#body),
            Body::For(fan_out) => {
                let block = &fan_out.body;
                quote!(#block)
            }
            Body::Broken => TokenStream::new(),
        };
        let named: Vec<_> = self
            .ends
            .iter()
            .filter(|(user, _)| mentions(&tokens, user))
            .collect();
        let held = format_ident!("__errgroup_ends{}", i, span = site);
        let lent = format_ident!("__errgroup_lent{}", i, span = site);
        let users: Vec<_> = named.iter().map(|(user, _)| *user).collect();
        let originals: Vec<_> = named.iter().map(|(_, orig)| orig).collect();
        let setup = if named.is_empty() {
            TokenStream::new()
        } else {
            quote_spanned! {site=>
                let #held = (#(#rt::Clone::clone(&#originals),)*);
            }
        };
        Ends {
            users: users.into_iter().cloned().collect(),
            held,
            lent,
            setup,
            site,
        }
    }
}

/// The channel ends one branch names, and where it holds its clones.
struct Ends {
    users: Vec<syn::Ident>,
    /// The branch's own clones (a tuple).
    held: syn::Ident,
    /// One fan-out item's clones.
    lent: syn::Ident,
    setup: TokenStream,
    site: Span,
}

impl Ends {
    /// `let (tx, rx) = <from>;`, first thing in a body, so that its future
    /// owns the clones and drops them when it ends.
    fn bind(&self, from: &syn::Ident) -> TokenStream {
        if self.users.is_empty() {
            return TokenStream::new();
        }
        let users = &self.users;
        quote_spanned! {self.site=>
            #[allow(unused_variables)]
            let (#(#users,)*) = #from;
        }
    }

    /// The branch's clones, handed to a fan-out: `()` when it names none.
    fn held(&self) -> TokenStream {
        if self.users.is_empty() {
            return quote_spanned!(self.site=> ());
        }
        let held = &self.held;
        quote_spanned!(self.site=> #held)
    }

    /// The parameter one fan-out item's clones arrive in.
    fn lent_param(&self) -> TokenStream {
        if self.users.is_empty() {
            return quote_spanned!(self.site=> ());
        }
        let lent = &self.lent;
        quote_spanned!(self.site=> #lent)
    }
}

/// Whether `tokens` name `ident` anywhere, inside macro calls too.
fn mentions(tokens: &TokenStream, ident: &syn::Ident) -> bool {
    tokens.clone().into_iter().any(|tt| match tt {
        proc_macro2::TokenTree::Ident(i) => i == *ident,
        proc_macro2::TokenTree::Group(g) => mentions(&g.stream(), ident),
        _ => false,
    })
}

/// The `type Error = ..;` header, or `default`.
pub(crate) fn error_type(config: &Config, default: TokenStream) -> TokenStream {
    match &config.error_type {
        Some(setting) => {
            let ty = &setting.value;
            quote!(#ty)
        }
        None => default,
    }
}

/// `Config::new().timeout(..).limit(..)`, in the order the headers are
/// written, each value spanned on the user's expression so a type mismatch
/// points there; then `.with_core()` when [`needs_core`].
fn config(input: &Input, rt: &TokenStream) -> TokenStream {
    let config = &input.config;
    let mut settings = [
        ("timeout", &config.timeout),
        ("deadline", &config.deadline),
        ("parent", &config.parent),
        ("limit", &config.limit),
        ("grace", &config.grace),
    ]
    .into_iter()
    .filter_map(|(method, setting)| Some((method, setting.as_ref()?)))
    .collect::<Vec<_>>();
    settings.sort_by_key(|(_, setting)| setting.order);
    let mut tokens = quote!(#rt::Config::new());
    for (method, setting) in settings {
        let expr = &setting.value;
        let method = format_ident!("{}", method, span = expr.span());
        tokens = quote_spanned!(expr.span()=> #tokens.#method(#expr));
    }
    if needs_core(input) {
        tokens = quote!(#tokens.with_core());
    }
    tokens
}

/// Whether the group's own code takes an owned handle on the group as it
/// starts (a moving branch's ctx, a fan-out's items, a channel's ends): its
/// core is then built at birth, rather than its inline state first and the
/// core from it at once (runtime/state.rs, `Place`).
fn needs_core(input: &Input) -> bool {
    !input.config.channels.is_empty()
        || input
            .branches
            .iter()
            .any(|branch| branch.attrs.mode.moves() || matches!(branch.body, Body::For(_)))
}
