//! The macro never panics: malformed input of every shape becomes
//! `compile_error!`, and whatever it returns is one well-formed expression.

use std::panic::{self, AssertUnwindSafe};
use std::str::FromStr;

use proc_macro2::{Delimiter, Group, TokenStream, TokenTree};

use crate::errgroup_impl;

/// Runs the macro on `input`, failing the test (with the input) if it
/// panics, returns something that is not a single expression, or reports
/// an error at the call site ([`run_macro`]).
fn expand(input: &TokenStream) -> String {
    run_macro(input, &|| "this input".to_owned()).0.to_string()
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
    ("#[spawn(clone())] a => x.await,", "`clone()` names nothing"),
    ("#[blocking()] a => x,", "empty options"),
    (
        "#[spawn(clone(self.db))] a => x.await,",
        "takes the names of local variables",
    ),
    (
        "#[spawn(clone(db, db))] a => x.await,",
        "`db` is cloned twice",
    ),
    (
        "#[spawn(clone(a), clone(b))] a => x.await,",
        "`clone(..)` is given twice",
    ),
    (
        "#[spawn(clon(db))] a => x.await,",
        "did you mean `clone(..)`?",
    ),
    (
        "#[blocking(copy(db))] a => x,",
        "unknown option of `#[blocking]`",
    ),
    ("#[spawn(clone = db)] a => x.await,", "write it as a list"),
    (
        "#[spawn(clone(ctx))] a => x.await,",
        "`ctx` is the branch's own",
    ),
    ("#[spawn(clone(db,,))] a => x.await,", "expected a name"),
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
        "type Error = E; a => { let (t, r) = ::tokio::sync::mpsc::channel::<u8>(8); Ok(()) },",
        "`tokio::sync::mpsc::channel` creates a raw channel",
    ),
    (
        "type Error = E; a => { ::std::sync::mpsc::sync_channel::<u8>(1); Ok(()) },",
        "`std::sync::mpsc::sync_channel` creates a raw channel",
    ),
    (
        "type Error = E; a => { flume::bounded::<u8>(1); ::crossbeam::channel::unbounded::<u8>(); Ok(()) },",
        "`crossbeam::channel::unbounded` creates a raw channel",
    ),
    (
        "type Error = E; a => { ::tokio::spawn(f()); Ok(()) },",
        "`tokio::spawn` starts a detached task",
    ),
    (
        "type Error = E; #[allow(raw_channel)] a => { ::std::thread::spawn(|| 1); Ok(()) },",
        "`std::thread::spawn` starts a detached task",
    ),
    (
        "type Error = E; #[allow(detached_spawn)] a => { ::kanal::bounded_async::<u8>(1); Ok(()) },",
        "`kanal::bounded_async` creates a raw channel",
    ),
    (
        "type Error = E; a => { tokio::join!(async { ::flume::unbounded::<u8>() }, f()); Ok(()) },",
        "`flume::unbounded` creates a raw channel",
    ),
    (
        "type Error = E; a => { tokio::select! { _ = f() => { ::tokio::spawn(g()); } else => {} } Ok(()) },",
        "`tokio::spawn` starts a detached task",
    ),
    (
        "type Error = E; a => { let v = vec![::tokio::sync::oneshot::channel::<u8>(); 2]; Ok(()) },",
        "`tokio::sync::oneshot::channel` creates a raw channel",
    ),
    (
        "crate = \"eg\"; a => x.await,",
        "write the path without quotes: `crate = eg;`",
    ),
    (
        "crate = eg(); a => x.await,",
        "expected the path of the `errgroup` crate",
    ),
    (
        "crate = eg; crate = eg; a => x.await,",
        "the `crate` header is set twice",
    ),
    (
        "crate = ; a => x.await,",
        "expected a value after `crate =`",
    ),
    (
        "crate = eg a => x.await,",
        "expected `;` after the `crate` header",
    ),
    (
        "shutdown_on = ; a => x.await,",
        "expected a value after `shutdown_on =`",
    ),
    (
        "shutdown_on = a; shutdown_on = b; x => y.await,",
        "the `shutdown_on` header is set twice",
    ),
    (
        "a => x.await, shutdown_on = s; b => y.await,",
        "the `shutdown_on` header comes after a branch",
    ),
    (
        "let (tx, rx) = channel(0); a => x.await,",
        "needs room for at least one item",
    ),
    (
        "let (tx, rx) = channel::<u8>(0); a => x.await,",
        "use `channel(1)`",
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
    // The error type may be fixed outside the block; where it is not,
    // rustc's E0282 points at a branch's `Ok`.
    "a => Ok(1), b => Ok(2),",
    "n => Ok(fetch(u).await?),",
    "a => Ok(fetch(u).await?), b => { let p = f().await?; Ok(p) },",
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
    "type Error = E; a => { use tokio::sync::mpsc as m; m::unbounded_channel::<u8>(); tokio::sync::mpsc::channel::<u8>(1); Ok(()) },",
    "type Error = E; a => { use std::sync::mpsc::*; sync_channel::<u8>(1); channel::<u8>(); tokio::spawn(f()); Ok(()) },",
    "type Error = E; a => { make_tx().send(1).await?; self.txs[i].send(1).await?; get_rx().await.recv().await; Ok(()) },",
    "type Error = E; a => { tokio::select! { biased; Some(v) = rx.recv(), if ok => tx.send(v).await?, else => {} } Ok(()) },",
    "type Error = E; a => { futures::select! { v = rx.next() => {}, default => {}, complete => break } Ok(()) },",
    "type Error = E; a => { assert!(rx.try_recv().is_err(), \"{}\", tx.send(1).is_ok()); let v = vec![rx.try_recv(); 2]; Ok(()) },",
    "type Error = E; a => { stringify!(rx.recv()); my_dsl!(<rx> recv); Ok(()) },",
    "type Error = E; items => for rx in rxs { rx.recv().await; Ok(()) },",
    "crate = eg; a => Ok::<_, E>(1),",
    "crate = ::my::errgroup; a => { tx.send(1).await?; Ok::<_, E>(1) },",
    "crate = crate::errgroup; #[spawn] a => Ok::<_, E>(1), #[blocking] b => Ok::<_, E>(2),",
    "shutdown_on = tokio::signal::ctrl_c(); a => Ok::<_, E>(1),",
    "#[spawn(clone(db, cfg))] a => Ok(db.get(&cfg)), #[blocking(clone(db,))] b => Ok(db.len()),",
    "#[spawn(clone(db),)] a => for i in xs { Ok(db.get(i)) }, #[blocking(clone(db))] b => for i in xs { Ok(i) },",
];

