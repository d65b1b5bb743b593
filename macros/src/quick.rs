//! A parser for the plain shapes most branch bodies are written in:
//! blocks of `let name = value;` and expression statements, and the
//! expressions in them made of paths, literals, calls, method calls,
//! fields, indexes, `.await`, `?`, parentheses, tuples, blocks, `& * ! -`
//! and the arithmetic, comparison and `&&`/`||` operators.
//!
//! It builds the tree syn's parser builds from the same tokens, or gives
//! up (`None`) at the first token outside these shapes, and syn's parser
//! then reads the body as before: its errors, and the shapes read here
//! differently by a rule of syn's, are all syn's. It exists for its cost:
//! in a dev profile the macro is built unoptimized, and syn's expression
//! parser, which tries each keyword at each token (comparing each against
//! an identifier turned into a `String`), was a third of the macro's run.
//! The unit tests check every body the corpus parses here against syn's
//! tree and spans.

use proc_macro2::extra::DelimSpan;
use proc_macro2::{Delimiter, Ident, Literal, Punct, Spacing, Span};
use syn::buffer::Cursor;
use syn::punctuated::Punctuated;
use syn::{BinOp, Block, Expr, Local, LocalInit, Pat, PatIdent, Stmt, UnOp, token};

/// What a parse made and the cursor after it; `None`: outside the shapes.
type Parsed<'a, T> = Option<(T, Cursor<'a>)>;

/// A branch's body: an expression, followed by the `,` that ends the
/// branch or by the end of the block.
pub(crate) fn body(cursor: Cursor) -> Parsed<Expr> {
    let (expr, rest) = expr(cursor)?;
    (rest.eof() || punct_is(rest, ',')).then_some((expr, rest))
}

/// One token, as the parser tells them apart.
enum Token<'a> {
    Ident(Ident),
    Punct(Punct),
    Literal(Literal),
    /// A delimited group: what is inside it, and its delimiters' spans.
    Group(Delimiter, Cursor<'a>, DelimSpan),
}

/// The next token, or `None` at the end of the scope and where syn reads
/// the token by a rule of its own: an invisible (`None`-delimited) group,
/// a lifetime, a keyword or a raw identifier.
fn token(cursor: Cursor) -> Parsed<Token> {
    if cursor.eof() {
        return None;
    }
    if let Some((inside, delimiter, span, rest)) = cursor.any_group() {
        return (delimiter != Delimiter::None)
            .then_some((Token::Group(delimiter, inside, span), rest));
    }
    if let Some((ident, rest)) = cursor.ident() {
        let name = ident.to_string();
        return (!reserved(&name)).then_some((Token::Ident(ident), rest));
    }
    if let Some((punct, rest)) = cursor.punct() {
        return Some((Token::Punct(punct), rest));
    }
    let (literal, rest) = cursor.literal()?;
    Some((Token::Literal(literal), rest))
}

/// Keywords, reserved words and contextual keywords, which syn reads by
/// rules of their own (and `r#` identifiers, left to syn too). By length
/// first: a check per identifier, the macro unoptimized in a dev profile.
fn reserved(name: &str) -> bool {
    #[rustfmt::skip]
    let words: &[&str] = match name.len() {
        1 => &["_"],
        2 => &["as", "do", "fn", "if", "in"],
        3 => &["box", "dyn", "for", "gen", "let", "mod", "mut", "pub", "raw", "ref", "try",
               "use"],
        4 => &["auto", "else", "enum", "impl", "loop", "move", "priv", "safe", "self", "Self",
               "true", "type"],
        5 => &["async", "await", "break", "const", "crate", "false", "final", "macro", "match",
               "super", "trait", "union", "where", "while", "yield"],
        6 => &["become", "extern", "return", "static", "struct", "typeof", "unsafe"],
        7 => &["builtin", "default", "unsized", "virtual"],
        8 => &["abstract", "continue", "override"],
        11 => &["macro_rules"],
        _ => &[],
    };
    name.starts_with("r#") || words.contains(&name)
}

