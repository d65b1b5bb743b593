//! Parse: the `errgroup!` input into the typed tree of `ast.rs`, attributes
//! read by `attr.rs` and headers set into the `Config` as they come.
//!
//! Parsing recovers: a broken header or branch is recorded and skipped up to
//! its `;` or `,`, so one build reports every mistake in the block. A branch
//! that cannot be parsed is still kept, as [`Body::Broken`], so the stub value
//! the block evaluates to on error has the arity the user destructures.
//!
//! Each header and branch is parsed from its own token buffer
//! ([`parse_scoped`]): a syntax error inside a delimited group then stays
//! with that item instead of failing the whole block with one bare
//! "unexpected token", and an item cut short by the end of the block is
//! reported at the block's last token.

use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use syn::buffer::Cursor;
use syn::parse::{Parse, ParseStream, Parser};
use syn::{Attribute, Expr, Ident, Lit, Pat, Token, Type};

use crate::ast::{Attrs, Body, Branch, Channel, Header, Input, Key};
use crate::attr;
use crate::errors::{Errors, closest};
use crate::quick;
use crate::valid;

/// One header (and where its key is written) or branch.
enum Item {
    Header(Span, Header),
    Branch(Branch),
}

/// Parses the block into `errors` and the tree of what did parse.
pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> Input {
    let Some(items) = parse_at_once(&tokens) else {
        let end = end_span(&tokens);
        return parse_each(tokens, end, errors);
    };
    let mut parsed = Input::default();
    for item in items {
        add(&mut parsed, item, errors);
    }
    parsed
}

/// Validates `item` against the items before it, and adds it.
fn add(parsed: &mut Input, item: Item, errors: &mut Errors) {
    match item {
        Item::Header(key, header) => {
            let after_branch = !parsed.branches.is_empty();
            valid::header(&parsed.config, key, &header, after_branch, errors);
            parsed.config.set(key, header);
        }
        Item::Branch(branch) => {
            valid::branch_name(parsed, &branch, errors);
            parsed.branches.push(branch);
        }
    }
}

/// The items of a block without a syntax error, parsed from one token
/// buffer; `None` at the first error, which [`parse_each`] then reports.
/// A block without errors parses the same either way, an item's parse
/// reading only its own tokens and those after it; this way builds the
/// buffer once, instead of once per item over every token left (a cost
/// in every build of every block, as a dev profile builds the macro
/// unoptimized).
///
/// The block's end is spanned at the call site here: only an error would
/// carry it, and a block with one is parsed again by [`parse_each`], which
/// finds the end (reading every token of the block once more).
fn parse_at_once(tokens: &TokenStream) -> Option<Vec<Item>> {
    let mut scratch = Errors::default();
    let mut items = Vec::new();
    let mut broken = false;
    let parser = |stream: ParseStream| {
        while !stream.is_empty() {
            let start = stream.cursor();
            match parse_item(stream, &mut scratch) {
                Some(item) if scratch.is_empty() && stream.cursor() != start => items.push(item),
                _ => {
                    broken = true;
                    break;
                }
            }
        }
        Ok(())
    };
    let parsed = parse_scoped(parser, Span::call_site(), tokens.clone());
    (parsed.is_ok() && !broken && scratch.is_empty()).then_some(items)
}

/// Parses the block into `errors` and the tree of what did parse, each
/// item from its own token buffer (see the module docs).
fn parse_each(tokens: TokenStream, end: Span, errors: &mut Errors) -> Input {
    let mut parsed = Input::default();
    let mut rest = tokens;
    while !rest.is_empty() {
        let rest_len = rest.clone().into_iter().count();
        let mut item = None;
        let mut next = TokenStream::new();
        let parser = |stream: ParseStream| {
            item = parse_item(stream, errors);
            next = stream.parse::<TokenStream>()?;
            Ok(())
        };
        // Only an "unexpected token" left inside a delimited group can
        // get here; the item itself is kept.
        if let Err(e) = parse_scoped(parser, end, rest) {
            errors.push(syn::Error::new(e.span(), format!("{e}\nhelp: remove it")));
        }
        if let Some(item) = item {
            add(&mut parsed, item, errors);
        }
        // Every item consumes a token; this only guards against a bug
        // turning into a hang.
        if next.clone().into_iter().count() >= rest_len {
            break;
        }
        rest = next;
    }
    parsed
}