#[test]
fn valid_blocks_expand_without_errors() {
    for source in VALID {
        assert!(errors(source).is_none(), "unexpected error for {source:?}");
    }
}

/// How many type checks the expansion of `source` holds: channel checks,
/// and task checks.
fn checks(source: &str) -> (usize, usize) {
    let output = expand(&tokens(source));
    (
        output.matches("GroupChannel :: errgroup_bound").count(),
        output.matches("GroupTask :: errgroup_bound").count(),
    )
}

#[test]
fn code_inside_macro_invocations_is_checked() {
    for (source, expected) in [
        // The future, the guard and the handler of a `select!` arm, and
        // its `else` arm; `biased;` kept. Each names `rx`, `tx`, `out`,
        // `done` and the values computed from them.
        (
            "type Error = E; a => { tokio::select! { biased; Some(v) = rx.recv(), if tx.try_send(0).is_ok() => { out.send(v).await; } else => done.send(()).unwrap() } Ok(()) },",
            (11, 11),
        ),
        (
            "type Error = E; a => { tokio::join!(tx.send(1), async { rx.recv().await }); Ok(()) },",
            (5, 5),
        ),
        // Not Rust, or not code that runs: left as written.
        (
            "type Error = E; a => { stringify!(rx.recv()); my_dsl!(<rx> recv); html! { <p>{ rx.recv() }</p> } Ok(()) },",
            (0, 0),
        ),
    ] {
        assert_eq!(checks(source), expected, "{source}");
    }
    // Each endpoint the `select!` names is probed.
    let output = expand(&tokens(
        "type Error = E; a => { tokio::select! { Some(v) = rx.recv(), if tx.is_closed() => { out.send(v).await; } else => done.send(()).unwrap() } Ok(()) },",
    ));
    for name in ["rx", "tx", "out", "done"] {
        assert!(output.contains(&format!("(& {name})")), "{name}: {output}");
    }
    let output = expand(&tokens(
        "type Error = E; a => { my_dsl!(<rx> rx.recv()); tokio::select! { biased; _ = f() => {} } Ok(()) },",
    ));
    assert!(
        output.contains("my_dsl ! (< rx > rx . recv ())"),
        "{output}"
    );
    assert!(output.contains("biased ;"), "{output}");
    // A statement-list macro gets no statement among its own: the probe
    // goes before the statement that holds it.
    let source = "type Error = E; a => { tokio::pin! { let p = tx.reserve(); } Ok(()) },";
    let output = expand(&tokens(source));
    assert!(output.contains("pin ! { let p = "), "{output}");
    assert!(checks(source).0 > 0, "{output}");
}