/// Whether the next token is the keyword `word` (which [`token`] refuses).
fn keyword<'a>(cursor: Cursor<'a>, word: &str) -> Option<(Span, Cursor<'a>)> {
    if cursor.any_group().is_some() {
        return None;
    }
    let (ident, rest) = cursor.ident()?;
    (ident == word).then(|| (ident.span(), rest))
}

fn punct_is(cursor: Cursor, ch: char) -> bool {
    cursor.any_group().is_none() && cursor.punct().is_some_and(|(p, _)| p.as_char() == ch)
}

/// `,`, `;` or `?`, which begin no operator of more than one character:
/// written before another (`f(a,-1)`, `x?;`), they are joint to it.
fn separator(cursor: Cursor, ch: char) -> Option<(Span, Cursor)> {
    if cursor.any_group().is_some() {
        return None;
    }
    let (punct, rest) = cursor.punct()?;
    (punct.as_char() == ch).then(|| (punct.span(), rest))
}

/// The next token as a punctuation character, alone (not the first of a
/// multi-character operator).
fn alone(cursor: Cursor, ch: char) -> Option<(Span, Cursor)> {
    if cursor.any_group().is_some() {
        return None;
    }
    let (punct, rest) = cursor.punct()?;
    (punct.as_char() == ch && punct.spacing() == Spacing::Alone).then(|| (punct.span(), rest))
}