/// The span of the block's last token (its closing delimiter, for a group):
/// where an input that stops too early is reported.
fn end_span(stream: &TokenStream) -> Span {
    match stream.clone().into_iter().last() {
        Some(TokenTree::Group(g)) if g.delimiter() != Delimiter::None => g.span_close(),
        Some(tt) => tt.span(),
        None => Span::call_site(),
    }
}

/// [`Parser::parse2`], except that an input ending too early ("unexpected
/// end of input, expected ..") is reported at `end` instead of the call site,
/// which would underline the whole `errgroup!` invocation. syn reports it at
/// the closing delimiter of the macro whose body it parses, so the tokens are
/// parsed as the body of a macro whose delimiter is spanned at `end`.
fn parse_scoped<P: Parser>(parser: P, end: Span, tokens: TokenStream) -> syn::Result<P::Output> {
    let body = syn::Macro {
        path: Ident::new("errgroup", end).into(),
        bang_token: Token![!](end),
        delimiter: syn::MacroDelimiter::Brace(syn::token::Brace(end)),
        tokens,
    };
    body.parse_body_with(parser)
}

/// Parses one item and the `;` or `,` after it, recording every error and
/// skipping past the broken part. Always consumes at least one token.
fn parse_item(input: ParseStream, errors: &mut Errors) -> Option<Item> {
    if input.peek(Token![,]) || input.peek(Token![;]) {
        let stray = next_token_text(input);
        errors.push(input.error(format!(
            "unexpected `{stray}`\nhelp: remove it; headers end with one `;`, branches with one `,`"
        )));
        skip_token(input);
        return None;
    }
    if starts_header(input) {
        match parse_header(input, errors) {
            Ok(item) => item,
            Err(e) => {
                errors.push(e);
                skip_item(input);
                None
            }
        }
    } else {
        Some(Item::Branch(parse_branch(input, errors)))
    }
}

/// `type`, `let`, `crate =`, or `key =` (but not `name =>`).
fn starts_header(input: ParseStream) -> bool {
    (input.peek(Token![type]) && !input.peek2(Token![=>]))
        || (input.peek(Token![let]) && !input.peek2(Token![=>]))
        || (input.peek(Token![crate]) && input.peek2(Token![=]) && !input.peek2(Token![=>]))
        || (input.peek(Ident) && input.peek2(Token![=]) && !input.peek2(Token![=>]))
}