#[test]
fn values_are_evaluated_once_where_they_were() {
    // The value is matched once where it was; its projections are replayed
    // on its witness's type.
    let output = expand(&tokens(
        "type Error = E; a => { state.lock().await.tx.send(1).await; make_tx().send(2); Ok(()) },",
    ));
    assert_eq!(output.matches("state . lock ()").count(), 1, "{output}");
    assert_eq!(output.matches("make_tx ()").count(), 1, "{output}");
    assert!(output.contains("(errgroup_value) . tx"), "{output}");
    // A place is probed in the statement before, its index by type only.
    let output = expand(&tokens(
        "type Error = E; a => { self.txs[i].send(1); Ok(()) },",
    ));
    assert!(output.contains("errgroup_index"), "{output}");
    assert!(output.contains("(self) . txs"), "{output}");
    assert_eq!(output.matches("self . txs").count(), 1, "{output}");
}

#[test]
fn operands_that_cannot_be_raw_and_the_groups_ctx_are_not_checked() {
    let output = expand(&tokens(
        "type Error = E; a => { let n = x + y * 2; if n > 3 && !flag { log(n as u64); } Ok(ctx.task().to_string()) },",
    ));
    for name in ["x", "y", "flag", "n", "ctx"] {
        assert!(
            !output.contains(&format!("(& {name})")),
            "{name} checked: {output}"
        );
    }
    // `log(..)`'s value is: a call's result may be anything.
    assert!(output.contains("match log (n as u64)"), "{output}");
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
                // Spanned as the group it cuts, as the compiler spans
                // every group it hands a macro.
                let mut group = Group::new(g.delimiter(), inner);
                group.set_span(g.span());
                cut.push(TokenTree::Group(group));
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
/// invisible groups, spanned as the fragment.
fn invisible(source: &str) -> TokenTree {
    let fragment = tokens(source);
    let mut spans = fragment.clone().into_iter().map(|tree| tree.span());
    let first = spans.next().expect("a fragment");
    let span = spans
        .last()
        .and_then(|last| first.join(last))
        .unwrap_or(first);
    let mut group = Group::new(Delimiter::None, fragment);
    group.set_span(span);
    TokenTree::Group(group)
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

// The corpus: every `errgroup!` body in the repository's examples, tests and
// UI cases, read from the files themselves, so new cases join on their own.

/// One `errgroup! { .. }` body found in a file.
struct Case {
    /// `examples/pipe.rs#2`: the file and the invocation's index in it.
    name: String,
    body: TokenStream,
    expect: Expect,
}

/// What the macro must do with a corpus body.
enum Expect {
    /// From an example or an integration test: expand, no `compile_error!`.
    Expands,
    /// From a UI case whose `.stderr` shows only rustc's own errors (type
    /// probes, hygiene): the macro itself accepts the body.
    ExpandsThenFailsTypeCheck,
    /// From a UI case whose `.stderr` shows the macro's errors: these
    /// messages, each reported by some body of the file.
    Rejects(Vec<String>),
}

fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the macro crate sits in the workspace")
        .to_owned()
}

/// The `.rs` files directly in `dir`, sorted.
fn rust_files(dir: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(repo_root().join(dir))
        .unwrap_or_else(|e| panic!("reading {dir}: {e}"))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    files.sort();
    files
}

/// The bodies of every `errgroup!` invocation in `stream`, however deeply
/// nested (inside other macros, inside another `errgroup!`), in source order.
/// `macro_rules!` templates (bodies with `$`) are not invocations and are
/// left out.
fn invocations(stream: &TokenStream, out: &mut Vec<TokenStream>) {
    let trees: Vec<TokenTree> = stream.clone().into_iter().collect();
    for (i, tree) in trees.iter().enumerate() {
        let TokenTree::Group(group) = tree else {
            continue;
        };
        let is_errgroup = i >= 2
            && matches!(&trees[i - 2], TokenTree::Ident(id) if id == "errgroup")
            && matches!(&trees[i - 1], TokenTree::Punct(p) if p.as_char() == '!');
        if is_errgroup && !has_dollar(&group.stream()) {
            out.push(group.stream());
        }
        invocations(&group.stream(), out);
    }
}

fn has_dollar(stream: &TokenStream) -> bool {
    stream.clone().into_iter().any(|tree| match tree {
        TokenTree::Punct(p) => p.as_char() == '$',
        TokenTree::Group(g) => has_dollar(&g.stream()),
        _ => false,
    })
}

/// The messages of the macro's own errors in a UI `.stderr`: rustc prints
/// a `compile_error!` as `error: MESSAGE` without an error code, while its
/// own errors (the type probes' `E0277`, hygiene's `E0425`) carry one.
fn macro_errors_in_stderr(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|line| line.strip_prefix("error: "))
        .filter(|message| !message.starts_with("aborting due to"))
        .map(str::to_owned)
        .collect()
}

