//! The macro never panics: malformed input of every shape becomes
//! `compile_error!`, and whatever it returns is one well-formed expression.

use std::panic::{self, AssertUnwindSafe};
use std::str::FromStr;

use proc_macro2::{Delimiter, Group, TokenStream, TokenTree};

use crate::errgroup_impl;

/// Runs the macro on `input`, failing the test (with the input) if it
/// panics or returns something that is not a single expression.
fn expand(input: &TokenStream) -> String {
    let output = panic::catch_unwind(AssertUnwindSafe(|| errgroup_impl(input.clone())))
        .unwrap_or_else(|_| panic!("errgroup! panicked on: {input}"));
    if let Err(e) = syn::parse2::<syn::Expr>(output.clone()) {
        panic!("errgroup! returned a non-expression ({e}) for: {input}\n{output}");
    }
    output.to_string()
}

fn tokens(source: &str) -> TokenStream {
    TokenStream::from_str(source).unwrap_or_else(|e| panic!("bad test input {source:?}: {e}"))
}

/// The errors the macro reports for `source`, or `None` if it expands.
fn errors(source: &str) -> Option<String> {
    let output = expand(&tokens(source));
    output.contains("compile_error").then_some(output)
}

fn assert_error(source: &str, message: &str) {
    match errors(source) {
        Some(output) => assert!(
            output.contains(message),
            "expected {message:?} for {source:?}, got: {output}"
        ),
        None => panic!("expected an error for {source:?}"),
    }
}

/// The macro bodies of `tests/ui/*.rs`, one per error, and a few more.
const INVALID: &[(&str, &str)] = &[
    ("", "has no branches"),
    ("limit = 2;", "has no branches"),
    (
        "page => fetch(a).await, page => fetch(b).await,",
        "is used twice",
    ),
    (
        "retries = 3; page => fetch(u).await,",
        "unknown header `retries`",
    ),
    (
        "timout = d; page => fetch(u).await,",
        "did you mean `timeout`?",
    ),
    (
        "a => fetch(a).await, limit = 1; b => fetch(b).await,",
        "comes after a branch",
    ),
    ("limit = 2; limit = 4; a => x.await,", "header is set twice"),
    (
        "timeout = d; deadline = i; page => x.await,",
        "both set the group's deadline",
    ),
    (
        "a => x.await, b: y.await,",
        "expected `=>` after the branch name `b`",
    ),
    (
        "a => x.await, b = y.await,",
        "expected `=>` after the branch name `b`, found `=`",
    ),
    (
        "a => x.await, b = y.await",
        "expected `=>` after the branch name `b`, found `=`",
    ),
    (
        "a => x.await b => y.await,",
        "expected `,` after the branch `a`",
    ),
    (
        "a => x.await; b => y.await,",
        "expected `,` after the branch `a`, found `;`",
    ),
    (
        "a => x y, b => z,",
        "expected `,` after the branch `a`, found `y`",
    ),
    (
        "timeout = d page => x.await,",
        "expected `;` after the `timeout` header",
    ),
    (
        "timeout = d, page => x.await,",
        "expected `;` after the `timeout` header, found `,`",
    ),
    (
        "limit = 2 3; page => x.await,",
        "expected `;` after the `limit` header, found `3`",
    ),
    (
        "type Err = anyhow::Error; n => Ok(1),",
        "expected `type Error`, found `type Err`",
    ),
    (
        "on_error = ignore; a => x.await,",
        "`on_error` takes only `continue`",
    ),
    (
        "on_error = continue 'outer; a => x.await,",
        "`on_error` takes only `continue`",
    ),
    (
        "limit = 0; a => x.await,",
        "`limit = 0` would never let a branch run",
    ),
    ("#[detach] page => x.await,", "unknown branch attribute"),
    ("#[spwan] page => x.await,", "did you mean `#[spawn]`?"),
    (
        "#[allow(dead_code)] page => x.await,",
        "unknown branch attribute",
    ),
    (
        "#[spawn] #[spawn] page => x.await,",
        "`#[spawn]` is given twice",
    ),
    (
        "#[allow(raw_channel)] #[allow(raw_channel)] page => x.await,",
        "`#[allow(raw_channel)]` is given twice",
    ),
    (
        "#[spawn] #[blocking] sum => checksum(&data),",
        "both `#[spawn]` and `#[blocking]`",
    ),
    (
        "#[blocking] #[spawn] sum => checksum(&data),",
        "both `#[spawn]` and `#[blocking]`",
    ),
    (
        "page => { let ctx = outer; fetch(ctx).await },",
        "this rebinds `ctx`",
    ),
    (
        "page => { let (ctx, n) = pair; fetch(ctx).await },",
        "this rebinds `ctx`",
    ),
    (
        "page => { let ctx: &Ctx = outer; fetch(ctx).await },",
        "this rebinds `ctx`",
    ),
    (
        "#[blocking] n => { let d = fetch(u).await?; Ok(d.len()) },",
        "cannot `.await`",
    ),
    (
        "a => Ok(fetch(u).await?), b => { let p = f().await?; Ok(p) },",
        "`type Error = anyhow::Error;`",
    ),
    ("n => Ok(1),", "error type of this group cannot be inferred"),
    (
        "#[blocking] sums => for n in xs { let v = f(n).await; Ok(v) },",
        "cannot `.await`",
    ),
    (
        "let tx = channel::<u64>(16); p => Ok(()),",
        "a pair of names",
    ),
    (
        "limit = 8; pages => for ctx in urls { fetch(&ctx).await },",
        "rebinds `ctx`",
    ),
    (
        "limit = 0; a => x.await, a => y.await, #[detach] c => z.await,",
        "is used twice",
    ),
    (
        "\"page\" => fetch(u).await,",
        "written without quotes: `page => expression,`",
    ),
    ("42 => fetch(u).await,", "expected a branch name"),
    ("match => fetch(u).await,", "expected a branch name"),
    ("a => ,", "expected an expression after `a =>`"),
    ("a =>", "expected an expression after `a =>`"),
    ("limit = ; a => x,", "expected a value after `limit =`"),
    (
        "type Error = ; a => x,",
        "expected a type after `type Error =`",
    ),
    ("a => x,, b => y,", "unexpected `,`"),
    ("; a => x,", "unexpected `;`"),
    ("#[spawn extra] a => x,", "unexpected token"),
    ("a => f(,), b => Ok::<_, E>(1),", "expected an expression"),
    (
        "type Error = E; a => { let (t, r) = tokio::sync::mpsc::channel::<u8>(8); Ok(()) },",
        "`tokio::sync::mpsc::channel` creates a raw channel",
    ),
    (
        "type Error = E; a => { use tokio::sync::mpsc as m; m::unbounded_channel::<u8>(); Ok(()) },",
        "`tokio::sync::mpsc::unbounded_channel` creates a raw channel",
    ),
    (
        "type Error = E; a => { use std::sync::mpsc::*; sync_channel::<u8>(1); Ok(()) },",
        "`std::sync::mpsc::sync_channel` creates a raw channel",
    ),
    (
        "type Error = E; a => { flume::bounded::<u8>(1); crossbeam::channel::unbounded::<u8>(); Ok(()) },",
        "`crossbeam::channel::unbounded` creates a raw channel",
    ),
    (
        "type Error = E; a => { tokio::spawn(f()); Ok(()) },",
        "`tokio::spawn` starts a detached task",
    ),
    (
        "type Error = E; #[allow(raw_channel)] a => { std::thread::spawn(|| 1); Ok(()) },",
        "`std::thread::spawn` starts a detached task",
    ),
    (
        "type Error = E; #[allow(detached_spawn)] a => { kanal::bounded_async::<u8>(1); Ok(()) },",
        "`kanal::bounded_async` creates a raw channel",
    ),
];

