//! Expand: a checked block into calls on `::errgroup::__private`.
//!
//! The expansion is a block expression that awaits, like `tokio::try_join!`:
//! in-task branches are pinned on the caller's stack and polled by one
//! `poll_fn` driver, so they may borrow locals; `#[spawn]` and `#[blocking]`
//! branches are polled through their join handles. Internal names carry
//! `Span::mixed_site()`, so branch bodies cannot see them; only `ctx` is
//! given the caller's span on purpose.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::check::{Checked, Mode};
use crate::parse::{Body, HeaderKind, Input};

pub(crate) fn expand(input: &Input, checked: &Checked) -> TokenStream {
    let site = Span::mixed_site();
    let rt = quote_spanned!(site=> ::errgroup::__private);
    let scope = format_ident!("__errgroup_scope", span = site);
    let cx = format_ident!("__errgroup_cx", span = site);
    let timer = format_ident!("__errgroup_timer", span = site);
    let pending = format_ident!("__errgroup_pending", span = site);

    let error_type = error_type(input, quote!(_));
    let config = config(input, &rt);

    let channels = channels(input, &scope, site);
    let mut setup = channels.setup.clone();
    let mut polls = TokenStream::new();
    let mut drops = TokenStream::new();
    let mut takes = TokenStream::new();
    let mut somes = TokenStream::new();
    let mut values = TokenStream::new();
    for (i, (branch, mode)) in input.branches.iter().zip(&checked.modes).enumerate() {
        let fut = format_ident!("__errgroup_branch{}", i, span = site);
        let slot = format_ident!("__errgroup_slot{}", i, span = site);
        let value = format_ident!("__errgroup_value{}", i, span = site);
        let names = Names {
            site,
            scope: &scope,
            rt: &rt,
            ctx: format_ident!("__errgroup_ctx{}", i, span = site),
            item: format_ident!("__errgroup_item{}", i, span = site),
            supervise: checked.supervise,
            ends: channels.ends_for(branch, i, &rt, site),
        };
        setup.extend(names.ends.setup.clone());
        let future = match &branch.body {
            Body::Expr(body) => {
                let future = single(&names, &branch.name, body, mode);
                let (ctx, name) = (&names.ctx, branch.name.to_string());
                setup.extend(quote_spanned!(site=> let #ctx = #scope.ctx(#name);));
                future
            }
            Body::For(fan_out) => fan_out_lending(&names, &branch.name, fan_out, mode),
            Body::Broken => continue,
        };
        setup.extend(quote_spanned! {site=>
            let mut #fut = #rt::pin!(#rt::Option::Some(#future));
            let mut #slot = #rt::Slot::new();
        });
        polls.extend(quote_spanned! {site=>
            #pending |= #rt::poll_branch(#fut.as_mut(), &mut #slot, #cx);
        });
        // Blocking bodies cannot be stopped, so grace waits for them;
        // `#[spawn]` ones are aborted and still awaited, so that they have
        // stopped when the group returns.
        if mode.spawn && matches!(branch.body, Body::Expr(_)) {
            drops.extend(quote_spanned!(site=> #rt::abort_branch(#fut.as_mut());));
        } else if !mode.blocking {
            drops.extend(quote_spanned!(site=> #rt::drop_branch(#fut.as_mut(), &mut #slot);));
        }
        takes.extend(quote_spanned!(site=> #slot.take(),));
        somes.extend(quote_spanned!(site=> #rt::Option::Some(#value),));
        values.extend(quote_spanned!(site=> #value,));
    }

    setup.extend(channels.drops);

    let (grace_setup, grace_poll) = grace(input, &scope, &cx, &rt, &drops, site);

    quote_spanned! {site=>
        {
            let #scope = #rt::Scope::<#error_type>::new(#config);
            #setup
            let mut #timer = #rt::pin!(#scope.timer());
            #grace_setup
            #rt::poll_fn(|#cx| {
                #scope.poll_timer(#timer.as_mut(), #cx);
                #grace_poll
                let mut #pending = false;
                #polls
                #pending = #scope.poll_tasks(#pending, #cx);
                if #pending {
                    #rt::PollState::Pending
                } else {
                    #rt::PollState::Ready(())
                }
            })
            .await;
            match (#takes) {
                (#somes) => #scope.finish(#rt::Option::Some((#values))),
                _ => #scope.finish(#rt::Option::None),
            }
        }
    }
}

/// With a `grace` header: the timer, and the poll that stops what still
/// runs once it expires.
fn grace(
    input: &Input,
    scope: &syn::Ident,
    cx: &syn::Ident,
    rt: &TokenStream,
    drops: &TokenStream,
    site: Span,
) -> (TokenStream, TokenStream) {
    if !input
        .headers
        .iter()
        .any(|h| matches!(h.kind, HeaderKind::Grace(_)))
    {
        return (TokenStream::new(), TokenStream::new());
    }
    let grace = format_ident!("__errgroup_grace", span = site);
    (
        quote_spanned!(site=> let mut #grace = #rt::pin!(#scope.grace());),
        quote_spanned! {site=>
            if #scope.poll_grace(#grace.as_mut(), #cx) {
                #drops
            }
        },
    )
}

/// The generated names one branch uses.
struct Names<'a> {
    site: Span,
    scope: &'a syn::Ident,
    rt: &'a TokenStream,
    ctx: syn::Ident,
    item: syn::Ident,
    supervise: bool,
    ends: Ends,
}

impl Names<'_> {
    /// `let ctx: &Ctx = <from>;`, with `ctx` visible to the body.
    fn bind_ctx(&self, from: &TokenStream) -> TokenStream {
        let user_ctx = quote_spanned!(Span::call_site()=> ctx);
        quote_spanned! {self.site=>
            #[allow(unused_variables)]
            let #user_ctx: &::errgroup::Ctx = #from;
        }
    }
}

/// The future of a plain branch, given `ctx` in scope under `names.ctx`.
fn single(names: &Names, _name: &syn::Ident, body: &syn::Expr, mode: &Mode) -> TokenStream {
    let Names {
        site, scope, ctx, ..
    } = names;
    let site = *site;
    if mode.blocking {
        let method = method("blocking", names.supervise, site);
        let bind = names.bind_ctx(&quote_spanned!(site=> #ctx));
        let ends = names.ends.bind_branch();
        quote_spanned! {body.span()=>
            #scope.#method(#ctx, move |#ctx: &::errgroup::Ctx| { #ends #bind #body })
        }
    } else if mode.spawn {
        let method = method("spawn", names.supervise, site);
        let bind = names.bind_ctx(&quote_spanned!(site=> &#ctx));
        let ends = names.ends.bind_branch();
        quote_spanned! {body.span()=>
            #scope.#method(#ctx.clone(), async move { #ends #bind #body })
        }
    } else {
        let method = format_ident!(
            "{}",
            if names.supervise {
                "supervised"
            } else {
                "branch"
            },
            span = site
        );
        let bind = names.bind_ctx(&quote_spanned!(site=> &#ctx));
        let ends = names.ends.bind_branch();
        quote_spanned! {body.span()=>
            #scope.#method(#ctx.clone(), async { #ends #bind #body })
        }
    }
}

/// The future of a fan-out branch: one task per item of its iterator.
fn fan_out_future(
    names: &Names,
    name: &syn::Ident,
    fan_out: &syn::ExprForLoop,
    mode: &Mode,
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
    // The statements, not the block: the braces would be linted as unneeded.
    let stmts = &block.stmts;
    let (lend, ends) = (names.ends.lend(), names.ends.bind_item());
    if mode.blocking {
        let method = method("fan_out_blocking", names.supervise, site);
        let bind = names.bind_ctx(&quote_spanned!(site=> #ctx));
        quote_spanned! {block.span()=>
            #scope.#method(#name, #items, move |#item| {
                #lend
                move |#ctx: &::errgroup::Ctx| {
                    #ends
                    #bind
                    #[allow(clippy::no_effect_underscore_binding)]
                    let #pat = #item;
                    #(#stmts)*
                }
            })
        }
    } else if mode.spawn {
        let method = method("fan_out_spawn", names.supervise, site);
        let bind = names.bind_ctx(&quote_spanned!(site=> &#ctx));
        quote_spanned! {block.span()=>
            #scope.#method(#name, #items, move |#item, #ctx: ::errgroup::Ctx| {
                #lend
                async move {
                    #ends
                    #bind
                    #[allow(clippy::no_effect_underscore_binding)]
                    let #pat = #item;
                    #(#stmts)*
                }
            })
        }
    } else {
        let method = method("fan_out", names.supervise, site);
        let bind = names.bind_ctx(&quote_spanned!(site=> &#ctx));
        // The item and the ctx move into the item's future; everything else
        // the body names is borrowed from the caller, as in a plain branch.
        quote_spanned! {block.span()=>
            #scope.#method(#name, #items, |#item, #ctx: ::errgroup::Ctx| {
                let #item = #rt::Moved(#item);
                #lend
                async {
                    let #ctx = #ctx;
                    #ends
                    #bind
                    let #pat = #item.into_inner();
                    #(#stmts)*
                }
            })
        }
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

fn channels<'a>(input: &'a Input, scope: &syn::Ident, site: Span) -> Channels<'a> {
    let mut channels = Channels {
        setup: TokenStream::new(),
        drops: TokenStream::new(),
        ends: Vec::new(),
    };
    let rt = quote_spanned!(site=> ::errgroup::__private);
    let headers = input.headers.iter().filter_map(|h| match &h.kind {
        HeaderKind::Channel(c) => Some(c),
        _ => None,
    });
    for (c, channel) in headers.enumerate() {
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
            .extend(quote_spanned! {channel.constructor.span()=>
                let (#tx, #rx) = #scope.#method #turbofish(#capacity);
            });
        channels.drops.extend(quote_spanned! {site=>
            #rt::drop(#tx);
            #rt::drop(#rx);
        });
        channels.ends.push((&channel.tx, tx));
        channels.ends.push((&channel.rx, rx));
    }
    channels
}

impl Channels<'_> {
    /// The ends branch `i` names, cloned for it.
    fn ends_for(
        &self,
        branch: &crate::parse::Branch,
        i: usize,
        rt: &TokenStream,
        site: Span,
    ) -> Ends {
        let tokens = match &branch.body {
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
        let fan_out = matches!(branch.body, Body::For(_));
        let setup = if named.is_empty() {
            TokenStream::new()
        } else if fan_out {
            let lender = format_ident!("__errgroup_lender{}", i, span = site);
            quote_spanned! {site=>
                let #lender = #rt::Lender::new((#(#rt::Clone::clone(&#originals),)*));
                let #held = &#lender;
            }
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
    /// The branch's own clones (a tuple), or, for a fan-out branch, a
    /// reference to the `Lender` of them.
    held: syn::Ident,
    /// One fan-out item's clones.
    lent: syn::Ident,
    setup: TokenStream,
    site: Span,
}

impl Ends {
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

    /// `let (tx, rx) = <the branch's clones>;`, first thing in its body, so
    /// its future owns them and drops them when it ends.
    fn bind_branch(&self) -> TokenStream {
        self.bind(&self.held)
    }

    /// Clones for one fan-out item, taken before its future is made.
    fn lend(&self) -> TokenStream {
        if self.users.is_empty() {
            return TokenStream::new();
        }
        let (held, lent) = (&self.held, &self.lent);
        quote_spanned!(self.site=> let #lent = #held.lend();)
    }

    fn bind_item(&self) -> TokenStream {
        self.bind(&self.lent)
    }

    /// A fan-out branch's future, after which its lent ends are dropped.
    fn release(&self, future: TokenStream) -> TokenStream {
        if self.users.is_empty() {
            return future;
        }
        let held = &self.held;
        quote_spanned!(self.site=> #held.release(#future))
    }
}

/// A fan-out branch's future, after which the ends it lent are dropped.
fn fan_out_lending(
    names: &Names,
    name: &syn::Ident,
    fan_out: &syn::ExprForLoop,
    mode: &Mode,
) -> TokenStream {
    names
        .ends
        .release(fan_out_future(names, name, fan_out, mode))
}

/// Whether `tokens` name `ident` anywhere, inside macro calls too.
fn mentions(tokens: &TokenStream, ident: &syn::Ident) -> bool {
    tokens.clone().into_iter().any(|tt| match tt {
        proc_macro2::TokenTree::Ident(i) => i == *ident,
        proc_macro2::TokenTree::Group(g) => mentions(&g.stream(), ident),
        _ => false,
    })
}

fn method(base: &str, supervise: bool, site: Span) -> syn::Ident {
    if supervise {
        format_ident!("{}_supervised", base, span = site)
    } else {
        format_ident!("{}", base, span = site)
    }
}

/// The `type Error = ..;` header, or `default`.
fn error_type(input: &Input, default: TokenStream) -> TokenStream {
    input
        .headers
        .iter()
        .find_map(|h| match &h.kind {
            HeaderKind::ErrorType(ty) => Some(quote!(#ty)),
            _ => None,
        })
        .unwrap_or(default)
}

/// `Config::new().timeout(..).limit(..)`, each value spanned on the user's
/// expression so a type mismatch points there.
fn config(input: &Input, rt: &TokenStream) -> TokenStream {
    let mut config = quote!(#rt::Config::new());
    for header in &input.headers {
        let (method, expr) = match &header.kind {
            HeaderKind::Timeout(e) => ("timeout", e),
            HeaderKind::Deadline(e) => ("deadline", e),
            HeaderKind::Parent(e) => ("parent", e),
            HeaderKind::Limit(e) => ("limit", e),
            HeaderKind::Grace(e) => ("grace", e),
            _ => continue,
        };
        let method = format_ident!("{}", method, span = expr.span());
        config = quote_spanned!(expr.span()=> #config.#method(#expr));
    }
    config
}

/// What a block with errors expands to: the errors, and a value whose type
/// fits wherever the block is used, so nothing else is reported.
pub(crate) fn fallback(input: &Input, errors: &syn::Error) -> TokenStream {
    let errors = errors.to_compile_error();
    let holes = input.branches.iter().map(|_| quote!(_));
    let error_type = error_type(input, quote!(::errgroup::__private::Infallible));
    // Header values still appear, in a closure that never runs, so names
    // the user imported for them are not reported unused on top of the error.
    let values = input.headers.iter().filter_map(|h| match &h.kind {
        HeaderKind::Timeout(e)
        | HeaderKind::Deadline(e)
        | HeaderKind::Parent(e)
        | HeaderKind::Limit(e)
        | HeaderKind::Grace(e) => Some(e),
        _ => None,
    });
    quote! {
        {
            #errors
            let _ = || (#(#values,)*);
            ::errgroup::__private::fallback::<(#(#holes,)*), #error_type>()
        }
    }
}