fn corpus() -> Vec<Case> {
    let mut cases = Vec::new();
    for dir in [
        "examples",
        "tests",
        "tests/schedules",
        "tests/ui",
        "tests/fixtures/reexport/src",
        "tests/fixtures/reexport/tests",
    ] {
        for path in rust_files(dir) {
            let source = std::fs::read_to_string(&path).expect("readable source");
            let file = TokenStream::from_str(&source)
                .unwrap_or_else(|e| panic!("{} does not lex: {e}", path.display()));
            let mut bodies = Vec::new();
            invocations(&file, &mut bodies);
            let relative = path.strip_prefix(repo_root()).unwrap_or(&path);
            let expect = || {
                if dir != "tests/ui" {
                    return Expect::Expands;
                }
                let stderr = std::fs::read_to_string(path.with_extension("stderr"))
                    .unwrap_or_else(|e| panic!("{} has no .stderr: {e}", path.display()));
                let messages = macro_errors_in_stderr(&stderr);
                if messages.is_empty() {
                    Expect::ExpandsThenFailsTypeCheck
                } else {
                    Expect::Rejects(messages)
                }
            };
            for (i, body) in bodies.into_iter().enumerate() {
                cases.push(Case {
                    name: format!("{}#{i}", relative.display()),
                    body,
                    expect: expect(),
                });
            }
        }
    }
    cases
}

/// A `compile_error!` in the macro's output: its message and the span of
/// the `compile_error` name, where rustc reports it.
struct Rejection {
    message: String,
    span: proc_macro2::Span,
}

fn rejections(output: &TokenStream, out: &mut Vec<Rejection>) {
    let trees: Vec<TokenTree> = output.clone().into_iter().collect();
    for (i, tree) in trees.iter().enumerate() {
        match tree {
            TokenTree::Ident(name) if name == "compile_error" => {
                let message = match trees.get(i + 2) {
                    Some(TokenTree::Group(args)) => syn::parse2::<syn::LitStr>(args.stream())
                        .map_or_else(|_| args.stream().to_string(), |lit| lit.value()),
                    _ => String::new(),
                };
                out.push(Rejection {
                    message,
                    span: name.span(),
                });
            }
            TokenTree::Group(group) => rejections(&group.stream(), out),
            _ => {}
        }
    }
}

/// The one rejection spanned at the call site on purpose: an empty block
/// (or headers alone) has no token at fault, so the error names the whole
/// invocation, which is where rustc reports a call-site span.
const NO_BRANCHES: &str = "this `errgroup!` has no branches";

/// Runs the macro on `input`; panics with `what` (a corpus case, or a seed
/// and the mutated input) if it panics, returns something other than one
/// expression, or reports an error without a source location. Returns the
/// output and its `compile_error!`s.
fn run_macro(input: &TokenStream, what: &dyn Fn() -> String) -> (TokenStream, Vec<Rejection>) {
    let output = panic::catch_unwind(AssertUnwindSafe(|| errgroup_impl(input.clone())))
        .unwrap_or_else(|_| panic!("errgroup! panicked on {}:\n{input}", what()));
    if let Err(e) = syn::parse2::<syn::Expr>(output.clone()) {
        panic!(
            "errgroup! returned a non-expression ({e}) on {}:\n{input}\n{output}",
            what()
        );
    }
    let mut found = Vec::new();
    rejections(&output, &mut found);
    for rejection in &found {
        let located = rejection.span.source_text().is_some();
        assert!(
            located || rejection.message.starts_with(NO_BRANCHES),
            "errgroup! reported {:?} at the call site, not on the tokens at fault, on {}:\n{input}",
            rejection.message,
            what()
        );
    }
    (output, found)
}

fn check_never_breaks(input: &TokenStream, what: &dyn Fn() -> String) -> Vec<Rejection> {
    run_macro(input, what).1
}

