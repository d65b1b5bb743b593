//! The one error collector every stage writes to, and the "did you mean"
//! its messages suggest for a misspelled name.

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

/// The candidate closest to `word`, if it is a plausible typo of it.
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.min(c.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance: edits, counting a swap of two
/// neighbouring letters (`spwan`) as one.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}
