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

use crate::check::Checked;
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

    let mut setup = TokenStream::new();
    let mut polls = TokenStream::new();
    let mut takes = TokenStream::new();
    let mut somes = TokenStream::new();
    let mut values = TokenStream::new();
    for (i, (branch, mode)) in input.branches.iter().zip(&checked.modes).enumerate() {
        let Body::Expr(body) = &branch.body else {
            continue;
        };
        let ctx = format_ident!("__errgroup_ctx{}", i, span = site);
        let fut = format_ident!("__errgroup_branch{}", i, span = site);
        let slot = format_ident!("__errgroup_slot{}", i, span = site);
        let value = format_ident!("__errgroup_value{}", i, span = site);
        let name = branch.name.to_string();
        let user_ctx = quote_spanned!(Span::call_site()=> ctx);
        let bind_ctx = quote_spanned! {site=>
            #[allow(unused_variables)]
            let #user_ctx: &::errgroup::Ctx = &#ctx;
        };
        let future = if mode.blocking {
            let method = method("blocking", checked.supervise, site);
            quote_spanned! {body.span()=>
                #scope.#method(#ctx, move |#ctx: &::errgroup::Ctx| {
                    #[allow(unused_variables)]
                    let #user_ctx: &::errgroup::Ctx = #ctx;
                    #body
                })
            }
        } else if mode.spawn {
            let method = method("spawn", checked.supervise, site);
            quote_spanned! {body.span()=>
                #scope.#method(#ctx.clone(), async move { #bind_ctx #body })
            }
        } else {
            let method = if checked.supervise {
                "supervised"
            } else {
                "branch"
            };
            let method = format_ident!("{}", method, span = site);
            quote_spanned! {body.span()=>
                #scope.#method(#ctx.clone(), async { #bind_ctx #body })
            }
        };
        setup.extend(quote_spanned! {site=>
            let #ctx = #scope.ctx(#name);
            let mut #fut = #rt::pin!(#future);
            let mut #slot = #rt::Slot::new();
        });
        polls.extend(quote_spanned! {site=>
            #pending |= #rt::poll_branch(#fut.as_mut(), &mut #slot, #cx);
        });
        takes.extend(quote_spanned!(site=> #slot.take(),));
        somes.extend(quote_spanned!(site=> #rt::Option::Some(#value),));
        values.extend(quote_spanned!(site=> #value,));
    }

    quote_spanned! {site=>
        {
            let #scope = #rt::Scope::<#error_type>::new(#config);
            #setup
            let mut #timer = #rt::pin!(#scope.timer());
            #rt::poll_fn(|#cx| {
                #scope.poll_timer(#timer.as_mut(), #cx);
                let mut #pending = false;
                #polls
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