#[test]
fn every_example_test_and_ui_body_round_trips_through_the_macro() {
    let cases = corpus();
    let (mut expanded, mut rejected) = (0, 0);
    let mut ui_files_rejected: Vec<&str> = Vec::new();
    for case in &cases {
        let found = check_never_breaks(&case.body, &|| case.name.clone());
        let messages: Vec<&str> = found.iter().map(|r| r.message.as_str()).collect();
        match &case.expect {
            Expect::Expands | Expect::ExpandsThenFailsTypeCheck => {
                assert!(
                    found.is_empty(),
                    "{} is valid but errgroup! rejects it: {messages:?}",
                    case.name
                );
                expanded += 1;
            }
            Expect::Rejects(_) => {
                if !found.is_empty() {
                    rejected += 1;
                    ui_files_rejected.push(case.name.split('#').next().unwrap_or_default());
                }
            }
        }
    }
    // Each message a UI `.stderr` shows is reported by a body of its file.
    for case in &cases {
        let Expect::Rejects(expected) = &case.expect else {
            continue;
        };
        let file = case.name.split('#').next().unwrap_or_default();
        let reported: Vec<String> = cases
            .iter()
            .filter(|c| c.name.split('#').next() == Some(file))
            .flat_map(|c| {
                let mut found = Vec::new();
                rejections(&errgroup_impl(c.body.clone()), &mut found);
                found.into_iter().map(|r| r.message)
            })
            .collect();
        for message in expected {
            assert!(
                reported
                    .iter()
                    .any(|r| r.lines().next() == Some(message.as_str())),
                "{file}.stderr shows `error: {message}`, which errgroup! does not report; it reports {reported:?}"
            );
        }
        assert!(
            ui_files_rejected.contains(&file),
            "{file}: nothing rejected"
        );
    }
    println!(
        "{} bodies: {expanded} expand without an error, {rejected} rejected",
        cases.len()
    );
    assert!(
        expanded > 100 && rejected > 30,
        "the corpus shrank: {expanded} expanding, {rejected} rejected"
    );
}

// Mutations: corpus bodies cut, shuffled and spliced, thousands per run,
// the same ones on every run (a fixed seed per mutation).

/// Tokens a mutation may insert or put in place of another: the grammar's
/// own pieces, and Rust's, in the wrong places.
const POOL: &str = "a b ctx Ok Err type Error let for in match if else move async await loop \
    continue break return limit timeout deadline parent grace on_error channel unbounded \
    spawn blocking allow raw_channel detached_spawn tokio thread r#type _ self Self crate \
    => = , ; # ! : :: . .. ..= ? & && | || + - * / % ^ < > <= >= == != -> @ $ ~ 'a 'static \
    0 1 42 0usize 1.5 1e3 \"s\" \"page\" r\"raw\" b'x' 'c' b\"bytes\" c\"c\" true false \
    () [] {} (a) [spawn] [blocking] [allow(raw_channel)] {Ok(1)} (x, y) {ctx.cancelled().await}";

/// A fixed xorshift generator, seeded per mutation, so a failure names the
/// seed that reproduces it.
fn rng(seed: u64) -> Rng {
    // Never zero: xorshift would stay there.
    Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
}

/// A path to a token stream inside `trees`: the indices of the groups to
/// descend into.
fn random_depth(rng: &mut Rng, trees: &[TokenTree], path: &mut Vec<usize>) {
    let groups: Vec<usize> = trees
        .iter()
        .enumerate()
        .filter(|(_, t)| matches!(t, TokenTree::Group(_)))
        .map(|(i, _)| i)
        .collect();
    if groups.is_empty() || rng.below(3) == 0 {
        return;
    }
    let i = groups[rng.below(groups.len())];
    path.push(i);
    if let TokenTree::Group(g) = &trees[i] {
        let inner: Vec<TokenTree> = g.stream().into_iter().collect();
        random_depth(rng, &inner, path);
    }
}

/// Applies `edit` to the token list at `path` inside `trees`, rebuilding
/// the groups above it with their delimiters and spans.
fn edit_at(trees: &mut Vec<TokenTree>, path: &[usize], edit: &mut dyn FnMut(&mut Vec<TokenTree>)) {
    let Some((&first, rest)) = path.split_first() else {
        edit(trees);
        return;
    };
    let TokenTree::Group(group) = &trees[first] else {
        return;
    };
    let mut inner: Vec<TokenTree> = group.stream().into_iter().collect();
    edit_at(&mut inner, rest, edit);
    let mut rebuilt = Group::new(group.delimiter(), inner.into_iter().collect());
    rebuilt.set_span(group.span());
    trees[first] = TokenTree::Group(rebuilt);
}

/// The same token, as another one of its kind (an ident for an ident, ..)
/// taken from `pool`, at the original's span.
fn replace_in_kind(rng: &mut Rng, tree: &TokenTree, pool: &[TokenTree]) -> TokenTree {
    let same_kind: Vec<&TokenTree> = pool
        .iter()
        .filter(|t| std::mem::discriminant(*t) == std::mem::discriminant(tree))
        .collect();
    let mut new = match same_kind.as_slice() {
        [] => pool[rng.below(pool.len())].clone(),
        kind => kind[rng.below(kind.len())].clone(),
    };
    if let TokenTree::Group(g) = tree {
        // Keep the contents, change the delimiter.
        let delimiters = [
            Delimiter::Parenthesis,
            Delimiter::Brace,
            Delimiter::Bracket,
            Delimiter::None,
        ];
        let mut group = Group::new(delimiters[rng.below(4)], g.stream());
        group.set_span(g.span());
        new = TokenTree::Group(group);
    } else {
        new.set_span(tree.span());
    }
    new
}

