//! The one error collector every stage writes to.

use proc_macro2::{Span, TokenStream};

/// Every error of one block, in the order found (source order within each
/// stage), combined into one `syn::Error` that expands to a
/// `compile_error!` per message.
#[derive(Default)]
pub(crate) struct Errors {
    all: Option<syn::Error>,
    /// Whether an error stops the expansion. Only lint errors do not: the
    /// block still expands, so the type probes of the same build report
    /// the rest of the lint errors.
    fatal: bool,
}

impl Errors {
    /// An error that leaves the block unexpanded (the fallback stub stands
    /// in for it).
    pub(crate) fn push(&mut self, error: syn::Error) {
        self.fatal = true;
        self.add(error);
    }

    pub(crate) fn at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    /// A lint error: reported beside the full expansion.
    pub(crate) fn lint(&mut self, error: syn::Error) {
        self.add(error);
    }

    fn add(&mut self, error: syn::Error) {
        match &mut self.all {
            Some(all) => all.combine(error),
            None => self.all = Some(error),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.all.is_none()
    }

    /// Whether the block must not be expanded.
    pub(crate) fn fatal(&self) -> bool {
        self.fatal
    }

    /// One `compile_error!` per message (nothing when there are none).
    pub(crate) fn to_compile_error(&self) -> TokenStream {
        self.all
            .as_ref()
            .map(syn::Error::to_compile_error)
            .unwrap_or_default()
    }
}
