//! The `errgroup!` macro. Use it through the `errgroup` crate, which documents
//! it and provides the runtime its expansion calls.
//!
//! Three stages, one module each: `parse` the block, `check` the usage
//! rules (collecting every violation), `expand` into `::errgroup::__private`
//! calls. On any error the expansion is the errors plus a stub value, so a
//! user sees the mistakes, not a cascade.

#![forbid(unsafe_code)]

mod check;
mod expand;
mod lints;
mod parse;
#[cfg(test)]
mod tests;

use proc_macro::TokenStream;

/// Runs a block of named branches concurrently, cancelling all on the first
/// error. Documented in the `errgroup` crate.
#[proc_macro]
pub fn errgroup(input: TokenStream) -> TokenStream {
    errgroup_impl(input.into()).into()
}

fn errgroup_impl(input: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    let mut input: parse::Input = match syn::parse2(input) {
        Ok(input) => input,
        Err(e) => return e.into_compile_error(),
    };
    let mut errors = check::Errors::default();
    for e in &input.errors {
        errors.push(e.clone());
    }
    let checked = check::check(&input, &mut errors);
    let lints = lints::lint(&mut input);
    match (errors.finish(), lints) {
        (None, None) => expand::expand(&input, &checked),
        // Lint errors beside the full expansion, whose type probes report
        // the rest of the lint errors in the same build.
        (None, Some(lints)) => {
            let (lints, expansion) = (lints.into_compile_error(), expand::expand(&input, &checked));
            quote::quote!({ #lints #expansion })
        }
        (Some(mut errors), lints) => {
            errors.extend(lints);
            expand::fallback(&input, &errors)
        }
    }
}