/// An expression, as `Expr::parse` reads it.
fn expr(cursor: Cursor) -> Parsed<Expr> {
    let (lhs, rest) = unary(cursor)?;
    binary(lhs, rest, Precedence::Min)
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Precedence {
    Min,
    Or,
    And,
    Compare,
    Sum,
    Product,
}

impl Precedence {
    fn of(op: &BinOp) -> Self {
        match op {
            BinOp::Or(_) => Precedence::Or,
            BinOp::And(_) => Precedence::And,
            BinOp::Eq(_)
            | BinOp::Ne(_)
            | BinOp::Lt(_)
            | BinOp::Le(_)
            | BinOp::Gt(_)
            | BinOp::Ge(_) => Precedence::Compare,
            BinOp::Add(_) | BinOp::Sub(_) => Precedence::Sum,
            _ => Precedence::Product,
        }
    }
}

/// The binary operator next, if it is one of the shapes'; `None` before
/// anything else (the caller then checks what ends the expression).
fn operator(cursor: Cursor) -> Option<(BinOp, Cursor)> {
    if cursor.any_group().is_some() {
        return None;
    }
    let (first, rest) = cursor.punct()?;
    let span = first.span();
    if first.spacing() == Spacing::Joint {
        if rest.any_group().is_some() {
            return None;
        }
        let (second, after) = rest.punct()?;
        let spans = [span, second.span()];
        let op = match (first.as_char(), second.as_char()) {
            ('&', '&') => BinOp::And(token::AndAnd { spans }),
            ('|', '|') => BinOp::Or(token::OrOr { spans }),
            ('=', '=') => BinOp::Eq(token::EqEq { spans }),
            ('!', '=') => BinOp::Ne(token::Ne { spans }),
            ('<', '=') => BinOp::Le(token::Le { spans }),
            ('>', '=') => BinOp::Ge(token::Ge { spans }),
            _ => return None,
        };
        return Some((op, after));
    }
    let spans = [span];
    let op = match first.as_char() {
        '+' => BinOp::Add(token::Plus { spans }),
        '-' => BinOp::Sub(token::Minus { spans }),
        '*' => BinOp::Mul(token::Star { spans }),
        '/' => BinOp::Div(token::Slash { spans }),
        '%' => BinOp::Rem(token::Percent { spans }),
        '<' => BinOp::Lt(token::Lt { spans }),
        '>' => BinOp::Gt(token::Gt { spans }),
        _ => return None,
    };
    Some((op, rest))
}

/// syn's `parse_expr`: operators of at least `base`'s precedence.
fn binary(mut lhs: Expr, mut cursor: Cursor, base: Precedence) -> Parsed<Expr> {
    while let Some((op, rest)) = operator(cursor) {
        let precedence = Precedence::of(&op);
        if precedence < base {
            break;
        }
        // syn rejects `a < b < c`.
        if precedence == Precedence::Compare
            && matches!(&lhs, Expr::Binary(left) if Precedence::of(&left.op) == Precedence::Compare)
        {
            return None;
        }
        let (right, after) = right(rest, precedence)?;
        lhs = Expr::Binary(syn::ExprBinary {
            attrs: Vec::new(),
            left: Box::new(lhs),
            op,
            right: Box::new(right),
        });
        cursor = after;
    }
    Some((lhs, cursor))
}

/// syn's `parse_binop_rhs`.
fn right(cursor: Cursor, precedence: Precedence) -> Parsed<Expr> {
    let (mut rhs, mut cursor) = unary(cursor)?;
    loop {
        let next = precedence_after(cursor);
        if next <= precedence {
            break;
        }
        (rhs, cursor) = binary(rhs, cursor, next)?;
    }
    Some((rhs, cursor))
}

/// syn's `peek_precedence`, for the operators of the shapes.
fn precedence_after(cursor: Cursor) -> Precedence {
    operator(cursor).map_or(Precedence::Min, |(op, _)| Precedence::of(&op))
}

/// `&x`, `&mut x`, `*x`, `!x`, `-x`, or a postfix expression.
fn unary(cursor: Cursor) -> Parsed<Expr> {
    if let Some((span, rest)) = alone(cursor, '&') {
        let (mutability, rest) = match keyword(rest, "mut") {
            Some((span, rest)) => (Some(token::Mut { span }), rest),
            None => (None, rest),
        };
        let (expr, rest) = unary(rest)?;
        let reference = syn::ExprReference {
            attrs: Vec::new(),
            and_token: token::And { spans: [span] },
            mutability,
            expr: Box::new(expr),
        };
        return Some((Expr::Reference(reference), rest));
    }
    for ch in ['*', '!', '-'] {
        if let Some((span, rest)) = alone(cursor, ch) {
            let spans = [span];
            let op = match ch {
                '*' => UnOp::Deref(token::Star { spans }),
                '!' => UnOp::Not(token::Not { spans }),
                _ => UnOp::Neg(token::Minus { spans }),
            };
            let (expr, rest) = unary(rest)?;
            let unary = syn::ExprUnary {
                attrs: Vec::new(),
                op,
                expr: Box::new(expr),
            };
            return Some((Expr::Unary(unary), rest));
        }
    }
    let (atom, rest) = atom(cursor)?;
    postfix(atom, rest)
}

/// Calls, method calls, fields, indexes, `.await`s and `?`s after `e`.
fn postfix(mut e: Expr, mut cursor: Cursor) -> Parsed<Expr> {
    loop {
        let group = cursor.any_group();
        if let Some((inside, Delimiter::Parenthesis, span, rest)) = group {
            let call = syn::ExprCall {
                attrs: Vec::new(),
                func: Box::new(e),
                paren_token: token::Paren { span },
                args: arguments(inside)?,
            };
            (e, cursor) = (Expr::Call(call), rest);
        } else if let Some((inside, Delimiter::Bracket, span, rest)) = group {
            let (index, end) = expr(inside)?;
            if !end.eof() {
                return None;
            }
            let index = syn::ExprIndex {
                attrs: Vec::new(),
                expr: Box::new(e),
                bracket_token: token::Bracket { span },
                index: Box::new(index),
            };
            (e, cursor) = (Expr::Index(index), rest);
        } else if let Some((span, rest)) = alone(cursor, '.') {
            let dot_token = token::Dot { spans: [span] };
            if let Some((span, rest)) = keyword(rest, "await") {
                let awaited = syn::ExprAwait {
                    attrs: Vec::new(),
                    base: Box::new(e),
                    dot_token,
                    await_token: token::Await { span },
                };
                (e, cursor) = (Expr::Await(awaited), rest);
                continue;
            }
            let (Token::Ident(member), rest) = token(rest)? else {
                return None;
            };
            if punct_is(rest, ':') {
                return None;
            }
            if let Some((inside, Delimiter::Parenthesis, span, after)) = rest.any_group() {
                let call = syn::ExprMethodCall {
                    attrs: Vec::new(),
                    receiver: Box::new(e),
                    dot_token,
                    method: member,
                    turbofish: None,
                    paren_token: token::Paren { span },
                    args: arguments(inside)?,
                };
                (e, cursor) = (Expr::MethodCall(call), after);
            } else {
                let field = syn::ExprField {
                    attrs: Vec::new(),
                    base: Box::new(e),
                    dot_token,
                    member: syn::Member::Named(member),
                };
                (e, cursor) = (Expr::Field(field), rest);
            }
        } else if let Some((span, rest)) = separator(cursor, '?') {
            let tried = syn::ExprTry {
                attrs: Vec::new(),
                expr: Box::new(e),
                question_token: token::Question { spans: [span] },
            };
            (e, cursor) = (Expr::Try(tried), rest);
        } else {
            return Some((e, cursor));
        }
    }
}

/// A call's arguments: expressions separated by `,`, with an optional
/// trailing one.
fn arguments(mut cursor: Cursor) -> Option<Punctuated<Expr, token::Comma>> {
    let mut args = Punctuated::new();
    while !cursor.eof() {
        let (arg, rest) = expr(cursor)?;
        args.push_value(arg);
        if rest.eof() {
            break;
        }
        let (span, rest) = separator(rest, ',')?;
        args.push_punct(token::Comma { spans: [span] });
        cursor = rest;
    }
    Some(args)
}

/// A literal, a path, a parenthesized expression or a tuple, or a block.
fn atom(cursor: Cursor) -> Parsed<Expr> {
    match token(cursor)? {
        (Token::Literal(literal), rest) => {
            // `1.0.max(x)`, `1.e`: read by syn's rules for floats.
            if punct_is(rest, '.') {
                return None;
            }
            let lit = syn::ExprLit {
                attrs: Vec::new(),
                lit: syn::Lit::new(literal),
            };
            Some((Expr::Lit(lit), rest))
        }
        (Token::Ident(ident), rest) => path(None, ident, rest),
        (Token::Punct(punct), _) if punct.as_char() == ':' => {
            let (sep, rest) = path_sep(cursor)?;
            let (Token::Ident(ident), rest) = token(rest)? else {
                return None;
            };
            path(Some(sep), ident, rest)
        }
        (Token::Group(Delimiter::Parenthesis, inside, span), rest) => {
            Some((parenthesized(inside, token::Paren { span })?, rest))
        }
        (Token::Group(Delimiter::Brace, inside, span), rest) => {
            // A block is followed by what ends the expression, or read by
            // syn (`{ x }.await`, `{ x } + 1`).
            if !(rest.eof() || punct_is(rest, ',') || punct_is(rest, ';')) {
                return None;
            }
            let block = syn::ExprBlock {
                attrs: Vec::new(),
                label: None,
                block: Block {
                    brace_token: token::Brace { span },
                    stmts: statements(inside)?,
                },
            };
            Some((Expr::Block(block), rest))
        }
        _ => None,
    }
}

/// `a::b::c` or `::a::b`, without generic arguments, from its first
/// identifier on; not a macro call (`a!(..)`) nor a struct literal (`A {
/// .. }`).
fn path(leading_colon: Option<token::PathSep>, first: Ident, mut cursor: Cursor) -> Parsed<Expr> {
    let mut segments = Punctuated::new();
    segments.push_value(syn::PathSegment::from(first));
    while let Some((sep, rest)) = path_sep(cursor) {
        segments.push_punct(sep);
        let (Token::Ident(ident), rest) = token(rest)? else {
            return None;
        };
        segments.push_value(syn::PathSegment::from(ident));
        cursor = rest;
    }
    match cursor.any_group() {
        Some((_, Delimiter::Brace | Delimiter::None, _, _)) => return None,
        Some(_) => {}
        None => {
            if let Some((punct, rest)) = cursor.punct() {
                let not_equal = punct.spacing() == Spacing::Joint && punct_is(rest, '=');
                if punct.as_char() == ':' || (punct.as_char() == '!' && !not_equal) {
                    return None;
                }
            }
        }
    }
    let path = syn::ExprPath {
        attrs: Vec::new(),
        qself: None,
        path: syn::Path {
            leading_colon,
            segments,
        },
    };
    Some((Expr::Path(path), cursor))
}

/// `::`.
fn path_sep(cursor: Cursor) -> Option<(token::PathSep, Cursor)> {
    if cursor.any_group().is_some() {
        return None;
    }
    let (first, rest) = cursor.punct()?;
    if first.as_char() != ':' || first.spacing() != Spacing::Joint || rest.any_group().is_some() {
        return None;
    }
    let (second, rest) = rest.punct()?;
    (second.as_char() == ':').then(|| {
        let spans = [first.span(), second.span()];
        (token::PathSep { spans }, rest)
    })
}

/// `()`, `(x)`, `(x,)`, `(x, y)`.
fn parenthesized(inside: Cursor, paren_token: token::Paren) -> Option<Expr> {
    if inside.eof() {
        return Some(Expr::Tuple(syn::ExprTuple {
            attrs: Vec::new(),
            paren_token,
            elems: Punctuated::new(),
        }));
    }
    let (first, mut cursor) = expr(inside)?;
    if cursor.eof() {
        return Some(Expr::Paren(syn::ExprParen {
            attrs: Vec::new(),
            paren_token,
            expr: Box::new(first),
        }));
    }
    let mut elems = Punctuated::new();
    elems.push_value(first);
    while !cursor.eof() {
        let (span, rest) = separator(cursor, ',')?;
        elems.push_punct(token::Comma { spans: [span] });
        if rest.eof() {
            break;
        }
        let (value, rest) = expr(rest)?;
        elems.push_value(value);
        cursor = rest;
    }
    Some(Expr::Tuple(syn::ExprTuple {
        attrs: Vec::new(),
        paren_token,
        elems,
    }))
}

/// A block's statements: `let name = value;`, `let mut name = value;`,
/// `let name;`, and expressions, each but the last ended by `;`.
fn statements(mut cursor: Cursor) -> Option<Vec<Stmt>> {
    let mut stmts = Vec::new();
    while !cursor.eof() {
        if let Some((let_span, rest)) = keyword(cursor, "let") {
            let (local, rest) = local(let_span, rest)?;
            stmts.push(Stmt::Local(local));
            cursor = rest;
            continue;
        }
        // A block (or an empty statement) first in a statement is read
        // by rules of its own.
        if cursor
            .any_group()
            .is_some_and(|(_, delimiter, _, _)| delimiter == Delimiter::Brace)
            || punct_is(cursor, ';')
        {
            return None;
        }
        let (expr, rest) = expr(cursor)?;
        if rest.eof() {
            stmts.push(Stmt::Expr(expr, None));
            break;
        }
        let (span, rest) = separator(rest, ';')?;
        stmts.push(Stmt::Expr(expr, Some(token::Semi { spans: [span] })));
        cursor = rest;
    }
    Some(stmts)
}

/// The rest of `let [mut] name [= value];`.
fn local(let_span: Span, cursor: Cursor) -> Parsed<Local> {
    let (mutability, cursor) = match keyword(cursor, "mut") {
        Some((span, rest)) => (Some(token::Mut { span }), rest),
        None => (None, cursor),
    };
    let (Token::Ident(ident), cursor) = token(cursor)? else {
        return None;
    };
    let pat = Pat::Ident(PatIdent {
        attrs: Vec::new(),
        by_ref: None,
        mutability,
        ident,
        subpat: None,
    });
    let (init, cursor) = match alone(cursor, '=') {
        Some((span, rest)) => {
            let (value, rest) = expr(rest)?;
            let init = LocalInit {
                eq_token: token::Eq { spans: [span] },
                expr: Box::new(value),
                diverge: None,
            };
            (Some(init), rest)
        }
        None => (None, cursor),
    };
    let (span, rest) = separator(cursor, ';')?;
    let local = Local {
        attrs: Vec::new(),
        let_token: token::Let { span: let_span },
        modifiers: syn::LocalModifiers::default(),
        pat,
        init,
        semi_token: token::Semi { spans: [span] },
    };
    Some((local, rest))
}