#[test]
fn every_ui_case_is_a_compile_error_with_its_message() {
    for (source, message) in INVALID {
        assert_error(source, message);
    }
}

#[test]
fn several_mistakes_are_reported_at_once() {
    let output = errors("limit = 0; a => x.await, a => y.await, #[detach] c => z.await,").unwrap();
    assert_eq!(output.matches("compile_error").count(), 3, "{output}");
}

#[test]
fn a_broken_type_header_silences_the_inference_rule() {
    let output = errors("type Error = anyhow:Error; a => Ok(1),").unwrap();
    assert!(!output.contains("cannot be inferred"), "{output}");
    let output = errors("type Err = anyhow::Error; a => Ok(1),").unwrap();
    assert!(!output.contains("cannot be inferred"), "{output}");
}

#[test]
fn the_stub_has_one_value_per_branch_written() {
    // `fallback::<(_, _, _,), ..>`: the arity the user destructures, even
    // when a branch did not parse.
    for source in [
        "a => x.await, b: y.await, c => z.await,",
        "a => x.await b => y.await, c => z.await,",
        "a => x.await, b = y.await, c => z.await,",
        "a => x.await, \"b\" => y.await, c => z.await,",
        "timeout = d a => x.await, b => y.await, c => z.await,",
    ] {
        let output = errors(source).unwrap_or_else(|| panic!("no error for {source:?}"));
        assert!(
            output.contains("(_ , _ , _ ,)"),
            "{source:?} gave: {output}"
        );
    }
}