/// One random edit of the list: delete, duplicate, swap, insert, replace,
/// unwrap or wrap a group, truncate, or splice a run from another body.
fn mutate_once(rng: &mut Rng, trees: &mut Vec<TokenTree>, pool: &[TokenTree], donor: &[TokenTree]) {
    let len = trees.len();
    let at = |rng: &mut Rng| rng.below(len.max(1));
    match rng.below(10) {
        0 if len > 0 => {
            trees.remove(at(rng));
        }
        1 if len > 0 => {
            let i = at(rng);
            trees.insert(i, trees[i].clone());
        }
        2 if len > 1 => {
            let (i, j) = (at(rng), at(rng));
            trees.swap(i, j);
        }
        3 => {
            let tree = pool[rng.below(pool.len())].clone();
            trees.insert(rng.below(len + 1), tree);
        }
        4 | 5 if len > 0 => {
            let i = at(rng);
            trees[i] = replace_in_kind(rng, &trees[i], pool);
        }
        6 if len > 0 => {
            // Unwrap a group: its contents in its place.
            let i = at(rng);
            if let TokenTree::Group(g) = trees[i].clone() {
                trees.splice(i..=i, g.stream());
            }
        }
        7 if len > 0 => {
            // Wrap a run in a new group.
            let i = at(rng);
            let j = i + 1 + rng.below(len - i);
            let span = trees[i].span();
            let delimiter = [
                Delimiter::Parenthesis,
                Delimiter::Brace,
                Delimiter::Bracket,
                Delimiter::None,
            ][rng.below(4)];
            let mut group = Group::new(delimiter, trees[i..j].iter().cloned().collect());
            group.set_span(span);
            trees.splice(i..j, [TokenTree::Group(group)]);
        }
        8 => trees.truncate(rng.below(len + 1)),
        _ if !donor.is_empty() => {
            // A run of another body spliced over a run of this one.
            let from = rng.below(donor.len());
            let to = from + rng.below(donor.len() - from + 1);
            let i = rng.below(len + 1);
            let j = i + rng.below(len - i + 1);
            trees.splice(i..j, donor[from..to].iter().cloned());
        }
        _ => {}
    }
}

/// The corpus case and mutated input for `seed`: one to four edits, each
/// at a random depth.
fn mutant(seed: u64, cases: &[Case], pool: &[TokenTree]) -> (usize, TokenStream) {
    let mut rng = rng(seed);
    let case = rng.below(cases.len());
    let donor: Vec<TokenTree> = cases[rng.below(cases.len())]
        .body
        .clone()
        .into_iter()
        .collect();
    let mut trees: Vec<TokenTree> = cases[case].body.clone().into_iter().collect();
    for _ in 0..=rng.below(4) {
        let mut path = Vec::new();
        random_depth(&mut rng, &trees, &mut path);
        edit_at(&mut trees, &path, &mut |list| {
            mutate_once(&mut rng, list, pool, &donor);
        });
    }
    (case, trees.into_iter().collect())
}

/// Mutations per run: enough to reach every rejection path many times,
/// few enough for a debug build to finish in seconds.
const MUTATIONS: u64 = 6_000;

#[test]
fn mutated_bodies_never_panic_and_every_rejection_is_spanned() {
    let cases = corpus();
    let pool: Vec<TokenTree> = tokens(POOL).into_iter().collect();
    let first_seed =
        std::env::var("ERRGROUP_FUZZ_SEED").map_or(0, |s| s.parse().expect("a u64 seed"));
    let runs =
        std::env::var("ERRGROUP_FUZZ_RUNS").map_or(MUTATIONS, |s| s.parse().expect("a count"));
    let (mut rejected, mut expanded) = (0, 0);
    for seed in first_seed..first_seed + runs {
        let (case, input) = mutant(seed, &cases, &pool);
        let what = || {
            format!(
                "seed {seed} (ERRGROUP_FUZZ_SEED={seed} ERRGROUP_FUZZ_RUNS=1), a mutant of {}",
                cases[case].name
            )
        };
        if check_never_breaks(&input, &what).is_empty() {
            expanded += 1;
        } else {
            rejected += 1;
        }
    }
    println!("{runs} mutants: {rejected} rejected, {expanded} expanded");
    // Both outcomes are common, so neither path is starved.
    assert!(
        rejected > runs / 4 && expanded > runs / 20,
        "{rejected} rejected, {expanded} expanded"
    );
}

/// The source text of each error's span, for `source`.
fn error_spans(source: &str) -> Vec<(String, String)> {
    let (_, found) = run_macro(&tokens(source), &|| source.to_owned());
    found
        .into_iter()
        .map(|r| (r.message, r.span.source_text().unwrap_or_default()))
        .collect()
}

