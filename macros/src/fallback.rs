//! Fallback: what a block with errors expands to. The errors, and a value
//! whose type fits wherever the block is used, so that the user sees the
//! mistakes and not a cascade of type errors.

use proc_macro2::{Span, TokenStream};
use quote::quote;

use crate::ast::Input;
use crate::expand::error_type;

/// The errors, then a stub of the block's type: one hole per branch the
/// user wrote, so a destructuring `let` still fits.
pub(crate) fn fallback(input: &Input, errors: &TokenStream) -> TokenStream {
    let holes = input.branches.iter().map(|_| quote!(_));
    let rt = input.config.krate().private(Span::call_site());
    let error_type = error_type(&input.config, quote!(#rt::Infallible));
    // Header values still appear, in a closure that never runs, so names
    // the user imported for them are not reported unused on top of the error.
    let config = &input.config;
    let mut values = [
        &config.timeout,
        &config.deadline,
        &config.parent,
        &config.limit,
        &config.grace,
        &config.shutdown_on,
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();
    values.sort_by_key(|setting| setting.order);
    let values = values.into_iter().map(|setting| &setting.value);
    quote! {
        {
            #errors
            let _ = || (#(#values,)*);
            #rt::fallback::<(#(#holes,)*), #error_type>()
        }
    }
}
