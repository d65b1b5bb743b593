//! The `errgroup!` macro. Use it through the `errgroup` crate, which documents
//! it and provides the runtime its expansion calls.
//!
//! Three stages, and one error collector (`Errors`, in `errors.rs`) they all
//! write to, so one build reports every mistake:
//!
//! - **parse** (`parse.rs`): the block into the typed tree of `ast.rs`.
//!   Attributes are read once, by `attr.rs`, into each branch; headers are
//!   set into a `Config` that keeps their spans. Each header, branch and
//!   attribute is held to the rules of `valid.rs` as it is read, so the
//!   errors come out in source order.
//! - **check**: `valid.rs`'s rules on branch bodies and on the block as a
//!   whole; and `lints.rs`, the raw-channel and detached-spawn checks,
//!   which rewrite the bodies.
//! - **expand** (`expand.rs`): the tree into calls on `::errgroup::__private`
//!   (or the `crate = ..;` header's path), each branch shaped by its mode
//!   (`mode.rs`); on an error, `fallback.rs` instead: the errors plus a
//!   stub value, so a user sees the mistakes, not a cascade.

#![forbid(unsafe_code)]

mod ast;
mod attr;
mod errors;
mod expand;
mod fallback;
mod lints;
mod mode;
mod never_ok;
mod parse;
mod quick;
#[cfg(test)]
mod tests;
mod valid;

use proc_macro::TokenStream;

/// Runs a block of named branches concurrently, cancelling all on the first
/// error. Documented in the `errgroup` crate.
#[proc_macro]
pub fn errgroup(input: TokenStream) -> TokenStream {
    errgroup_impl(input.into()).into()
}

fn errgroup_impl(input: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    let mut errors = errors::Errors::default();
    let mut input = parse::parse(input, &mut errors);
    valid::check(&input, &mut errors);
    let imports = lints::lint(&mut input, &mut errors);
    if errors.fatal() {
        return fallback::fallback(&input, &errors.to_compile_error());
    }
    let expansion = expand::expand(&input, imports.as_ref());
    if errors.is_empty() {
        return expansion;
    }
    // Lint errors beside the full expansion, whose type probes report the
    // rest of the lint errors in the same build.
    let lints = errors.to_compile_error();
    quote::quote!({ #lints #expansion })
}