#[test]
fn an_input_that_stops_early_is_reported_at_its_last_token() {
    // Found by the mutation test: syn reports the end of its input at the
    // call site, which would underline the whole invocation. (`=>` is two
    // tokens to a macro; the error is on its `>`.)
    for (source, last) in [
        ("a => x.await, b =>", ">"),
        ("type Error = anyhow:: ; let (_unused_tx, rx)", ")"),
        ("a => x.await, #", "#"),
        ("limit", "limit"),
        ("a => f(x) +", "+"),
        ("a => { x }, b => if y { 1 } else", "else"),
    ] {
        // proc-macro2's fallback narrows a delimiter span to its last
        // character (`t` of `limit`); rustc keeps the whole token.
        let spans = error_spans(source);
        assert!(
            spans
                .iter()
                .any(|(_, text)| !text.is_empty() && last.ends_with(text.as_str())),
            "{source:?}: expected an error at `{last}`, got {spans:?}"
        );
    }
}

#[test]
fn a_channel_header_without_arguments_is_reported_at_its_parentheses() {
    // Found by the mutation test: an error spanned on the empty argument
    // list had no span at all.
    for source in [
        "let (tx, rx) = channel(); a => Ok::<_, E>(()),",
        "let (tx, rx) = channel::<u8>(); a => Ok::<_, E>(()),",
    ] {
        let spans = error_spans(source);
        assert!(
            spans
                .iter()
                .any(|(m, text)| m.starts_with("`channel` takes one argument") && text == "()"),
            "{source:?}: {spans:?}"
        );
    }
    let spans = error_spans("let (tx, rx) = unbounded(1, 2); a => Ok::<_, E>(()),");
    assert!(
        spans
            .iter()
            .any(|(m, text)| m.starts_with("`unbounded` takes no argument") && text == "1"),
        "{spans:?}"
    );
}

/// The tail expression of the function `name` in `file`.
fn tail_of(file: &syn::File, name: &str) -> TokenStream {
    use quote::ToTokens;
    file.items
        .iter()
        .find_map(|item| match item {
            syn::Item::Fn(f) if f.sig.ident == name => match f.block.stmts.last() {
                Some(syn::Stmt::Expr(tail, None)) => Some(tail.to_token_stream()),
                Some(syn::Stmt::Macro(m)) => Some(m.to_token_stream()),
                _ => None,
            },
            _ => None,
        })
        .unwrap_or_else(|| panic!("examples/expanded.rs has no fn `{name}` with a tail"))
}

/// examples/expanded.rs shows the macro's real output for its block.
#[test]
fn the_expanded_example_is_what_the_macro_writes() {
    let path = repo_root().join("examples/expanded.rs");
    let source = std::fs::read_to_string(&path).expect("examples/expanded.rs");
    let file = syn::parse_file(&source).expect("examples/expanded.rs parses");
    let written = syn::parse2::<syn::Macro>(tail_of(&file, "written")).expect("an errgroup! call");
    // rustfmt adds trailing commas to the calls it breaks over lines.
    let normal = |tokens: String| tokens.replace(" ,)", ")");
    let by_macro = normal(expand(&written.tokens));
    let by_hand = normal(tail_of(&file, "expanded").to_string());
    assert_eq!(
        by_hand, by_macro,
        "examples/expanded.rs is out of date: paste the macro's output (formatted) into `expanded`"
    );
}

/// Branches whose value type the expansion fixes to `()`, and look-alikes
/// that can yield `Ok` and must keep the type they infer.
#[test]
fn branches_that_never_yield_ok_are_read_from_their_syntax() {
    let never_ok = [
        "a => Err(e),",
        "a => Result::Err(e),",
        "a => { f().await?; Err(e) },",
        "a => return Err(e),",
        "a => { f().await?; return Err(e); },",
        "a => loop { ctx.sleep(d).await?; },",
        "a => { let x = 1; loop { if x > 0 { continue; } } },",
        "a => 'l: loop { loop { break; } for _ in xs { break; } while c { break 'w; } },",
        "a => loop { let f = || loop { break; }; let g = async { return Ok(1) }; },",
        "a => if c { Err(e) } else { return Err(f); },",
        "a => match m { 1 => Err(e), _ => loop {} },",
        "a => { if c { return Err(e); } Err(f) },",
        "#[blocking] a => loop { ctx.check()?; },",
        "#[spawn] a => Err(e),",
        "a => for x in xs { f(x).await?; Err(e) },",
        "#[blocking] a => for x in xs { return Err(x); },",
        "on_error = continue; a => Err(e), #[blocking] b => Err(e),",
    ];
    let may_yield_ok = [
        "a => Ok(1),",
        "a => Err::<u8, _>(e),",
        "a => Result::<u8, E>::Err(e),",
        "a => { Err(e); },",
        "a => { if c { return Ok(1); } Err(e) },",
        "a => { return; },",
        "a => loop { break Ok(1); },",
        "a => 'l: loop { loop { break 'l Ok(1); } },",
        "a => loop { tokio::select! { _ = f() => break, } },",
        "a => loop { my_macro!(return Ok(1)); },",
        "a => 'b: { if c { break 'b Ok(1); } Err(e) },",
        "a => if c { Err(e) },",
        "a => if c { Err(e) } else { Ok(1) },",
        "a => match m { 1 => Err(e), _ => Ok(1) },",
        "a => while c { f(); },",
        "a => for x in xs { if x { return Ok(x); } Err(e) },",
        "a => f(Err(e)),",
    ];
    for source in never_ok {
        let output = expand(&tokens(source));
        assert!(output.contains("never_ok"), "{source:?} gave: {output}");
    }
    for source in may_yield_ok {
        let output = expand(&tokens(source));
        assert!(!output.contains("never_ok"), "{source:?} gave: {output}");
    }
}