/// Inputs the macro must accept, so the error paths are not hiding a
/// parser that rejects everything.
const VALID: &[&str] = &[
    "a => Ok::<_, anyhow::Error>(1),",
    "a => x.await",
    "type Error = anyhow::Error; a => Ok(1), b => Ok(2)",
    "timeout = Duration::from_secs(1); limit = 2; a => f(&ctx).await, b => g(&ctx).await,",
    "on_error = continue; type Error = E; #[spawn] a => Ok(1), #[blocking] b => Ok(2),",
    "#[allow(raw_channel)] #[allow(detached_spawn)] a => x.await,",
    "a => Ok::<_, E>(1), b => Ok::<_, E>(2),",
    "a => { let c = &ctx; f(c).await },",
    "type Error = E; a => { tx.send(1).await?; Ok(()) }, b => { while let Some(x) = rx.recv().await { f(x); } Ok(()) },",
    "type Error = E; a => match m { Some(r) => r.recv().await, None => Ok(0) },",
    "type Error = E; a => { let v: Vec<_> = rxs.iter().map(|r| r.try_recv()).collect(); Ok(v) },",
    "type Error = E; a => { mpsc::channel::<u8>(8); oneshot::channel::<u8>(); Ok(()) },",
    "type Error = E; a => { let channel = |n| n; Ok(channel(1)) },",
    "type Error = E; a => { self::mpsc::channel(1); crate::flume::bounded(1); Ok(()) },",
    "type Error = E; #[allow(raw_channel)] #[allow(detached_spawn)] a => { tokio::spawn(f()); tokio::sync::mpsc::channel::<u8>(1); Ok(()) },",
    "type Error = E; a => { tokio::select! { _ = tokio::spawn(f()) => {} } Ok(()) },",
    "type Error = E; a => state.lock().await.tx.send(1).await,",
    "type Error = E; items => for rx in rxs { rx.recv().await; Ok(()) },",
];

#[test]
fn valid_blocks_expand_without_errors() {
    for source in VALID {
        assert!(errors(source).is_none(), "unexpected error for {source:?}");
    }
}

/// Every cut of `stream`: each prefix of its token trees, and each prefix
/// with its last group cut inside, recursively.
fn truncations(stream: &TokenStream) -> Vec<TokenStream> {
    let trees: Vec<TokenTree> = stream.clone().into_iter().collect();
    let mut out = Vec::new();
    for i in 0..=trees.len() {
        out.push(trees[..i].iter().cloned().collect());
        if let Some(TokenTree::Group(g)) = trees.get(i) {
            for inner in truncations(&g.stream()) {
                let mut cut: Vec<TokenTree> = trees[..i].to_vec();
                cut.push(TokenTree::Group(Group::new(g.delimiter(), inner)));
                out.push(cut.into_iter().collect());
            }
        }
    }
    out
}

#[test]
fn truncated_inputs_never_panic() {
    let sources = INVALID.iter().map(|(s, _)| *s).chain(VALID.iter().copied());
    let mut cuts = 0;
    for source in sources {
        for cut in truncations(&tokens(source)) {
            expand(&cut);
            cuts += 1;
        }
    }
    assert!(cuts > 500, "only {cuts} truncations");
}

/// Tokens to build junk from: separators, keywords, and pieces of the
/// grammar in the wrong places.
const JUNK: &[&str] = &[
    "a",
    "b",
    "ctx",
    "=>",
    "=",
    ",",
    ";",
    "#",
    "!",
    "[spawn]",
    "[blocking]",
    "[allow(raw_channel)]",
    "[allow()]",
    "type",
    "Error",
    "let",
    "for",
    "in",
    "x",
    "{}",
    "()",
    "[]",
    "Ok(1)",
    "Err(e)",
    "limit",
    "0",
    "timeout",
    "deadline",
    "parent",
    "on_error",
    "continue",
    "grace",
    "channel(1)",
    ".await",
    ".",
    "await",
    "async",
    "move",
    "|x|",
    "?",
    "::",
    "<",
    ">",
    "'a",
    "\"s\"",
    "-",
    "_",
    "{ let ctx = 1; }",
    "{ x.await }",
    "match",
    "r#type",
    "1.5",
    "b'x'",
    "..",
    "...",
    "@",
    "$",
];

/// A fixed xorshift generator: the same junk on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % n as u64).unwrap()
    }
}

#[test]
fn random_junk_never_panics_and_is_mostly_rejected() {
    let mut rng = Rng(0x5eed_e770_9e0b_c0de);
    let mut rejected = 0;
    let runs = 5000;
    for _ in 0..runs {
        let len = rng.below(16);
        let source: Vec<&str> = (0..len).map(|_| JUNK[rng.below(JUNK.len())]).collect();
        if errors(&source.join(" ")).is_some() {
            rejected += 1;
        }
    }
    assert!(
        rejected > runs * 9 / 10,
        "only {rejected} of {runs} junk inputs rejected"
    );
}

/// Tokens as a `macro_rules!` forwarding `$e:expr` delivers them: wrapped in
/// invisible groups.
fn invisible(source: &str) -> TokenTree {
    TokenTree::Group(Group::new(Delimiter::None, tokens(source)))
}

#[test]
fn invisible_groups_from_macro_rules_are_handled() {
    let mut stream = tokens("a =>");
    stream.extend([invisible("fetch(u).await")]);
    stream.extend(tokens(", limit ="));
    stream.extend([invisible("0")]);
    stream.extend(tokens(";"));
    let output = expand(&stream);
    assert!(output.contains("comes after a branch"), "{output}");
    for cut in truncations(&stream) {
        expand(&cut);
    }
    let mut junk = TokenStream::new();
    for source in JUNK {
        junk.extend([invisible(source)]);
    }
    expand(&junk);
}
