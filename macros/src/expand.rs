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

    let grace = format_ident!("__errgroup_grace", span = site);
    let has_grace = input
        .headers
        .iter()
        .any(|h| matches!(h.kind, HeaderKind::Grace(_)));

    let mut setup = TokenStream::new();
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
        };
        let future = match &branch.body {
            Body::Expr(body) => {
                let future = single(&names, &branch.name, body, mode);
                let (ctx, name) = (&names.ctx, branch.name.to_string());
                setup.extend(quote_spanned!(site=> let #ctx = #scope.ctx(#name);));
                future
            }
            Body::For(fan_out) => fan_out_future(&names, &branch.name, fan_out, mode),
            Body::Broken => continue,
        };
        setup.extend(quote_spanned! {site=>
            let mut #fut = #rt::pin!(#rt::Option::Some(#future));
            let mut #slot = #rt::Slot::new();
        });
        polls.extend(quote_spanned! {site=>
            #pending |= #rt::poll_branch(#fut.as_mut(), &mut #slot, #cx);
        });
        // Blocking bodies cannot be stopped, so grace waits for them.
        if !mode.blocking {
            drops.extend(quote_spanned!(site=> #rt::drop_branch(#fut.as_mut(), &mut #slot);));
        }
        takes.extend(quote_spanned!(site=> #slot.take(),));
        somes.extend(quote_spanned!(site=> #rt::Option::Some(#value),));
        values.extend(quote_spanned!(site=> #value,));
    }

    let (grace_setup, grace_poll) = if has_grace {
        (
            quote_spanned!(site=> let mut #grace = #rt::pin!(#scope.grace());),
            quote_spanned! {site=>
                if #scope.poll_grace(#grace.as_mut(), #cx) {
                    #drops
                }
            },
        )
    } else {
        (TokenStream::new(), TokenStream::new())
    };

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
                #pending |= #scope.poll_tasks(#cx);
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

/// The generated names one branch uses.
struct Names<'a> {
    site: Span,
    scope: &'a syn::Ident,
    rt: &'a TokenStream,
    ctx: syn::Ident,
    item: syn::Ident,
    supervise: bool,
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
        quote_spanned! {body.span()=>
            #scope.#method(#ctx, move |#ctx: &::errgroup::Ctx| { #bind #body })
        }
    } else if mode.spawn {
        let method = method("spawn", names.supervise, site);
        let bind = names.bind_ctx(&quote_spanned!(site=> &#ctx));
        quote_spanned! {body.span()=>
            #scope.#method(#ctx.clone(), async move { #bind #body })
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
        quote_spanned! {body.span()=>
            #scope.#method(#ctx.clone(), async { #bind #body })
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
    if mode.blocking {
        let method = method("fan_out_blocking", names.supervise, site);
        let bind = names.bind_ctx(&quote_spanned!(site=> #ctx));
        quote_spanned! {block.span()=>
            #scope.#method(#name, #items, move |#item| {
                move |#ctx: &::errgroup::Ctx| {
                    #bind
                    let #pat = #item;
                    #(#stmts)*
                }
            })
        }
    } else if mode.spawn {
        let method = method("fan_out_spawn", names.supervise, site);
        let bind = names.bind_ctx(&quote_spanned!(site=> &#ctx));
        quote_spanned! {block.span()=>
            #scope.#method(#name, #items, move |#item, #ctx: ::errgroup::Ctx| async move {
                #bind
                let #pat = #item;
                #(#stmts)*
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
                async {
                    let #ctx = #ctx;
                    #bind
                    let #pat = #item.into_inner();
                    #(#stmts)*
                }
            })
        }
    }
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