/// `clone(db)` clones before the body moves: outside the moving body for a
/// single branch, and again per item for a fan-out.
#[test]
fn a_clone_list_clones_outside_the_moving_body() {
    let output = expand(&tokens("#[spawn(clone(db))] a => Ok(db.len()),"));
    let clone = "let db = :: errgroup :: __private :: Clone :: clone (& db) ;";
    let at = output
        .find(clone)
        .unwrap_or_else(|| panic!("no clone in {output}"));
    assert!(output[at..].contains("async move"), "{output}");
    let output = expand(&tokens(
        "#[blocking(clone(db))] a => for i in xs { Ok(db.len()) },",
    ));
    assert_eq!(output.matches(clone).count(), 2, "{output}");
    let output = expand(&tokens("#[spawn] a => Ok(db.len()),"));
    assert!(!output.contains("clone (& db)"), "{output}");
}

/// quick.rs reads the bodies of its shapes into syn's tree, with syn's
/// spans, and leaves the others to syn.
#[test]
fn quick_bodies_are_read_as_syn_reads_them() {
    let read = [
        "a + b * c - d / e % f",
        "a || b && c == d || !e",
        "a == b && c != d || e <= f && g >= h && i < j && k > l",
        "-a * b - -c",
        "&a.b + *c.d? - &mut e",
        "(a)",
        "()",
        "(a,)",
        "(a, b + 1,)",
        "f(a,)(b)",
        "f(a,-1)",
        "x[i][j + 1].k",
        "x.await?.y().await",
        "::std::mem::drop(x)",
        "Ok(x != y)",
        "{ let mut a = 1; let b; a; f(b)?; Ok((a, b)) }",
        "{ tokio::task::yield_now().await; Ok(x + 4) }",
        "{}",
        "f({ x }, { y; z })",
    ];
    for source in read {
        let input = tokens(source);
        let buffer = syn::buffer::TokenBuffer::new2(input.clone());
        let (quick, rest) = crate::quick::body(buffer.begin())
            .unwrap_or_else(|| panic!("quick.rs leaves `{source}` to syn"));
        assert!(rest.eof(), "{source}");
        let by_syn: syn::Expr = syn::parse2(input).expect(source);
        assert!(quick == by_syn, "{source}");
        let spans = |e: &syn::Expr| format!("{:?}", quote::ToTokens::to_token_stream(e));
        assert_eq!(spans(&quick), spans(&by_syn), "{source}");
    }
    let left = [
        "x.0",
        "1.0.max(x)",
        "x.f::<u8>()",
        "a = b",
        "a..b",
        "x as u8",
        "S { a }",
        "m!(x)",
        "|x| x",
        "async {}",
        "if a { b } else { c }",
        "a < b < c",
        "a & b",
        "&&x",
        "{ { x } }",
        "{ ; x }",
        "{ let x: u8 = 1; x }",
        "self.x",
        "r#type",
        "#[attr] x",
        "a b",
    ];
    for source in left {
        let buffer = syn::buffer::TokenBuffer::new2(tokens(source));
        assert!(
            crate::quick::body(buffer.begin()).is_none(),
            "quick.rs reads `{source}`"
        );
    }
}

/// A checked value that starts with a struct literal is a `match`
/// scrutinee in parentheses, where rustc takes a struct literal.
#[test]
fn a_value_starting_with_a_struct_literal_is_matched_in_parentheses() {
    let output = expand(&tokens("a => { S {}.get().await; Ok(()) },"));
    assert!(output.contains("match (S { } . get ()) {"), "{output}");
}