/// What a new header or branch begins with, to resync after a missing
/// separator without skipping it.
fn starts_item(input: ParseStream) -> bool {
    input.peek(Token![#])
        || input.peek(Token![type])
        || input.peek(Token![let])
        || (input.peek(Token![crate]) && input.peek2(Token![=]))
        || (input.peek(Ident) && (input.peek2(Token![=>]) || input.peek2(Token![=])))
}

fn parse_header(input: ParseStream, errors: &mut Errors) -> syn::Result<Option<Item>> {
    if input.peek(Token![type]) {
        let kw: Token![type] = input.parse()?;
        let name: Ident = input.parse()?;
        if name != "Error" {
            errors.push(syn::Error::new_spanned(
                quote::quote!(#kw #name),
                format!(
                    "expected `type Error`, found `type {name}`\n\
                     help: the one type a group declares is its error type: `type Error = ..;`"
                ),
            ));
        }
        input.parse::<Token![=]>()?;
        let (ty, end) = parse_value::<Type>(input, Slot::Header(Key::ErrorType))?;
        end_header(input, Key::ErrorType.name(), end, errors);
        return Ok(Some(Item::Header(kw.span, Header::ErrorType(ty))));
    }
    if input.peek(Token![let]) {
        let kw: Token![let] = input.parse()?;
        let pat = Pat::parse_single(input)?;
        input.parse::<Token![=]>()?;
        let (value, end) = parse_value::<Expr>(input, Slot::Header(Key::Channel))?;
        end_header(input, Key::Channel.name(), end, errors);
        let ends = channel_ends(&pat).map_err(|e| errors.push(e));
        let constructor = channel_constructor(&value).map_err(|e| errors.push(e));
        return Ok(match (ends, constructor) {
            (Ok((tx, rx)), Ok((constructor, item, capacity))) => Some(Item::Header(
                kw.span,
                Header::Channel(Box::new(Channel {
                    tx,
                    rx,
                    constructor,
                    item,
                    capacity,
                })),
            )),
            _ => None,
        });
    }
    if input.peek(Token![crate]) {
        let kw: Token![crate] = input.parse()?;
        input.parse::<Token![=]>()?;
        let (value, end) = parse_value::<Expr>(input, Slot::Header(Key::Crate))?;
        end_header(input, Key::Crate.name(), end, errors);
        return Ok(crate_path(value)
            .map_err(|e| errors.push(e))
            .ok()
            .map(|path| Item::Header(kw.span, Header::Crate(path))));
    }
    let key: Ident = input.parse()?;
    let eq: Token![=] = input.parse()?;
    let Some(known) = Key::named(&key) else {
        return unknown_header(input, key, eq, errors);
    };
    let (value, end) = parse_value::<Expr>(input, Slot::Header(known))?;
    let header = match known {
        Key::Timeout => Some(Header::Timeout(value)),
        Key::Deadline => Some(Header::Deadline(value)),
        Key::Parent => Some(Header::Parent(value)),
        Key::Limit => Some(Header::Limit(value)),
        Key::Grace => Some(Header::Grace(value)),
        Key::ShutdownOn => Some(Header::ShutdownOn(value)),
        Key::OnError => {
            if matches!(value, Expr::Continue(ref c) if c.label.is_none()) {
                Some(Header::OnErrorContinue)
            } else {
                errors.push(syn::Error::new_spanned(
                    &value,
                    "`on_error` takes only `continue`\n\
                     help: write `on_error = continue;` to let the other branches run on after an error, \
                     or leave it out to cancel them on the first error",
                ));
                None
            }
        }
        Key::Crate | Key::ErrorType | Key::Channel => None,
    };
    end_header(input, known.name(), end, errors);
    Ok(header.map(|header| Item::Header(key.span(), header)))
}

/// `key = value` with a key the macro does not know: a branch written with
/// `=` for `=>` when a `,` or the end follows, else a misspelled header.
fn unknown_header(
    input: ParseStream,
    key: Ident,
    eq: Token![=],
    errors: &mut Errors,
) -> syn::Result<Option<Item>> {
    let name = key.to_string();
    let (_, end) = parse_value::<Expr>(input, Slot::Unknown(&key))?;
    if input.is_empty() || input.peek(Token![,]) {
        errors.push(syn::Error::new(
            eq.spans[0],
            format!(
                "expected `=>` after the branch name `{name}`, found `=`\n\
                 help: a branch is written `{name} => expression,`"
            ),
        ));
        skip_token(input);
        return Ok(Some(Item::Branch(Branch {
            attrs: Attrs::default(),
            name: key,
            body: Body::Broken,
        })));
    }
    let names = Key::NAMED.map(Key::name);
    let help = match closest(&name, &names) {
        Some(key) => format!("did you mean `{key}`?"),
        None => format!(
            "the headers are {}, `crate`, `type Error` and `let (tx, rx) = channel(..)`",
            names.map(|k| format!("`{k}`")).join(", ")
        ),
    };
    errors.push(syn::Error::new(
        key.span(),
        format!("unknown header `{name}`\nhelp: {help}"),
    ));
    // Only the resync: a missing `;` after an unknown header is not worth a
    // second error.
    let _ = resync_header(input, &name, end);
    Ok(None)
}

/// The value of `crate = path;`: a plain path (`::eg`, `crate::errgroup`).
fn crate_path(value: Expr) -> syn::Result<syn::Path> {
    match value {
        Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => Ok(path.path),
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        }) if s.parse::<syn::Path>().is_ok() => Err(syn::Error::new(
            s.span(),
            format!(
                "expected the path of the `errgroup` crate, found a string\n\
                 help: write the path without quotes: `crate = {};`",
                s.value()
            ),
        )),
        other => Err(syn::Error::new_spanned(
            other,
            format!(
                "expected the path of the `errgroup` crate\nhelp: write it like {}",
                Key::Crate.example()
            ),
        )),
    }
}

/// The `(tx, rx)` of a channel header.
fn channel_ends(pat: &Pat) -> syn::Result<(Ident, Ident)> {
    let plain = |p: &Pat| match p {
        Pat::Ident(i) if i.by_ref.is_none() && i.mutability.is_none() && i.subpat.is_none() => {
            Some(i.ident.clone())
        }
        _ => None,
    };
    if let Pat::Tuple(tuple) = pat {
        if tuple.elems.len() == 2 {
            if let (Some(tx), Some(rx)) = (plain(&tuple.elems[0]), plain(&tuple.elems[1])) {
                if tx == rx {
                    return Err(syn::Error::new(
                        rx.span(),
                        format!(
                            "the channel's sender and receiver are both named `{rx}`\n\
                             help: give them two names: `let (tx, rx) = channel(16);`"
                        ),
                    ));
                }
                return Ok((tx, rx));
            }
        }
    }
    Err(syn::Error::new_spanned(
        pat,
        "a channel header binds a sender and a receiver, as a pair of names\n\
         help: write it like `let (tx, rx) = channel(16);`",
    ))
}

/// `channel(cap)`, `channel::<T>(cap)`, `unbounded()`, `unbounded::<T>()`:
/// the constructor, the item type and the capacity.
fn channel_constructor(value: &Expr) -> syn::Result<(Ident, Option<Type>, Option<Expr>)> {
    let help = "a channel header is `let (tx, rx) = channel(capacity);` or `let (tx, rx) = unbounded();`, \
                with an optional item type: `channel::<T>(capacity)`";
    let wrong = |tokens: &dyn quote::ToTokens, what: &str| {
        syn::Error::new_spanned(tokens, format!("{what}\nhelp: {help}"))
    };
    let Expr::Call(call) = value else {
        return Err(wrong(value, "expected `channel(..)` or `unbounded()`"));
    };
    let Expr::Path(path) = &*call.func else {
        return Err(wrong(&call.func, "expected `channel` or `unbounded`"));
    };
    let segment = match path.path.segments.last() {
        Some(s)
            if path.qself.is_none()
                && path.path.leading_colon.is_none()
                && path.path.segments.len() == 1 =>
        {
            s
        }
        _ => return Err(wrong(&call.func, "expected `channel` or `unbounded`")),
    };
    let constructor = segment.ident.clone();
    let item = match &segment.arguments {
        syn::PathArguments::None => None,
        syn::PathArguments::AngleBracketed(args) if args.args.len() == 1 => match &args.args[0] {
            syn::GenericArgument::Type(ty) => Some(ty.clone()),
            other => return Err(wrong(other, "expected the channel's item type")),
        },
        other => return Err(wrong(other, "expected one item type: `::<T>`")),
    };
    // Spanned on the arguments, or on the empty `()` when there are none
    // (empty tokens have no span of their own).
    let wrong_args = |what: &str| {
        if call.args.is_empty() {
            syn::Error::new(
                call.paren_token.span.join(),
                format!("{what}\nhelp: {help}"),
            )
        } else {
            wrong(&call.args, what)
        }
    };
    let args: Vec<&Expr> = call.args.iter().collect();
    let capacity = match (constructor.to_string().as_str(), args.as_slice()) {
        ("channel", [capacity]) => Some((*capacity).clone()),
        ("channel", _) => {
            return Err(wrong_args("`channel` takes one argument, the capacity"));
        }
        ("unbounded", []) => None,
        ("unbounded", _) => {
            return Err(wrong_args("`unbounded` takes no argument"));
        }
        (name, _) => {
            return Err(wrong(
                &constructor,
                &format!("expected `channel` or `unbounded`, found `{name}`"),
            ));
        }
    };
    Ok((constructor, item, capacity))
}

/// What a missing value would have followed, for its message.
#[derive(Clone, Copy)]
enum Slot<'a> {
    Header(Key),
    /// A header the macro does not know.
    Unknown(&'a Ident),
    /// A branch's body.
    Branch(&'a Ident),
}

/// A header's value or a branch's body, and the span of its last token.
fn parse_value<T: Parse>(input: ParseStream, slot: Slot) -> syn::Result<(T, Span)> {
    if input.is_empty() || input.peek(Token![;]) || input.peek(Token![,]) {
        let message = match slot {
            Slot::Header(key) => format!(
                "expected {} after `{}`\nhelp: write it like {}",
                if key == Key::ErrorType {
                    "a type"
                } else {
                    "a value"
                },
                key.before_value(),
                key.example()
            ),
            Slot::Unknown(key) => {
                format!("expected a value after `{key} =`\nhelp: write it like `{key} = value;`")
            }
            Slot::Branch(name) => format!(
                "expected an expression after `{name} =>`\nhelp: write it like `{name} => expression,`"
            ),
        };
        return Err(input.error(message));
    }
    let start = input.cursor();
    let value = input.parse()?;
    Ok((value, last_span(start, input.cursor())))
}

/// Consumes the `;` that ends a header, or records its absence at `value`
/// (the end of the header, where the `;` goes) and resyncs.
fn end_header(input: ParseStream, name: &str, value: Span, errors: &mut Errors) {
    if let Some(error) = resync_header(input, name, value) {
        errors.push(error);
    }
}

/// Consumes the `;` that ends a header or skips to where the next item
/// starts, and returns the error for a missing `;`.
fn resync_header(input: ParseStream, name: &str, value: Span) -> Option<syn::Error> {
    let help = "help: a header ends with `;`, a branch with `,`";
    if input.peek(Token![;]) {
        skip_token(input);
        None
    } else if input.peek(Token![,]) {
        let error = input.error(format!(
            "expected `;` after the `{name}` header, found `,`\n{help}"
        ));
        skip_token(input);
        Some(error)
    } else if input.is_empty() || starts_item(input) {
        Some(syn::Error::new(
            value,
            format!("expected `;` after the `{name}` header\n{help}"),
        ))
    } else {
        let found = next_token_text(input);
        let error = input.error(format!(
            "expected `;` after the `{name}` header, found `{found}`\n{help}"
        ));
        skip_item(input);
        Some(error)
    }
}

/// Parses one branch. A branch that does not parse is recorded, skipped,
/// and returned with a [`Body::Broken`] body.
fn parse_branch(input: ParseStream, errors: &mut Errors) -> Branch {
    let mut branch = Branch {
        attrs: Attrs::default(),
        name: Ident::new("__errgroup_broken", Span::call_site()),
        body: Body::Broken,
    };
    if let Err(e) = parse_branch_into(input, &mut branch, errors) {
        errors.push(e);
        branch.body = Body::Broken;
        skip_item(input);
    }
    branch
}

fn parse_branch_into(
    input: ParseStream,
    branch: &mut Branch,
    errors: &mut Errors,
) -> syn::Result<()> {
    let attrs = Attribute::parse_outer(input)?;
    branch.attrs = attr::read(&attrs, errors);
    if !input.peek(Ident) {
        let help = match input.cursor().literal() {
            Some((lit, _)) => match Lit::new(lit) {
                Lit::Str(s) if syn::parse_str::<Ident>(&s.value()).is_ok() => format!(
                    "a branch name is an identifier, written without quotes: `{} => expression,`",
                    s.value()
                ),
                _ => "a branch is written `name => expression,` with an identifier as the name"
                    .to_owned(),
            },
            None => "a branch is written `name => expression,` with an identifier as the name"
                .to_owned(),
        };
        return Err(input.error(format!("expected a branch name\nhelp: {help}")));
    }
    branch.name = input.parse()?;
    let name = &branch.name;
    if !input.peek(Token![=>]) {
        return Err(input.error(format!(
            "expected `=>` after the branch name `{name}`\nhelp: a branch is written `{name} => expression,`"
        )));
    }
    input.parse::<Token![=>]>()?;
    let (body, end) = match quick_body(input) {
        Some(parsed) => parsed,
        None => parse_value::<Expr>(input, Slot::Branch(name))?,
    };
    branch.body = match body {
        Expr::ForLoop(fan_out) => Body::For(fan_out),
        expr => Body::Expr(expr),
    };
    end_branch(input, &branch.name, end, errors);
    Ok(())
}

/// A branch's body read by `quick.rs`, and the span of its last token;
/// `None` (nothing consumed) when its shape is left to syn.
fn quick_body(input: ParseStream) -> Option<(Expr, Span)> {
    let start = input.cursor();
    #[cfg(test)]
    let by_syn = input.fork();
    let mut body = None;
    let _ = input.step(|cursor| match quick::body(*cursor) {
        Some((expr, rest)) => {
            body = Some(expr);
            Ok(((), rest))
        }
        None => Err(cursor.error("")),
    });
    let body = body?;
    // Every body read here is read the same by syn: tree, spans, end.
    #[cfg(test)]
    {
        use quote::ToTokens;
        let expected: Expr = by_syn.parse().expect("syn reads what quick.rs reads");
        assert!(expected == body, "{}", body.to_token_stream());
        let spans = |e: &Expr| format!("{:?}", e.to_token_stream());
        assert_eq!(spans(&expected), spans(&body));
        assert!(
            by_syn.cursor() == input.cursor(),
            "{}",
            body.to_token_stream()
        );
    }
    Some((body, last_span(start, input.cursor())))
}

/// Consumes the `,` after a branch, or records its absence at `body` (the
/// end of the branch, where the `,` goes) and resyncs.
fn end_branch(input: ParseStream, name: &Ident, body: Span, errors: &mut Errors) {
    if input.is_empty() {
        return;
    }
    if input.peek(Token![,]) {
        skip_token(input);
    } else if input.peek(Token![;]) {
        errors.push(input.error(format!(
            "expected `,` after the branch `{name}`, found `;`\nhelp: a branch ends with `,`, a header with `;`"
        )));
        skip_token(input);
    } else if starts_item(input) {
        errors.push(syn::Error::new(
            body,
            format!("expected `,` after the branch `{name}`\nhelp: separate branches with `,`"),
        ));
    } else {
        let found = next_token_text(input);
        errors.push(input.error(format!(
            "expected `,` after the branch `{name}`, found `{found}`\nhelp: separate branches with `,`"
        )));
        skip_item(input);
    }
}

/// The span of the last token between two cursors (of its closing
/// delimiter, for a group): where a missing separator belongs. Read from
/// the input, because a group re-printed from a syntax tree has lost the
/// span of its closing delimiter.
fn last_span(start: Cursor, end: Cursor) -> Span {
    let mut last = Span::call_site();
    let mut cursor = start;
    while cursor < end {
        let Some((tt, next)) = cursor.token_tree() else {
            break;
        };
        last = match tt {
            TokenTree::Group(g) if g.delimiter() != Delimiter::None => g.span_close(),
            tt => tt.span(),
        };
        cursor = next;
    }
    last
}

fn next_token_text(input: ParseStream) -> String {
    match input.cursor().token_tree() {
        Some((TokenTree::Group(g), _)) => match g.delimiter() {
            Delimiter::Parenthesis => "(".to_owned(),
            Delimiter::Brace => "{".to_owned(),
            Delimiter::Bracket => "[".to_owned(),
            Delimiter::None => g.stream().to_string(),
        },
        Some((tt, _)) => tt.to_string(),
        None => String::new(),
    }
}

/// Skips one token tree.
fn skip_token(input: ParseStream) {
    let _ = input.step(|cursor| match cursor.token_tree() {
        Some((_, rest)) => Ok(((), rest)),
        None => Ok(((), *cursor)),
    });
}

/// Skips token trees up to and including the next top-level `;` or `,`.
fn skip_item(input: ParseStream) {
    let _ = input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tt, next)) = rest.token_tree() {
            rest = next;
            if matches!(&tt, TokenTree::Punct(p) if p.as_char() == ';' || p.as_char() == ',') {
                break;
            }
        }
        Ok(((), rest))
    });
}
