//! Parse: the `errgroup!` input into borrowed-free syntax structs.
//!
//! Parsing recovers: a broken header or branch is recorded and skipped up to
//! its `;` or `,`, so one build reports every mistake in the block.

use proc_macro2::{Span, TokenTree};
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Expr, ExprForLoop, Ident, Pat, Token, Type};

/// The whole block.
pub(crate) struct Input {
    pub(crate) headers: Vec<Header>,
    pub(crate) branches: Vec<Branch>,
    /// Syntax errors, already spanned.
    pub(crate) errors: Vec<syn::Error>,
}

pub(crate) struct Header {
    /// The key's span, where errors about the header point.
    pub(crate) key: Span,
    pub(crate) kind: HeaderKind,
    /// Written after the first branch (a usage error).
    pub(crate) after_branch: bool,
}

pub(crate) enum HeaderKind {
    Timeout(Expr),
    Deadline(Expr),
    Parent(Expr),
    Limit(Expr),
    Grace,
    ErrorType(Type),
    OnErrorContinue,
    Channel,
}

impl HeaderKind {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            HeaderKind::Timeout(_) => "timeout",
            HeaderKind::Deadline(_) => "deadline",
            HeaderKind::Parent(_) => "parent",
            HeaderKind::Limit(_) => "limit",
            HeaderKind::Grace => "grace",
            HeaderKind::ErrorType(_) => "type Error",
            HeaderKind::OnErrorContinue => "on_error",
            HeaderKind::Channel => "let",
        }
    }
}

pub(crate) const HEADER_KEYS: &str =
    "`timeout`, `deadline`, `parent`, `limit`, `grace`, `on_error`, `type Error` and `let .. = channel(..)`";

pub(crate) struct Branch {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) name: Ident,
    pub(crate) body: Body,
}

pub(crate) enum Body {
    Expr(Expr),
    For(ExprForLoop),
}

impl Parse for Input {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut parsed = Input {
            headers: Vec::new(),
            branches: Vec::new(),
            errors: Vec::new(),
        };
        while !input.is_empty() {
            if starts_header(input) {
                match parse_header(input) {
                    Ok(mut header) => {
                        header.after_branch = !parsed.branches.is_empty();
                        parsed.headers.push(header);
                    }
                    Err(e) => {
                        parsed.errors.push(e);
                        skip_past(input, ';');
                    }
                }
            } else {
                match parse_branch(input) {
                    Ok(branch) => {
                        parsed.branches.push(branch);
                        if let Err(e) = parse_separator(input, parsed.branches.last()) {
                            parsed.errors.push(e);
                            skip_past(input, ',');
                        }
                    }
                    Err(e) => {
                        parsed.errors.push(e);
                        skip_past(input, ',');
                    }
                }
            }
        }
        Ok(parsed)
    }
}

/// `type`, `let`, or `key =` (but not `name =>`).
fn starts_header(input: ParseStream) -> bool {
    input.peek(Token![type])
        || input.peek(Token![let])
        || (input.peek(Ident) && input.peek2(Token![=]) && !input.peek2(Token![=>]))
}

fn parse_header(input: ParseStream) -> syn::Result<Header> {
    if input.peek(Token![type]) {
        let kw: Token![type] = input.parse()?;
        let name: Ident = input.parse()?;
        if name != "Error" {
            return Err(syn::Error::new(
                name.span(),
                format!("expected `Error`, found `{name}`: the only type a group declares is `type Error = ..;`"),
            ));
        }
        input.parse::<Token![=]>()?;
        let ty: Type = input.parse()?;
        end_header(input, "type Error")?;
        return Ok(Header {
            key: kw.span,
            kind: HeaderKind::ErrorType(ty),
            after_branch: false,
        });
    }
    if input.peek(Token![let]) {
        let kw: Token![let] = input.parse()?;
        Pat::parse_single(input)?;
        input.parse::<Token![=]>()?;
        input.parse::<Expr>()?;
        end_header(input, "let")?;
        return Ok(Header {
            key: kw.span,
            kind: HeaderKind::Channel,
            after_branch: false,
        });
    }
    let key: Ident = input.parse()?;
    input.parse::<Token![=]>()?;
    let name = key.to_string();
    let kind = match name.as_str() {
        "timeout" => HeaderKind::Timeout(input.parse()?),
        "deadline" => HeaderKind::Deadline(input.parse()?),
        "parent" => HeaderKind::Parent(input.parse()?),
        "limit" => HeaderKind::Limit(input.parse()?),
        "grace" => {
            input.parse::<Expr>()?;
            HeaderKind::Grace
        }
        "on_error" => {
            if !input.peek(Token![continue]) {
                return Err(input.error(
                    "expected `continue`: `on_error = continue;` is the only mode besides the default, which cancels on the first error",
                ));
            }
            input.parse::<Token![continue]>()?;
            HeaderKind::OnErrorContinue
        }
        _ => {
            return Err(syn::Error::new(
                key.span(),
                format!(
                    "unknown header `{name}`\n\
                     help: the headers are {HEADER_KEYS}; a branch is written `{name} => expression,`"
                ),
            ));
        }
    };
    end_header(input, &name)?;
    Ok(Header {
        key: key.span(),
        kind,
        after_branch: false,
    })
}

fn end_header(input: ParseStream, name: &str) -> syn::Result<()> {
    if input.peek(Token![;]) {
        input.parse::<Token![;]>()?;
        Ok(())
    } else {
        Err(input.error(format!("expected `;` after the `{name}` header")))
    }
}

fn parse_branch(input: ParseStream) -> syn::Result<Branch> {
    let attrs = Attribute::parse_outer(input)?;
    let name: Ident = input.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected a branch name\nhelp: a branch is written `name => expression,`",
        )
    })?;
    if !input.peek(Token![=>]) {
        return Err(input.error(format!(
            "expected `=>` after the branch name `{name}`\nhelp: a branch is written `{name} => expression,`"
        )));
    }
    input.parse::<Token![=>]>()?;
    let body = match input.parse::<Expr>()? {
        Expr::ForLoop(fan_out) => Body::For(fan_out),
        expr => Body::Expr(expr),
    };
    Ok(Branch { attrs, name, body })
}

fn parse_separator(input: ParseStream, branch: Option<&Branch>) -> syn::Result<()> {
    if input.is_empty() {
        return Ok(());
    }
    if input.peek(Token![,]) {
        input.parse::<Token![,]>()?;
        return Ok(());
    }
    let name = branch.map_or_else(String::new, |b| format!(" `{}`", b.name));
    Err(input.error(format!("expected `,` after the body of branch{name}")))
}

/// Skips token trees up to and including the next top-level `stop` punct.
fn skip_past(input: ParseStream, stop: char) {
    let _ = input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tt, next)) = rest.token_tree() {
            rest = next;
            if matches!(&tt, TokenTree::Punct(p) if p.as_char() == stop) {
                break;
            }
        }
        Ok(((), rest))
    });
}
