//! Lints: raw channels and detached spawns inside branch bodies.
//!
//! **The rule: a branch may not name a raw channel endpoint or a detached
//! task at all.** Every place and every value the branch's own tokens name
//! is checked by its *type* (`runtime/lints.rs` holds the type side): a
//! variable, a field, an index, a static, a call's result, an `.await`'s
//! output, a function item used as a value, a name a pattern binds; as a
//! method receiver, an argument, an `.await` operand, a `select!` future,
//! a scrutinee, a closure's capture, a fan-out's items expression, or
//! inside an item (an `async fn`, an `impl`) declared in the branch. No method or function
//! name decides anything: `rx.await`, `rx.iter()`, `Sender::send(&tx, 1)`,
//! `.map(tokio::spawn)`, `Handle::current().spawn(..)` and
//! `thread::Builder::new().spawn(..)` are all a mention of a raw type. A
//! spawn the group neither waits for nor cancels is a value of a task type
//! (tokio's `JoinHandle` and `JoinSet`, std's `JoinHandle`), however it was
//! started. Each branch marked `#[allow(raw_channel)]` /
//! `#[allow(detached_spawn)]` skips that half.
//!
//! # How a mention is checked, and why that way
//!
//! Nothing the user wrote is evaluated, moved or borrowed differently:
//!
//! - **A place** (`tx`, `self.txs[i]`, `(*p).f`, `BUS`) is recorded in an
//!   `if false { loop {} w = witness(&place); }` statement before the
//!   statement that names it. Code after `loop {}` is type-checked by rustc
//!   but never reached by the borrow checker, so the probe neither moves
//!   nor borrows: it works after a move, before an assignment, beside a
//!   live `&mut`. An index is not evaluated again: a name or `&place` index
//!   is replayed by its type only (`errgroup_index(probe(&i))`); another
//!   index makes the probe stop at the collection. A place captured by a
//!   closure or an async block is recorded outside it, where the name
//!   means the same: a mention inside would change what it captures.
//! - **A value** (a call's, a method call's, an `.await`'s, a `?`'s) is
//!   rewritten in place into `(match value { v => { if false { w =
//!   witness(&v); } v } })`: evaluated once, where it was, moved into `v`
//!   and out again, its temporaries living as long as before. The
//!   recording borrows only `v`, its own fresh binding, so it needs no
//!   `loop {}` (nor the `allow` that code after one needs); `w` is `let
//!   mut`, as a `while` condition or a macro that repeats its argument
//!   makes the value, and records it, more than once. `w` is
//!   checked *deeply* at the block's end, where the code after the
//!   statement has fixed its type (`takes_u32(make())`, `v.push(make());
//!   let n: u32 = v[0];`); in a body's last statement, deeply where it is.
//!   Two kinds of values are checked only *shallowly*, where they are (an
//!   endpoint or handle at the type's head, through pointers and guards,
//!   or first in a pair): a value a generic call feeds (`into`, `collect`,
//!   `parse`, `?`, .., so that `x.try_into().map_err(f)`, a `Result<?,
//!   E>` until later code fixes `?`, is never taken for a raw one), and an
//!   empty container (`Vec::new()`, `HashMap::with_capacity(n)`), whose
//!   content may come from outside the group; their arguments are checked
//!   themselves. The fields, indexes and derefs written above a value
//!   (`state.lock().await.tx`) are replayed on its type. The links of a
//!   chain (`make().lock().unwrap()`) are each checked, spanned over the
//!   whole chain, so that they make one error. A function used as a value
//!   (`.map(tokio::spawn)`, `let go = mpsc::channel::<u8>;`) is checked
//!   for what it returns. A bare name in a value position (an argument)
//!   goes through `pass_check(x, |v| ..)`, a generic identity, so that
//!   `.map(drop)` keeps its inferred type parameters and an `&mut` passed
//!   where one is expected is reborrowed. A function called by a bare name
//!   (`fatal(..);`, or `{ make() }` as a block's value) may return `!`:
//!   its `match` allows the warnings about code after a `!`; as the value
//!   of a body's last statement it is left unchecked, as a `!` there takes
//!   its type from what follows (`if ok { run() } else { fatal("..") }`).
//! - **Where a place's check runs.** A place's witness `w` is declared
//!   (untyped) at the top of the block whose statement named it, and
//!   checked *deeply* (through every wrapper) by a statement before the
//!   block's last one: by then the block's code has fixed its type (`let
//!   mut v = Vec::new();` is a `Vec<u32>` only after `v.push(1u32)`). The
//!   check picks its answer by autoderef specialisation, which must see a
//!   known type: on a type still unknown it would answer "raw". A place in
//!   a body's last statement (a branch's value, a closure's) is checked
//!   where it is: deeply when its name comes from outside the group (its
//!   type is known) or a pattern binds it, at its head when a `let` or a
//!   closure binds it.
//! - **Names the branch binds.** A name bound by a `for`, `if let`,
//!   `while let` or `match` pattern is checked like a place wherever it is
//!   named (`for route in routes { forward(&route.tx) }`, where `routes`
//!   holds a type of the user's, which is not looked into): its type is
//!   fixed by what it matches. A name bound by a `let`, as a closure's
//!   parameter, or by a pattern from a value a generic call feeds (`if let
//!   Ok(n) = s.parse()`) is checked only where rustc needs its type too (a
//!   method receiver, an `.await`, a `?`, a scrutinee): its value was
//!   checked where it was made, and its type may come from after the group
//!   (`let n = s.parse()?; Ok(n)`).
//! - **Left unchecked, because no raw value can be there**: the operands
//!   of `+`, `==`, `!`, `as`, ranges, indexes and conditions (only what
//!   they are computed from is checked); `into`, `collect`, `parse`,
//!   `default`, .. results and `?` outputs outside a receiver, an
//!   `.await`, a `?` or a scrutinee (what they come from is checked); a
//!   constructor of the user's (`Ok(..)`, `Some(..)`); the group's own
//!   `ctx`.
//!
//! A path call written from the crate root (`::flume::bounded(..)`,
//! `::tokio::spawn(..)`) can only be that crate's, whose types the check
//! may not know (its cargo feature off): it is reported by path.
//!
//! Each check is a path call `GroupChannel::errgroup_bound((verdict).channel())`
//! whose argument is spanned from the first to the last token the user
//! wrote, so the error covers them.
//!
//! Code inside macro invocations is linted when its tokens parse as Rust: a
//! `select!`'s arms (`pat = future, if guard => handler`, `else =>`), a
//! comma-separated list of expressions (`join!`, `vec!`, `assert!`,
//! `format!`), `vec![x; n]`, or statements. Anything else is left as it is,
//! and so are `stringify!`-like macros, whose arguments never run. The
//! tokens are only replaced when a check had to be written inline.
//!
//! # Out of reach
//!
//! The check reads the branch's own tokens. A raw endpoint hidden inside a
//! user type with methods of its own (`self.client.notify()` where the
//! client holds a sender), a closure or a macro defined outside the block,
//! a `dyn` trait object, or code in a function the branch calls is not
//! seen: a type of the user's is never looked into. Nor is a macro body
//! that does not parse as Rust, or a function called by a bare name as a
//! block's value in a body's last statement (see above).
//!
//! Rejected although valid: a value or variable whose type is, or holds,
//! a type parameter that only code *after the block* fixes, or in a
//! block's last statement code after the call (`Ok(make())`,
//! `Ok(takes_u32(make()))` as a branch's value, with a user's `fn
//! make<T: Default>() -> T`; a `Vec::new()` outside the group that only
//! code after it fills), other than an empty container made in the
//! branch: the check meets an unknown type and takes it
//! for a raw one, and its error says so; fixing the type at the call
//! compiles, and so does the same call in an earlier statement. And an
//! argument of a user's macro that matches it token by token rather than
//! as an expression, when the check rewrote it.

use proc_macro2::{Delimiter, Group, Ident, Literal, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::visit_mut::{self, VisitMut};
use syn::{Block, Expr, Pat, Stmt, Token};

use crate::ast::{Body, Input, Krate};
use crate::errors::Errors;

/// Constructors of raw channels, reported by path when written from the
/// crate root (`::flume::bounded`): then they can only be the crate's, whose
/// types the check may not know (its cargo feature off).
const CONSTRUCTORS: &[(&[&str], &[&str])] = &[
    (
        &["tokio", "sync", "mpsc"],
        &["channel", "unbounded_channel"],
    ),
    (&["tokio", "sync", "oneshot"], &["channel"]),
    (&["tokio", "sync", "broadcast"], &["channel"]),
    (&["tokio", "sync", "watch"], &["channel"]),
    (&["std", "sync", "mpsc"], &["channel", "sync_channel"]),
    (&["crossbeam_channel"], &["bounded", "unbounded"]),
    (&["crossbeam", "channel"], &["bounded", "unbounded"]),
    (&["flume"], &["bounded", "unbounded"]),
    (&["async_channel"], &["bounded", "unbounded"]),
    (
        &["kanal"],
        &["bounded", "unbounded", "bounded_async", "unbounded_async"],
    ),
    (&["futures", "channel", "mpsc"], &["channel", "unbounded"]),
    (&["futures", "channel", "oneshot"], &["channel"]),
    (&["futures_channel", "mpsc"], &["channel", "unbounded"]),
    (&["futures_channel", "oneshot"], &["channel"]),
];

/// Detached spawns, reported by path when written from the crate root.
const SPAWNS: &[&[&str]] = &[
    &["tokio", "spawn"],
    &["tokio", "task", "spawn"],
    &["tokio", "task", "spawn_blocking"],
    &["tokio", "task", "spawn_local"],
    &["std", "thread", "spawn"],
];

const NOT_CODE: &[&str] = &[
    "stringify",
    "concat",
    "concat_idents",
    "include",
    "include_str",
    "include_bytes",
    "env",
    "option_env",
    "cfg",
    "compile_error",
    "module_path",
    "file",
    "line",
    "column",
    "macro_rules",
    "errgroup",
];

/// Functions of std that never return: their value, `!`, is not checked
/// where it is (code after it would be unreachable).
const DIVERGING: &[&str] = &["panic_any", "resume_unwind", "exit", "abort"];

/// Functions and methods of std whose result is a type parameter the
/// caller's later code may fix.
const GENERIC_RESULTS: &[&str] = &[
    "into",
    "try_into",
    "from",
    "try_from",
    "collect",
    "parse",
    "default",
    "unwrap_or_default",
    "sum",
    "product",
    "as_ref",
    "as_mut",
    "borrow",
    "borrow_mut",
    "into_inner",
    "downcast",
];

/// Associated functions that make an empty container, whose content type
/// only later code may fix (see [`empty_container`]).
const CONTAINERS: &[&str] = &[
    "new",
    "with_capacity",
    "with_hasher",
    "with_capacity_and_hasher",
];

const CHANNEL_HELP: &str = "help: use a group-bound channel: the header `let (tx, rx) = channel(cap);` above the branches, or `ctx.channel(cap)` in the body";

const SPAWN_HELP: &str = "help: run it as a branch marked `#[spawn]`, start it with `ctx.spawn(name, future)`, or give it a nested `errgroup!`";

/// Applies the lints to every branch: reports the path-based errors and
/// adds the type checks to the bodies. Returns the `use` their method calls
/// need, to go around the expansion, when any check was written.
pub(crate) fn lint(input: &mut Input, errors: &mut Errors) -> Option<TokenStream> {
    let krate = input.config.krate();
    let checked = std::cell::Cell::new(false);
    for branch in &mut input.branches {
        let attrs = &branch.attrs;
        if attrs.allow_raw_channel && attrs.allow_detached_spawn {
            continue;
        }
        let mut linter = Linter {
            channels: !attrs.allow_raw_channel,
            spawns: !attrs.allow_detached_spawn,
            frames: Vec::new(),
            blocks: Vec::new(),
            targets: vec![None],
            witnesses: 0,
            captures: Vec::new(),
            bound: std::collections::BTreeSet::new(),
            loose: std::collections::BTreeSet::new(),
            structural: false,
            quiet: false,
            bound_value: false,
            chain: None,
            errors: &mut *errors,
            krate: &krate,
            checked: &checked,
        };
        match &mut branch.body {
            Body::Broken => {}
            Body::Expr(body) => {
                let mut names = Names::default();
                names.visit_expr(body);
                linter.bound.extend(names.0);
                let mut loose = Loose::default();
                loose.visit_expr(body);
                linter.loose.extend(loose.0);
                linter.body(body);
            }
            Body::For(fan_out) => {
                let mut names = Names::default();
                names.visit_pat(&fan_out.pat);
                names.visit_block(&fan_out.body);
                linter.bound.extend(names.0);
                let mut loose = Loose::default();
                loose.visit_block(&fan_out.body);
                linter.loose.extend(loose.0);
                // The items expression is evaluated once, before any item:
                // its checks go in front of it, `({ if false { .. } }, items).1`.
                linter.frames.push(Frame::default());
                linter.visit_expr_mut(&mut fan_out.expr);
                let frame = linter.frames.pop().unwrap_or_default();
                if let Some(probe) = probe_stmt(frame) {
                    let items = &fan_out.expr;
                    let site = Span::mixed_site();
                    let one = Literal::usize_unsuffixed(1);
                    *fan_out.expr =
                        Expr::Verbatim(quote_spanned!(site=> ({ #probe }, #items).#one));
                }
                linter.visit_block_mut(&mut fan_out.body);
            }
        }
    }
    checked.get().then(|| imports(&krate))
}

/// What a call's path names, when written from the crate root.
enum Callee {
    /// A known constructor (`::flume::bounded`).
    Constructor(String),
    /// A known spawn (`::tokio::spawn`).
    Spawn(String),
    Other,
}

/// What a path written from the crate root names.
fn classify(path: &syn::Path) -> Callee {
    if path.leading_colon.is_none() {
        return Callee::Other;
    }
    let full: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    if let Some(display) = constructor(&full) {
        return Callee::Constructor(display);
    }
    if SPAWNS.iter().any(|s| eq(s, &full)) {
        return Callee::Spawn(full.join("::"));
    }
    Callee::Other
}

fn eq(known: &[&str], path: &[String]) -> bool {
    known.len() == path.len() && known.iter().zip(path).all(|(k, p)| k == p)
}

/// `tokio::sync::mpsc::channel` for a full constructor path.
fn constructor(full: &[String]) -> Option<String> {
    let (name, module) = full.split_last()?;
    CONSTRUCTORS
        .iter()
        .any(|(m, fns)| eq(m, module) && fns.contains(&name.as_str()))
        .then(|| full.join("::"))
}

/// The recordings for one statement (or one closure or match-arm body),
/// and the names bound inside it so far (not yet in scope before it).
#[derive(Default)]
struct Frame {
    probes: Vec<TokenStream>,
    bound: Vec<String>,
    /// Recordings of places named by an `if let` / `while let` binding of
    /// this statement: emitted at the top of that `if`'s or `while`'s body,
    /// where the names mean what they mean in the condition.
    deferred: Vec<TokenStream>,
}

/// The late checks of one block: its witnesses, declared at its top, and
/// their checks, before its last statement.
#[derive(Default)]
struct Late {
    decls: Vec<TokenStream>,
    checks: Vec<TokenStream>,
}

#[allow(
    clippy::struct_excessive_bools,
    reason = "independent switches of one visitor's state"
)]
struct Linter<'a> {
    channels: bool,
    spawns: bool,
    frames: Vec<Frame>,
    /// The blocks being visited, innermost last.
    blocks: Vec<Late>,
    /// Where the check of a mention goes: the block (an index into
    /// `blocks`) whose late checks follow it, or `None`: right where it is.
    targets: Vec<Option<usize>>,
    witnesses: usize,
    /// The closures and async blocks being visited, innermost last.
    captures: Vec<Capture>,
    /// Names the branch binds (`let`, patterns, parameters): their values
    /// come from expressions checked where they are, and their types may
    /// be fixed only by code after the branch (`let n = s.parse()?;
    /// Ok(n)`), so they are checked only where rustc needs their type too.
    bound: std::collections::BTreeSet<String>,
    /// Names the branch binds by a `let`, as a closure's parameters, or
    /// from a value a generic call feeds (`if let Ok(n) = s.parse()`):
    /// their values were checked where they were made, and code after the
    /// group may fix their types (`let n = s.parse()?; Ok(n)`). Checked
    /// only where rustc needs their type too.
    loose: std::collections::BTreeSet<String>,
    /// Whether the expression being visited is in a position whose type
    /// rustc resolves before going on (a method receiver, an `.await` or
    /// `?` operand, a scrutinee, a `for` loop's items).
    structural: bool,
    /// Whether the value of the expression being visited is an operand no
    /// raw endpoint or task handle can be (of `+`, `==`, `!`, `as`, a
    /// range, an index, a condition): only what it is computed from is
    /// checked.
    quiet: bool,
    /// The span of the chain whose link is being visited (see
    /// `computed`).
    chain: Option<(Span, Span)>,
    /// Whether the computed value being visited is a `let`'s whole value.
    bound_value: bool,
    errors: &'a mut Errors,
    krate: &'a Krate,
    /// Whether a check was written (see `lint`).
    checked: &'a std::cell::Cell<bool>,
}

/// A closure or an async block: the names it binds, and the depth of the
/// frame and target stacks outside it. A place it captures is recorded
/// outside it, where the name means the same: a mention inside would make
/// it capture the whole variable (`&polled`) where the user's code
/// captures less (`*polled`, through `polled.store(..)`).
struct Capture {
    names: std::collections::BTreeSet<String>,
    frames: usize,
    targets: usize,
}

/// What a checked value is.
#[derive(Clone, Copy)]
enum Value {
    /// A call's, a method call's, an `.await`'s, a `?`'s: looked at
    /// shallowly, where it is (its head is known there).
    Computed,
    /// A function item named by a path (`tokio::spawn` as a value).
    Function,
    /// A bare name in a value position: a local or a function item.
    Name,
    /// A `let`'s value, computed: checked at the block's end, where the
    /// code after the `let` has fixed its type (`let v = make(); let n:
    /// u32 = v;`).
    Bound,
}

/// How a mention is checked.
enum Mode {
    /// By a witness, checked at the end of block `usize`.
    Late(usize, Ident),
    /// Where it is.
    Now,
}

impl Linter<'_> {
    fn frame(&mut self) -> &mut Frame {
        if self.frames.is_empty() {
            self.frames.push(Frame::default());
        }
        let last = self.frames.len() - 1;
        &mut self.frames[last]
    }

    fn bind(&mut self, pat: &Pat) {
        let mut names = Names::default();
        names.visit_pat(pat);
        self.frame().bound.extend(names.0);
    }

    /// A branch's body, or a closure's: a block is visited as one (its
    /// last statement checked where it is); an expression gets its place
    /// checks in a block around it, `{ if false { .. } expr }`.
    fn body(&mut self, body: &mut Expr) {
        self.targets.push(None);
        if let Expr::Block(block) = body {
            self.visit_block_mut(&mut block.block);
        } else {
            self.frames.push(Frame::default());
            self.visit_expr_mut(body);
            let frame = self.frames.pop().unwrap_or_default();
            wrap(body, frame);
        }
        self.targets.pop();
    }

    /// A new mention's mode: a fresh witness of the innermost block that
    /// checks late, if any.
    fn mode(&mut self) -> Mode {
        self.mode_at(self.targets.len())
    }

    /// The mode at a depth of the target stack.
    fn mode_at(&mut self, depth: usize) -> Mode {
        let target = depth
            .checked_sub(1)
            .and_then(|i| self.targets.get(i))
            .copied()
            .flatten();
        match target {
            Some(block) => {
                let witness = Ident::new(
                    &format!("errgroup_witness_{}", self.witnesses),
                    Span::mixed_site(),
                );
                self.witnesses += 1;
                // Typed by its assignments, which never run; `mut`, as a
                // value may be recorded more than once (see `recorded`).
                self.blocks[block]
                    .decls
                    .push(quote_spanned! {Span::mixed_site()=>
                        let mut #witness;
                    });
                Mode::Late(block, witness)
            }
            None => Mode::Now,
        }
    }

    /// The checks of one probe (`source` evaluates to a `Probe`), spanned
    /// over `first..=last` of the user's tokens.
    fn checks(&self, source: TokenStream, (first, last): (Span, Span), local: bool) -> TokenStream {
        self.checked.set(true);
        let site = Span::mixed_site();
        let verdict = Ident::new("errgroup_verdict", site);
        // The expansion's import of the lints module (see `imports`),
        // spanned on the user's tokens like the rest of the call.
        let lints = Ident::new("errgroup_lints", first);
        // `let errgroup_verdict = (source).errgroup_verdict();`, its `let`,
        // `=` and `;` mixed-site; the rest spanned on the user's tokens: a
        // type still unknown here fails on this call, and its error points
        // at them. Written as one `quote!` of tokens, not of streams: each
        // stream added to another is a round trip over the proc-macro bridge.
        let let_token = Ident::new("let", site);
        let (eq, semi) = (punct('=', site), punct(';', site));
        let source = group(Delimiter::Parenthesis, source, first);
        let kinds = [
            (self.channels, "GroupChannel", "channel"),
            (
                self.spawns,
                if local { "GroupLocalTask" } else { "GroupTask" },
                if local { "local_task" } else { "task" },
            ),
        ];
        let (bounds, methods): (Vec<_>, Vec<_>) = kinds
            .into_iter()
            .filter(|(on, ..)| *on)
            .map(|(_, bound, method)| (Ident::new(bound, first), Ident::new(method, last)))
            .unzip();
        let receiver = group(Delimiter::Parenthesis, quote!(#verdict), first);
        let args = group(Delimiter::Parenthesis, TokenStream::new(), last);
        let callee = Ident::new("errgroup_bound", last);
        // No block of its own: a later check's `errgroup_verdict` shadows
        // this one, after its last use.
        quote_spanned! {first=>
            #let_token #verdict #eq #source.errgroup_verdict() #semi
            #(#lints::#bounds::#callee(#receiver.#methods #args);)*
        }
    }

    /// Checks a place by type: recorded (or checked) in the statement
    /// before the one that names it, in code that never runs and that the
    /// borrow checker never reaches (`if false { loop {} .. }`): no part of
    /// it is evaluated, moved or borrowed.
    fn place(&mut self, place: &Place, span: (Span, Span), structural: bool) {
        let root = place.names.first();
        // A name a `let` or a closure binds is checked only where rustc
        // needs its type too (see `loose`).
        if !structural && root.is_some_and(|n| self.loose.contains(n)) {
            return;
        }
        // The group's own `ctx`, unless the branch binds the name itself.
        if place
            .names
            .first()
            .is_some_and(|n| n == "ctx" && !self.bound.contains(n))
        {
            return;
        }
        // Recorded outside the closures that capture it.
        let (mut frames, mut targets) = (self.frames.len(), self.targets.len());
        for capture in self.captures.iter().rev() {
            if place.names.is_empty() || place.names.iter().any(|n| capture.names.contains(n)) {
                break;
            }
            (frames, targets) = (capture.frames, capture.targets);
        }
        let loose = root.is_some_and(|n| self.loose.contains(n));
        let lints = lints_module();
        let tokens = &place.tokens;
        let stmt = match self.mode_at(targets) {
            Mode::Late(block, witness) => {
                let check = self.checks(
                    quote_spanned!(Span::mixed_site()=> #witness.probe()),
                    span,
                    false,
                );
                self.blocks[block].checks.push(check);
                quote_spanned!(Span::mixed_site()=> #witness = #lints::witness(&#tokens);)
            }
            // A place the branch does not bind has its type from outside
            // the group, and one a pattern binds from what it matches:
            // checked deeply; one a `let` binds, only at its head.
            Mode::Now if !loose => self.checks(
                quote_spanned!(Span::mixed_site()=> #lints::probe(&#tokens)),
                span,
                false,
            ),
            Mode::Now => self.checks(
                quote_spanned!(Span::mixed_site()=> #lints::shallow(&#tokens)),
                span,
                false,
            ),
        };
        let frame = match frames.checked_sub(1) {
            Some(i) => &mut self.frames[i],
            None => self.frame(),
        };
        if place.names.iter().any(|n| frame.bound.contains(n)) {
            frame.deferred.push(stmt);
        } else {
            frame.probes.push(stmt);
        }
    }

    /// Checks a value by type where it is computed: evaluated once, where
    /// it was, and handed on unchanged, either through `(match value { v =>
    /// { if false { w = witness(&v); } v } })` (recorded for the
    /// block's late checks) or through `pass_check(value, |v| check(v))`
    /// (checked where it is). `projections` are the fields, indexes and
    /// derefs the user wrote above it (`state.lock().await.tx`), replayed
    /// on its type.
    fn value_at(
        &mut self,
        expr: &mut Expr,
        projections: &[Projection],
        local: bool,
        span: (Span, Span),
        kind: Value,
    ) {
        let site = Span::mixed_site();
        let lints = lints_module();
        let v = Ident::new("errgroup_value", site);
        if let Value::Bound = kind
            && let Some(mut record) = self.late(&v, "probe", span, local)
        {
            let record = match self.replayed(&v, projections) {
                Some(projected) => {
                    record.extend(self.late(&projected, "probe", span, false));
                    unreachable(&record)
                }
                None => recorded(&record),
            };
            let value = scrutinee(expr);
            *expr = Expr::Verbatim(quote_spanned! {site=>
                (match #value {
                    #v => {
                        #record
                        #v
                    }
                })
            });
            return;
        }
        let probe = match kind {
            Value::Bound => quote!(probe),
            Value::Computed => quote!(shallow),
            Value::Function | Value::Name => quote!(function),
        };
        let mut check = self.checks(quote_spanned!(site=> #lints::#probe(&#v)), span, local);
        if let Some(tokens) = self.replayed(&v, projections) {
            check.extend([self.checks(
                quote_spanned!(site=> #lints::shallow(&#tokens)),
                span,
                false,
            )]);
        }
        let value = scrutinee(expr);
        *expr = Expr::Verbatim(match kind {
            // A name is handed on by a generic identity: `.map(drop)` keeps
            // the type parameters its use fixes, and an `&mut` passed where
            // one is expected is reborrowed, not moved.
            Value::Name => {
                quote_spanned!(site=> #lints::pass_check(#value, |#v| { #check }))
            }
            Value::Computed | Value::Function | Value::Bound => {
                let check = unreachable(&check);
                quote_spanned! {site=>
                    (match #value {
                        #v => {
                            #check
                            #v
                        }
                    })
                }
            }
        });
    }

    /// The projections the user wrote above a value (`make().tx`),
    /// replayed on it, up to an index that cannot be replayed.
    fn replayed(&self, v: &Ident, projections: &[Projection]) -> Option<TokenStream> {
        if projections.is_empty() {
            return None;
        }
        let mut tokens = quote!(#v);
        for projection in projections.iter().rev() {
            tokens = match projection {
                Projection::Field(member) => quote!((#tokens).#member),
                Projection::Deref => quote!((*#tokens)),
                Projection::Index(index) => match index_tokens(index, self.krate) {
                    Some((replayed, _)) => replayed(tokens),
                    None => break,
                },
            };
        }
        Some(tokens)
    }

    /// Visits a mention in a value position (an argument, a `let`'s value,
    /// an element): a bare name there may be a function item used as a
    /// value (`.map(drop)`), whose type parameters only the user's use
    /// fixes, so it is handed on with `pass_check`, a generic identity
    /// (an `&mut` passed where one is expected is reborrowed as before).
    fn visit_value_mut(&mut self, expr: &mut Expr) {
        match expr {
            Expr::Path(path) if path.qself.is_none() && path.path.get_ident().is_some() => {
                match name_kind(&path.path) {
                    NameKind::Local | NameKind::Function => {
                        let name = path.path.segments[0].ident.to_string();
                        if self.bound.contains(&name) {
                            self.visit_expr_mut(expr);
                        } else if name != "ctx" {
                            let span = expr_ends(expr);
                            self.value_at(expr, &[], false, span, Value::Name);
                        }
                    }
                    NameKind::Static => self.visit_expr_mut(expr),
                    NameKind::Other => {}
                }
            }
            _ => self.visit_expr_mut(expr),
        }
    }

    /// A place chain (`a.b[i].c`, `*p`) or a value under projections
    /// (`make().tx`): the place is checked whole; the value is checked, and
    /// the projections replayed on its type.
    fn projected(&mut self, expr: &mut Expr, structural: bool) {
        if let Some(place) = place_tokens(expr, self.krate) {
            let span = expr_ends(expr);
            // Index expressions are values the statement evaluates.
            self.indexes(expr);
            self.place(&place, span, structural);
            return;
        }
        self.projected_value(expr, &mut Vec::new(), structural);
    }

    /// The value under projections, checked with them replayed.
    fn projected_value(
        &mut self,
        expr: &mut Expr,
        projections: &mut Vec<Projection>,
        structural: bool,
    ) {
        // A field, an index or a deref needs its base's type.
        let base = structural || !projections.is_empty();
        match expr {
            Expr::Field(field) => {
                projections.push(Projection::Field(field.member.clone()));
                self.projected_value(&mut field.base, projections, true);
            }
            Expr::Index(index) => {
                self.visit_quiet(&mut index.index);
                projections.push(Projection::Index((*index.index).clone()));
                self.projected_value(&mut index.expr, projections, true);
            }
            Expr::Unary(unary) if matches!(unary.op, syn::UnOp::Deref(_)) => {
                projections.push(Projection::Deref);
                self.projected_value(&mut unary.expr, projections, true);
            }
            Expr::Paren(inner) => self.projected_value(&mut inner.expr, projections, base),
            Expr::Call(_) | Expr::MethodCall(_) | Expr::Await(_) | Expr::Try(_) => {
                self.computed(expr, projections, base);
            }
            other => {
                self.structural = base;
                self.visit_expr_mut(other);
            }
        }
    }

    /// A call's, a method call's, an `.await`'s or a `?`'s value, after
    /// what it is computed from.
    fn computed(&mut self, expr: &mut Expr, projections: &[Projection], structural: bool) {
        // Spanned over the user's tokens, before its parts are rewritten:
        // the links of a chain (`make().lock().unwrap()`) over the whole
        // chain, so that their errors are one error.
        let span = self.chain.take().unwrap_or_else(|| expr_ends(expr));
        self.chain = Some(span);
        let bound = std::mem::take(&mut self.bound_value);
        // Read from the user's syntax, before its parts are rewritten.
        let generic = !structural
            && if bound {
                generic_bound(expr)
            } else {
                generic_result(expr)
            };
        // A value no generic call feeds has its type fixed by the code
        // of its own block: it is checked deeply, at the block's end.
        let deep = !empty_container(expr)
            && if bound {
                !generic_bound(expr)
            } else {
                !generic_chain(expr)
            };
        let local = is_local_spawn(expr);
        self.operands(expr);
        if Self::skipped(expr) || generic {
            return;
        }
        let kind = if deep { Value::Bound } else { Value::Computed };
        self.value_at(expr, projections, local, span, kind);
    }

    /// Where a block checks late: the recording of `value`'s type in a
    /// fresh witness (`w = witness(&value);`, for code that never runs),
    /// whose check (`w.probe()` or `w.shallow()`, as `probe` says) goes to
    /// the block's late checks. `None` where nothing checks late.
    fn late(
        &mut self,
        value: &impl ToTokens,
        probe: &str,
        span: (Span, Span),
        local: bool,
    ) -> Option<TokenStream> {
        let Mode::Late(block, witness) = self.mode() else {
            return None;
        };
        let site = Span::mixed_site();
        let lints = lints_module();
        let probe = Ident::new(probe, site);
        let check = self.checks(quote_spanned!(site=> #witness.#probe()), span, local);
        self.blocks[block].checks.push(check);
        Some(quote_spanned!(site=> #witness = #lints::witness(&#value);))
    }

    /// `f(..);` as `match f(..) { v => { if false { w = witness(&v); } } }`
    /// (or `{ if false { loop {} check(&v) } }` where nothing checks late),
    /// with the warnings about code after a `!` allowed on it: the value
    /// is dropped at the end of the statement, as before.
    fn discarded(&mut self, call: &Expr, span: (Span, Span)) -> TokenStream {
        let site = Span::mixed_site();
        let lints = lints_module();
        let local = is_local_spawn(call);
        let v = Ident::new("errgroup_value", site);
        let code = match self.late(&v, "shallow", span, local) {
            Some(record) => recorded(&record),
            None => {
                unreachable(&self.checks(quote_spanned!(site=> #lints::shallow(&#v)), span, local))
            }
        };
        let call = scrutinee(call);
        quote_spanned! {site=>
            #[allow(unreachable_code, unreachable_patterns)]
            match #call {
                #v => { #code }
            }
        }
    }

    /// `f(..)` as a block's value, where `f` may never return: `{
    /// #[allow(..)] let v = f(..); if false { loop {} w = witness(&v); }
    /// v }` would end the temporaries earlier, so the value goes through
    /// a `match` whose arm allows the warnings about code after a `!`.
    fn diverging(&mut self, call: &Expr, span: (Span, Span)) -> TokenStream {
        let site = Span::mixed_site();
        let local = is_local_spawn(call);
        let v = Ident::new("errgroup_value", site);
        let Some(code) = self.late(&v, "probe", span, local) else {
            return call.to_token_stream();
        };
        let code = unreachable(&code);
        let call = scrutinee(call);
        quote_spanned! {site=>
            match #call {
                #[allow(unreachable_code)]
                #v => {
                    #code
                    #v
                }
            }
        }
    }

    fn enter(&mut self, names: Names) {
        self.captures.push(Capture {
            names: names.0.into_iter().collect(),
            frames: self.frames.len(),
            targets: self.targets.len(),
        });
    }

    /// Visits what a quiet operand is computed from; false when it is of
    /// a kind visited as usual.
    fn quietly(&mut self, expr: &mut Expr) -> bool {
        match expr {
            Expr::Path(_) => {}
            Expr::Field(_) | Expr::Index(_) => self.indexes(expr),
            Expr::Call(_) | Expr::MethodCall(_) | Expr::Await(_) | Expr::Try(_) => {
                self.operands(expr);
            }
            _ => return false,
        }
        true
    }

    /// The elements of an array or a tuple, and the value of a `return` or
    /// a `break`: values handed on as they are.
    fn elements(&mut self, expr: &mut Expr) {
        match expr {
            Expr::Array(array) => array.elems.iter_mut().for_each(|e| self.visit_value_mut(e)),
            Expr::Tuple(tuple) => tuple.elems.iter_mut().for_each(|e| self.visit_value_mut(e)),
            Expr::Return(syn::ExprReturn {
                expr: Some(value), ..
            })
            | Expr::Break(syn::ExprBreak {
                expr: Some(value), ..
            }) => self.visit_value_mut(value),
            _ => {}
        }
    }

    /// Visits an operand whose own value needs no check.
    fn visit_quiet(&mut self, expr: &mut Expr) {
        self.quiet = true;
        self.visit_expr_mut(expr);
        self.quiet = false;
    }

    /// Visits an expression whose type rustc resolves where it is.
    fn visit_structural(&mut self, expr: &mut Expr) {
        self.structural = true;
        self.visit_expr_mut(expr);
        self.structural = false;
    }

    /// Visits the index expressions inside a place chain.
    fn indexes(&mut self, expr: &mut Expr) {
        match expr {
            Expr::Field(field) => self.indexes(&mut field.base),
            Expr::Index(index) => {
                self.visit_quiet(&mut index.index);
                self.indexes(&mut index.expr);
            }
            Expr::Unary(unary) => self.indexes(&mut unary.expr),
            Expr::Paren(inner) => self.indexes(&mut inner.expr),
            Expr::Group(inner) => self.indexes(&mut inner.expr),
            _ => {}
        }
    }

    /// Visits what a call, a method call, an `.await` or a `?` is computed
    /// from, without checking its own value.
    fn operands(&mut self, expr: &mut Expr) {
        if !matches!(expr, Expr::MethodCall(_) | Expr::Await(_) | Expr::Try(_)) {
            self.chain = None;
        }
        match expr {
            Expr::Call(call) => {
                if !matches!(&*call.func, Expr::Path(_)) {
                    self.visit_expr_mut(&mut call.func);
                }
                for arg in &mut call.args {
                    self.visit_value_mut(arg);
                }
                if let Expr::Path(path) = &*call.func {
                    self.crate_root_call(path, &*call);
                }
            }
            Expr::MethodCall(call) => {
                self.visit_structural(&mut call.receiver);
                self.chain = None;
                for arg in &mut call.args {
                    self.visit_value_mut(arg);
                }
            }
            Expr::Await(inner) => self.visit_structural(&mut inner.base),
            Expr::Try(inner) => self.visit_structural(&mut inner.expr),
            _ => {}
        }
        self.chain = None;
    }

    /// Whether a computed value is left unchecked: a constructor of the
    /// user's (`Ok(..)`, `Some(..)`, `Wrapper(..)`) only holds values that
    /// are checked themselves, and a call reported by path already has its
    /// error.
    fn skipped(expr: &Expr) -> bool {
        let Expr::Call(call) = expr else { return false };
        let Expr::Path(path) = &*call.func else {
            return false;
        };
        if path.qself.is_none() && !matches!(classify(&path.path), Callee::Other) {
            return true;
        }
        let Some(last) = path.path.segments.last() else {
            return false;
        };
        let name = last.ident.to_string();
        name.starts_with(|c: char| c.is_ascii_uppercase()) || DIVERGING.contains(&name.as_str())
    }

    /// Reports a constructor or spawn written from the crate root.
    fn crate_root_call(&mut self, path: &syn::ExprPath, call: &syn::ExprCall) {
        if path.qself.is_some() {
            return;
        }
        match classify(&path.path) {
            Callee::Constructor(full) if self.channels => {
                self.errors.lint(syn::Error::new_spanned(
                    call,
                    format!(
                        "`{full}` creates a raw channel, which the group does not close when it is cancelled\n{CHANNEL_HELP}"
                    ),
                ));
            }
            Callee::Spawn(full) if self.spawns => {
                self.errors.lint(syn::Error::new_spanned(
                    call,
                    format!(
                        "`{full}` starts a detached task that the group neither waits for nor cancels\n{SPAWN_HELP}"
                    ),
                ));
            }
            _ => {}
        }
    }

    /// An item declared in the branch (`async fn`, an `impl`'s methods): its
    /// body runs as part of the branch, and is checked as one of its own.
    fn item(&mut self, item: &mut syn::Item) {
        let mut outer = (
            std::mem::take(&mut self.frames),
            std::mem::take(&mut self.blocks),
            std::mem::replace(&mut self.targets, vec![None]),
            std::mem::take(&mut self.captures),
        );
        match item {
            syn::Item::Fn(f) => self.visit_block_mut(&mut f.block),
            syn::Item::Impl(i) => {
                for impl_item in &mut i.items {
                    if let syn::ImplItem::Fn(f) = impl_item {
                        self.visit_block_mut(&mut f.block);
                    }
                }
            }
            _ => {}
        }
        std::mem::swap(&mut self.frames, &mut outer.0);
        std::mem::swap(&mut self.blocks, &mut outer.1);
        std::mem::swap(&mut self.targets, &mut outer.2);
        std::mem::swap(&mut self.captures, &mut outer.3);
    }
}

/// What a bare name in an expression is, read from Rust's naming
/// conventions (the macro cannot resolve names).
enum NameKind {
    /// `tx`, `self`: a local, or a function (told apart by type).
    Local,
    /// `tokio::spawn`, `Vec::new`: a function item.
    Function,
    /// `TX`, `config::SENDER`: a static or a constant.
    Static,
    /// `None`, `Unit`, `Self`: a variant, a unit struct, a type.
    Other,
}

fn name_kind(path: &syn::Path) -> NameKind {
    let Some(last) = path.segments.last() else {
        return NameKind::Other;
    };
    let name = last.ident.to_string();
    let name = name.trim_start_matches("r#");
    let upper = name.chars().any(|c| c.is_ascii_uppercase());
    let lower = name.chars().any(|c| c.is_ascii_lowercase());
    if name == "self" || (path.segments.len() == 1 && !upper) {
        NameKind::Local
    } else if name == "Self" || (upper && lower) {
        NameKind::Other
    } else if upper {
        NameKind::Static
    } else {
        NameKind::Function
    }
}

/// Whether a value's type may be a bare type parameter that only later
/// code fixes: a call of a function or method whose result is one
/// (`x.into()`, `iter.collect()`, `Default::default()`), or a `?`'s output
/// (`s.parse()?`; its operand is checked, through the `Result`). Checked
/// only where rustc needs the type too.
fn generic_result(expr: &Expr) -> bool {
    match expr {
        // Its operand is checked, through the `Result` or `Option`.
        Expr::Try(_) => true,
        Expr::MethodCall(call) => GENERIC_RESULTS.contains(&call.method.to_string().as_str()),
        Expr::Call(call) => generic_callee(call),
        _ => false,
    }
}

/// The same for a `let`'s whole value, checked at the block's end: a
/// `?`'s output counts only when a call in its operand's chain returns a
/// type parameter (`let link = connect()?;` is checked, `let n =
/// s.parse()?;` is not).
fn generic_bound(expr: &Expr) -> bool {
    match expr {
        Expr::Try(inner) => generic_chain(&inner.expr),
        expr => generic_result(expr),
    }
}

/// Whether a call in `expr`'s chain of method calls, `.await`s and `?`s
/// returns a type parameter (`s.parse().map_err(f)` does).
fn generic_chain(expr: &Expr) -> bool {
    match expr {
        Expr::MethodCall(call) => {
            GENERIC_RESULTS.contains(&call.method.to_string().as_str())
                || generic_chain(&call.receiver)
        }
        Expr::Call(call) => generic_callee(call),
        Expr::Await(inner) => generic_chain(&inner.base),
        Expr::Try(inner) => generic_chain(&inner.expr),
        Expr::Paren(inner) => generic_chain(&inner.expr),
        _ => false,
    }
}

/// Whether `expr` makes a container whose content only later code may
/// fix (`Vec::new()`, `HashMap::with_capacity(n)`): checked at its head
/// only (its arguments are checked themselves).
fn empty_container(expr: &Expr) -> bool {
    let Expr::Call(call) = expr else { return false };
    let Expr::Path(path) = &*call.func else {
        return false;
    };
    // A turbofish (`Vec::<Sender<u8>>::new()`) gives the content's type.
    path.path.segments.len() > 1
        && path.path.segments.iter().all(|s| s.arguments.is_none())
        && path
            .path
            .segments
            .last()
            .is_some_and(|last| CONTAINERS.contains(&last.ident.to_string().as_str()))
}

fn generic_callee(call: &syn::ExprCall) -> bool {
    match &*call.func {
        Expr::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|last| GENERIC_RESULTS.contains(&last.ident.to_string().as_str())),
        _ => false,
    }
}

/// `f(..)` with `f` a bare name.
fn bare_call(expr: &Expr) -> bool {
    matches!(expr, Expr::Call(call) if matches!(&*call.func, Expr::Path(p)
        if p.qself.is_none() && p.path.segments.len() == 1))
}

/// `expr` as a `match` scrutinee: in parentheses when it starts with a
/// struct literal (`Ok {} (())`), which a scrutinee may not. Printed
/// straight into the `match` (a stream of its own, added to it, would be
/// a round trip of its tokens over the proc-macro bridge).
fn scrutinee(expr: &Expr) -> Scrutinee<'_> {
    Scrutinee(expr)
}

struct Scrutinee<'a>(&'a Expr);

impl ToTokens for Scrutinee<'_> {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        fn struct_first(expr: &Expr) -> bool {
            match expr {
                Expr::Struct(_) => true,
                Expr::Call(e) => struct_first(&e.func),
                Expr::MethodCall(e) => struct_first(&e.receiver),
                Expr::Field(e) => struct_first(&e.base),
                Expr::Index(e) => struct_first(&e.expr),
                Expr::Await(e) => struct_first(&e.base),
                Expr::Try(e) => struct_first(&e.expr),
                Expr::Cast(e) => struct_first(&e.expr),
                Expr::Binary(e) => struct_first(&e.left),
                _ => false,
            }
        }
        if struct_first(self.0) {
            let expr = self.0.to_token_stream();
            quote::TokenStreamExt::append(tokens, Group::new(Delimiter::Parenthesis, expr));
        } else {
            self.0.to_tokens(tokens);
        }
    }
}

/// Whether a call starts a local task (`spawn_local`): its future need not
/// be `Send`, and the error suggests what takes one.
fn is_local_spawn(expr: &Expr) -> bool {
    match expr {
        Expr::Call(call) => matches!(&*call.func, Expr::Path(p)
            if p.path.segments.last().is_some_and(|s| s.ident == "spawn_local")),
        Expr::MethodCall(call) => call.method == "spawn_local",
        _ => false,
    }
}

/// The `use` that brings the checks' methods into scope: once, around the
/// whole expansion (an item makes its block a scope of its own, which
/// every method call under it then searches).
fn imports(krate: &Krate) -> TokenStream {
    let private = krate.private(Span::mixed_site());
    let lints = lints_module();
    quote_spanned! {Span::mixed_site()=>
        use #private::lints::{self as #lints, via::*};
    }
}

/// A punctuation character alone, spanned at `span`.
fn punct(ch: char, span: Span) -> proc_macro2::Punct {
    let mut punct = proc_macro2::Punct::new(ch, proc_macro2::Spacing::Alone);
    punct.set_span(span);
    punct
}

/// A group spanned at `span`, as `quote_spanned!` makes one.
fn group(delimiter: Delimiter, stream: TokenStream, span: Span) -> Group {
    let mut group = Group::new(delimiter, stream);
    group.set_span(span);
    group
}

/// `errgroup_lints`, the runtime's `lints` module as `imports` names it
/// for the expansion's own (mixed-site) tokens: shorter to write, resolve
/// and hash than its path, in every check.
fn lints_module() -> Ident {
    Ident::new("errgroup_lints", Span::mixed_site())
}

/// The first and the last token `expr` prints as: read from the syntax
/// tree for the shapes a check spans most (paths, calls, method calls,
/// `.await`s, `?`s, fields), printed and searched for the others. Printing
/// costs a round trip of every token over the proc-macro bridge, a cost in
/// every build, the macro being unoptimized in a dev profile.
fn expr_ends(expr: &Expr) -> (Span, Span) {
    match (first_span(expr), last_span(expr)) {
        (Some(first), Some(last)) => (first, last),
        _ => ends(expr.to_token_stream()),
    }
}

/// The span of the first token `expr` prints as, for the shapes
/// [`expr_ends`] reads from the tree (never parenthesized by syn's
/// printer where they stand).
fn first_span(expr: &Expr) -> Option<Span> {
    match expr {
        Expr::Path(path) if path.attrs.is_empty() && plain_path(path) => {
            Some(match &path.path.leading_colon {
                Some(colon) => colon.spans[0],
                None => path.path.segments.first()?.ident.span(),
            })
        }
        Expr::Call(call) if call.attrs.is_empty() && matches!(&*call.func, Expr::Path(_)) => {
            first_span(&call.func)
        }
        Expr::MethodCall(call)
            if call.attrs.is_empty() && !matches!(&*call.receiver, Expr::Lit(_)) =>
        {
            first_span(&call.receiver)
        }
        Expr::Await(e) if e.attrs.is_empty() && !matches!(&*e.base, Expr::Lit(_)) => {
            first_span(&e.base)
        }
        Expr::Try(e) if e.attrs.is_empty() => first_span(&e.expr),
        Expr::Field(e) if e.attrs.is_empty() && !matches!(&*e.base, Expr::Lit(_)) => {
            first_span(&e.base)
        }
        _ => None,
    }
}

/// The span of the last token `expr` prints as (see [`first_span`]): of a
/// printed group, its closing delimiter's, as [`ends`] reads it.
fn last_span(expr: &Expr) -> Option<Span> {
    match expr {
        Expr::Path(path) if plain_path(path) => Some(path.path.segments.last()?.ident.span()),
        Expr::Call(call) => Some(printed_close(call.paren_token.span)),
        Expr::MethodCall(call) => Some(printed_close(call.paren_token.span)),
        Expr::Await(e) => Some(e.await_token.span),
        Expr::Try(e) => Some(e.question_token.spans[0]),
        Expr::Field(e) => Some(match &e.member {
            syn::Member::Named(ident) => ident.span(),
            syn::Member::Unnamed(index) => index.span,
        }),
        _ => None,
    }
}

/// A path without `<T as Trait>::` or generic arguments: its tokens are
/// its `::`s and identifiers.
fn plain_path(path: &syn::ExprPath) -> bool {
    path.qself.is_none() && path.path.segments.iter().all(|s| s.arguments.is_none())
}

/// The closing delimiter's span of a group syn prints from `span`: it
/// makes the group and sets its span to the whole (`token::printing::delim`).
fn printed_close(span: proc_macro2::extra::DelimSpan) -> Span {
    let mut group = Group::new(Delimiter::Parenthesis, TokenStream::new());
    group.set_span(span.join());
    group.span_close()
}

/// The first and the last token of `tokens`.
fn ends(tokens: TokenStream) -> (Span, Span) {
    let mut first = None;
    let mut last = None;
    for tree in tokens {
        let span = match &tree {
            TokenTree::Group(group) => group.span_close(),
            tree => tree.span(),
        };
        first.get_or_insert_with(|| match &tree {
            TokenTree::Group(group) => group.span_open(),
            tree => tree.span(),
        });
        last = Some(span);
    }
    let first = first.unwrap_or_else(Span::call_site);
    (first, last.unwrap_or(first))
}

/// A place expression rebuilt for a probe, and the names it reads.
struct Place {
    tokens: TokenStream,
    names: Vec<String>,
    /// False when an index could not be replayed: `tokens` is the
    /// collection, and no projection above it can be applied.
    exact: bool,
}

/// A place expression that can be borrowed without evaluating anything
/// but `Deref` and `Index`: `x`, `self`, `TX`, `x.field`, `(*x).field`,
/// `x[0]`, `x[i]`, `x[&key]`.
fn place_tokens(expr: &Expr, krate: &Krate) -> Option<Place> {
    match expr {
        Expr::Path(path) if path.qself.is_none() => {
            if !matches!(name_kind(&path.path), NameKind::Local | NameKind::Static) {
                return None;
            }
            let names = match path.path.get_ident() {
                Some(ident) => vec![ident.to_string()],
                None => Vec::new(),
            };
            Some(Place {
                tokens: quote!(#path),
                names,
                exact: true,
            })
        }
        Expr::Paren(inner) => place_tokens(&inner.expr, krate),
        Expr::Group(inner) => place_tokens(&inner.expr, krate),
        Expr::Field(field) => {
            let base = place_tokens(&field.base, krate)?;
            Some(project(base, |tokens| {
                let member = &field.member;
                quote!((#tokens).#member)
            }))
        }
        Expr::Unary(unary) if matches!(unary.op, syn::UnOp::Deref(_)) => {
            let base = place_tokens(&unary.expr, krate)?;
            Some(project(base, |tokens| quote!((*#tokens))))
        }
        Expr::Index(index) => {
            let mut base = place_tokens(&index.expr, krate)?;
            if !base.exact {
                return Some(base);
            }
            match index_tokens(&index.index, krate) {
                Some((replayed, names)) => {
                    base.names.extend(names);
                    Some(project(base, replayed))
                }
                None => Some(Place {
                    exact: false,
                    ..base
                }),
            }
        }
        _ => None,
    }
}

fn project(place: Place, f: impl FnOnce(TokenStream) -> TokenStream) -> Place {
    if place.exact {
        Place {
            tokens: f(place.tokens),
            ..place
        }
    } else {
        place
    }
}

type Replay = Box<dyn Fn(TokenStream) -> TokenStream>;

/// How `collection[index]` is replayed in a probe, and the names the index
/// reads: a literal as written; a name or `&place` by its type only, so it
/// is neither evaluated nor moved again.
fn index_tokens(index: &Expr, krate: &Krate) -> Option<(Replay, Vec<String>)> {
    match index {
        Expr::Lit(lit) => {
            let lit = lit.clone();
            Some((Box::new(move |tokens| quote!((#tokens)[#lit])), Vec::new()))
        }
        Expr::Paren(inner) => index_tokens(&inner.expr, krate),
        Expr::Group(inner) => index_tokens(&inner.expr, krate),
        Expr::Path(_) | Expr::Reference(_) => {
            let place = match index {
                Expr::Reference(reference) => {
                    let inner = place_tokens(&reference.expr, krate).filter(|p| p.exact)?;
                    let and = reference.and_token;
                    let mutability = reference.mutability;
                    Place {
                        tokens: {
                            let t = inner.tokens;
                            quote!(#and #mutability #t)
                        },
                        ..inner
                    }
                }
                path => place_tokens(path, krate)?,
            };
            let index = place.tokens;
            let site = Span::mixed_site();
            let lints = lints_module();
            Some((
                Box::new(
                    move |tokens| quote_spanned!(site=> (*(#tokens).errgroup_index(#lints::probe(&#index)))),
                ),
                place.names,
            ))
        }
        _ => None,
    }
}

/// One step from a receiver down to the value it is computed from.
enum Projection {
    Field(syn::Member),
    Deref,
    Index(Expr),
}

/// The names a pattern binds.
#[derive(Default)]
struct Names(Vec<String>);

impl<'ast> Visit<'ast> for Names {
    fn visit_pat_ident(&mut self, node: &'ast syn::PatIdent) {
        self.0.push(node.ident.to_string());
        visit::visit_pat_ident(self, node);
    }
}

/// The names a branch binds by a `let`, as a closure's parameters, or
/// from a value a generic call feeds (see `Linter::loose`).
#[derive(Default)]
struct Loose(Vec<String>);

impl Loose {
    fn pattern(&mut self, pat: &Pat) {
        let mut names = Names::default();
        names.visit_pat(pat);
        self.0.extend(names.0);
    }

    /// The names `pats` bind from `value`, if a generic call feeds it.
    fn fed<'p>(&mut self, value: &Expr, pats: impl IntoIterator<Item = &'p Pat>) {
        if generic_chain(value) {
            for pat in pats {
                self.pattern(pat);
            }
        }
    }
}

impl<'ast> Visit<'ast> for Loose {
    fn visit_local(&mut self, node: &'ast syn::Local) {
        self.pattern(&node.pat);
        visit::visit_local(self, node);
    }

    // Names bound from a value a generic call feeds (`if let Ok(n) =
    // s.parse()`): their types may come from after the group too.
    fn visit_expr_let(&mut self, node: &'ast syn::ExprLet) {
        self.fed(&node.expr, [&*node.pat]);
        visit::visit_expr_let(self, node);
    }

    fn visit_expr_match(&mut self, node: &'ast syn::ExprMatch) {
        self.fed(&node.expr, node.arms.iter().map(|arm| &arm.pat));
        visit::visit_expr_match(self, node);
    }

    fn visit_expr_for_loop(&mut self, node: &'ast syn::ExprForLoop) {
        self.fed(&node.expr, [&*node.pat]);
        visit::visit_expr_for_loop(self, node);
    }

    fn visit_expr_closure(&mut self, node: &'ast syn::ExprClosure) {
        for input in &node.inputs {
            self.pattern(input);
        }
        visit::visit_expr_closure(self, node);
    }
}

/// `{ if false { probes } body }` when the frame has probes: a block, so
/// that what reads the body's syntax (`never_ok.rs`) still sees its tail.
fn wrap(body: &mut Expr, frame: Frame) {
    if let Some(probe) = probe_stmt(frame) {
        let inner = std::mem::replace(body, Expr::Verbatim(TokenStream::new()));
        *body = Expr::Block(syn::ExprBlock {
            attrs: Vec::new(),
            label: None,
            block: Block {
                brace_token: syn::token::Brace::default(),
                stmts: vec![
                    Stmt::Expr(Expr::Verbatim(probe), None),
                    Stmt::Expr(inner, None),
                ],
            },
        });
    }
}

/// `if false { loop {} code }`: code that never runs, which rustc
/// type-checks (the checks' errors come from there) but the borrow checker
/// never reaches, as nothing runs after `loop {}`.
///
/// Its one `allow` is for the user-spanned tokens after `loop {}`: rustc
/// and clippy report nothing on the mixed-site ones (an external macro's),
/// and every lint attribute costs each build a lint-level look-up per
/// node under it (an `allow(unused)` per block was a fifth of a touched
/// rebuild's instructions).
fn unreachable(code: &TokenStream) -> TokenStream {
    let site = Span::mixed_site();
    quote_spanned! {site=>
        #[allow(unreachable_code)]
        if false {
            loop {}
            #code
        }
    }
}

/// `if false { code }`: the recording of a value's type in a witness,
/// `w = witness(&v);`, where `v` is the value's own fresh binding, which
/// nothing else borrows or moves there. The borrow checker sees it (`w`
/// is assigned on a path that never runs, and is `let mut`, as a `while`
/// condition or a macro's repeated argument records a value again); the
/// witness's checks are after a `loop {}` of their own. Without `loop {}`
/// there is no unreachable code, so no `allow` (and no lint-level look-up
/// per node under it).
fn recorded(code: &TokenStream) -> TokenStream {
    quote_spanned! {Span::mixed_site()=>
        if false {
            #code
        }
    }
}

fn probe_stmt(frame: Frame) -> Option<TokenStream> {
    if frame.probes.is_empty() {
        return None;
    }
    let probes = frame.probes;
    Some(unreachable(&quote!(#(#probes)*)))
}

impl VisitMut for Linter<'_> {
    fn visit_block_mut(&mut self, block: &mut Block) {
        let index = self.blocks.len();
        self.blocks.push(Late::default());
        let count = block.stmts.len();
        let mut stmts = Vec::with_capacity(count + 2);
        let mut checks_at = 0;
        for (i, mut stmt) in std::mem::take(&mut block.stmts).into_iter().enumerate() {
            let last = i + 1 == count;
            let target = if last {
                self.targets.last().copied().flatten()
            } else {
                Some(index)
            };
            if last {
                checks_at = stmts.len();
            }
            self.targets.push(target);
            self.frames.push(Frame::default());
            match &mut stmt {
                // A `let`'s own bindings are not in scope in its initializer.
                Stmt::Local(local) => {
                    if let Some(init) = &mut local.init {
                        self.bound_value = matches!(
                            &*init.expr,
                            Expr::Call(_) | Expr::MethodCall(_) | Expr::Await(_) | Expr::Try(_)
                        );
                        self.visit_value_mut(&mut init.expr);
                        self.bound_value = false;
                        if let Some((_, diverge)) = &mut init.diverge {
                            self.visit_expr_mut(diverge);
                        }
                    }
                }
                Stmt::Item(item) => self.item(item),
                // A bare-named function called for its effect may never
                // return (`fatal("..");`): its value is checked in a
                // statement of its own kind, whose warnings about what
                // follows a `!` are allowed.
                // An `.await` whose output is dropped: the future is
                // checked, its output (dropped at once) is not.
                Stmt::Expr(Expr::Await(inner), Some(_)) => {
                    self.visit_structural(&mut inner.base);
                }
                // As a block's value, it is checked at the enclosing
                // block's end, through a `match` of the same kind. Not in
                // a body's last statement: a `!` there (`if ok { run() }
                // else { fatal("..") }`) takes its type from what follows.
                Stmt::Expr(expr, None) if bare_call(expr) && target.is_some() => {
                    let span = expr_ends(expr);
                    self.operands(expr);
                    if !Self::skipped(expr) {
                        *expr = Expr::Verbatim(self.diverging(expr, span));
                    }
                }
                Stmt::Expr(expr, semi) if bare_call(expr) => {
                    let span = expr_ends(expr);
                    self.operands(expr);
                    if semi.is_some() && !Self::skipped(expr) {
                        *expr = Expr::Verbatim(self.discarded(expr, span));
                        *semi = None;
                    }
                }
                stmt => visit_mut::visit_stmt_mut(self, stmt),
            }
            let frame = self.frames.pop().unwrap_or_default();
            self.targets.pop();
            if let Some(probe) = probe_stmt(frame) {
                stmts.push(Stmt::Expr(Expr::Verbatim(probe), None));
            }
            stmts.push(stmt);
        }
        let late = self.blocks.pop().unwrap_or_default();
        if !late.checks.is_empty() {
            let checks = late.checks;
            stmts.insert(
                checks_at,
                Stmt::Expr(Expr::Verbatim(unreachable(&quote!(#(#checks)*))), None),
            );
            let decls = late.decls;
            stmts.insert(0, Stmt::Expr(Expr::Verbatim(quote!(#(#decls)*)), None));
        }
        block.stmts = stmts;
    }

    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        let structural = std::mem::replace(&mut self.structural, false);
        if std::mem::replace(&mut self.quiet, false) && self.quietly(expr) {
            return;
        }
        match expr {
            Expr::Binary(binary) => {
                self.visit_quiet(&mut binary.left);
                self.visit_quiet(&mut binary.right);
            }
            Expr::Unary(unary) if !matches!(unary.op, syn::UnOp::Deref(_)) => {
                self.visit_quiet(&mut unary.expr);
            }
            Expr::Cast(cast) => self.visit_quiet(&mut cast.expr),
            Expr::Range(range) => {
                if let Some(start) = &mut range.start {
                    self.visit_quiet(start);
                }
                if let Some(end) = &mut range.end {
                    self.visit_quiet(end);
                }
            }
            Expr::Path(path) => match name_kind(&path.path) {
                NameKind::Local | NameKind::Static if path.qself.is_none() => {
                    self.projected(expr, structural);
                }
                NameKind::Other => {}
                _ => {
                    let name = path.path.segments.last().map(|s| s.ident.to_string());
                    if !name.is_some_and(|n| GENERIC_RESULTS.contains(&n.as_str())) {
                        let span = expr_ends(expr);
                        self.value_at(expr, &[], false, span, Value::Function);
                    }
                }
            },
            Expr::Field(_) | Expr::Index(_) => self.projected(expr, structural),
            Expr::Unary(unary) if matches!(unary.op, syn::UnOp::Deref(_)) => {
                self.projected(expr, true);
            }
            Expr::Paren(inner) => {
                self.structural = structural;
                self.visit_expr_mut(&mut inner.expr);
            }
            Expr::Reference(reference) => {
                self.structural = structural;
                self.visit_expr_mut(&mut reference.expr);
            }
            Expr::Call(_) | Expr::MethodCall(_) | Expr::Await(_) | Expr::Try(_) => {
                self.computed(expr, &[], structural);
            }
            Expr::ForLoop(node) => {
                self.visit_structural(&mut node.expr);
                self.visit_block_mut(&mut node.body);
            }
            Expr::Match(node) => {
                self.visit_structural(&mut node.expr);
                for arm in &mut node.arms {
                    self.visit_arm_mut(arm);
                }
            }
            Expr::Assign(assign) => {
                // The place assigned to is not read (it may not be
                // initialized yet): only what its indexes evaluate is.
                if place_tokens(&assign.left, self.krate).is_some() {
                    self.indexes(&mut assign.left);
                } else {
                    self.visit_expr_mut(&mut assign.left);
                }
                self.visit_expr_mut(&mut assign.right);
            }
            Expr::Array(_) | Expr::Tuple(_) | Expr::Return(_) | Expr::Break(_) => {
                self.elements(expr);
            }
            Expr::Async(node) => {
                let mut names = Names::default();
                names.visit_block(&node.block);
                self.enter(names);
                self.targets.push(None);
                self.visit_block_mut(&mut node.block);
                self.targets.pop();
                self.captures.pop();
            }
            Expr::Closure(closure) => {
                let mut names = Names::default();
                for input in &closure.inputs {
                    names.visit_pat(input);
                }
                names.visit_expr(&closure.body);
                self.enter(names);
                self.body(&mut closure.body);
                self.captures.pop();
            }
            Expr::Macro(node) => self.lint_macro(&mut node.mac),
            _ => visit_mut::visit_expr_mut(self, expr),
        }
    }

    // The guard (part of the pattern) and the body see the pattern's
    // bindings: the checks of both go at the top of the body.
    fn visit_arm_mut(&mut self, arm: &mut syn::Arm) {
        self.frames.push(Frame::default());
        self.bind(&arm.pat);
        self.visit_pat_mut(&mut arm.pat);
        self.visit_expr_mut(&mut arm.body);
        let mut frame = self.frames.pop().unwrap_or_default();
        frame.probes.append(&mut frame.deferred);
        wrap(&mut arm.body, frame);
    }

    fn visit_expr_if_mut(&mut self, node: &mut syn::ExprIf) {
        self.condition(&mut node.cond, &mut node.then_branch);
        if let Some((_, else_branch)) = &mut node.else_branch {
            self.visit_expr_mut(else_branch);
        }
    }

    fn visit_expr_while_mut(&mut self, node: &mut syn::ExprWhile) {
        self.condition(&mut node.cond, &mut node.body);
    }

    fn visit_expr_let_mut(&mut self, node: &mut syn::ExprLet) {
        self.visit_structural(&mut node.expr);
        self.bind(&node.pat);
    }

    fn visit_item_mut(&mut self, item: &mut syn::Item) {
        self.item(item);
    }

    fn visit_stmt_macro_mut(&mut self, node: &mut syn::StmtMacro) {
        self.lint_macro(&mut node.mac);
    }

    // Macros in patterns and types hold no code that runs.
    fn visit_macro_mut(&mut self, _: &mut syn::Macro) {}
}

impl Linter<'_> {
    /// Visits the condition of an `if` or a `while`, then its body; the
    /// recordings of names the condition binds go at the top of the body.
    fn condition(&mut self, cond: &mut Expr, body: &mut Block) {
        let frame = self.frame();
        let bound = frame.bound.len();
        let outer = std::mem::take(&mut frame.deferred);
        self.visit_quiet(cond);
        let frame = self.frame();
        let deferred = std::mem::replace(&mut frame.deferred, outer);
        frame.bound.truncate(bound);
        self.visit_block_mut(body);
        let deferred = Frame {
            probes: deferred,
            ..Frame::default()
        };
        if let Some(probe) = probe_stmt(deferred) {
            body.stmts
                .insert(0, Stmt::Expr(Expr::Verbatim(probe), None));
        }
    }
}

/// A macro body, split into what is linted and what is kept as written.
enum Piece {
    Tokens(TokenStream),
    /// An expression evaluated where the macro is (a `join!` argument, a
    /// `select!` future): its probes go before the enclosing statement.
    Expr(Expr),
    /// A `select!` handler, with the names its arm's pattern binds.
    Handler(Expr),
    Stmts(Vec<Stmt>),
}

impl Linter<'_> {
    /// Lints the body of a macro invocation when it parses as Rust (see
    /// the module docs); leaves it untouched otherwise, or when nothing in
    /// it needs a check.
    fn lint_macro(&mut self, mac: &mut syn::Macro) {
        let Some(name) = mac.path.segments.last().map(|s| s.ident.to_string()) else {
            return;
        };
        if NOT_CODE.contains(&name.as_str()) {
            return;
        }
        let mut pieces = Vec::new();
        let mut rest = mac.tokens.clone();
        // `biased;` opens tokio's `select!` and `join!`.
        let mut trees = rest.clone().into_iter();
        if let (Some(TokenTree::Ident(biased)), Some(TokenTree::Punct(semi))) =
            (trees.next(), trees.next())
        {
            if biased == "biased" && semi.as_char() == ';' {
                pieces.push(Piece::Tokens(quote!(#biased #semi)));
                rest = trees.collect();
            }
        }
        let select = name == "select" || name == "select_biased";
        let parsed = select
            .then(|| parse_select.parse2(rest.clone()).ok())
            .flatten()
            .or_else(|| parse_exprs.parse2(rest.clone()).ok())
            .or_else(|| parse_repeat.parse2(rest.clone()).ok())
            .or_else(|| parse_stmts.parse2(rest).ok());
        let Some(parsed) = parsed else { return };
        pieces.extend(parsed);
        let before: TokenStream = pieces.iter().map(piece_tokens).collect();
        for piece in &mut pieces {
            match piece {
                Piece::Tokens(_) => {}
                Piece::Expr(expr) => self.visit_expr_mut(expr),
                Piece::Handler(expr) => {
                    self.frames.push(Frame::default());
                    self.visit_expr_mut(expr);
                    let frame = self.frames.pop().unwrap_or_default();
                    wrap(expr, frame);
                }
                // No statement is added among the macro's own (`tokio::pin!`
                // takes `let`s only): the checks go before the enclosing
                // statement, and those of names the body binds are dropped.
                Piece::Stmts(stmts) => {
                    self.frames.push(Frame::default());
                    for stmt in stmts {
                        match stmt {
                            Stmt::Local(local) => {
                                if let Some(init) = &mut local.init {
                                    self.visit_expr_mut(&mut init.expr);
                                    if let Some((_, diverge)) = &mut init.diverge {
                                        self.visit_expr_mut(diverge);
                                    }
                                }
                                self.bind(&local.pat);
                            }
                            Stmt::Item(_) => {}
                            stmt => visit_mut::visit_stmt_mut(self, stmt),
                        }
                    }
                    let inner = self.frames.pop().unwrap_or_default();
                    self.frame().probes.extend(inner.probes);
                }
            }
        }
        let after: TokenStream = pieces.iter().map(piece_tokens).collect();
        if after.to_string() != before.to_string() {
            mac.tokens = after;
        }
    }
}

fn piece_tokens(piece: &Piece) -> TokenStream {
    match piece {
        Piece::Tokens(tokens) => tokens.clone(),
        Piece::Expr(expr) | Piece::Handler(expr) => expr.to_token_stream(),
        Piece::Stmts(stmts) => quote!(#(#stmts)*),
    }
}

/// `a, b, c` (`join!`, `vec!`, `assert!`, `format!`, ..).
fn parse_exprs(input: ParseStream) -> syn::Result<Vec<Piece>> {
    let exprs = Punctuated::<Expr, Token![,]>::parse_terminated(input)?;
    let mut pieces = Vec::new();
    for pair in exprs.into_pairs() {
        let (expr, comma) = pair.into_tuple();
        pieces.push(Piece::Expr(expr));
        if let Some(comma) = comma {
            pieces.push(Piece::Tokens(quote!(#comma)));
        }
    }
    Ok(pieces)
}

/// `value; count` (`vec![x; n]`).
fn parse_repeat(input: ParseStream) -> syn::Result<Vec<Piece>> {
    let value: Expr = input.parse()?;
    let semi: Token![;] = input.parse()?;
    let count: Expr = input.parse()?;
    Ok(vec![
        Piece::Expr(value),
        Piece::Tokens(quote!(#semi)),
        Piece::Expr(count),
    ])
}

fn parse_stmts(input: ParseStream) -> syn::Result<Vec<Piece>> {
    Ok(vec![Piece::Stmts(Block::parse_within(input)?)])
}

/// The arms of tokio's and futures' `select!`: `pattern = future, if
/// guard => handler,`, and `else` / `default` / `complete => handler,`.
fn parse_select(input: ParseStream) -> syn::Result<Vec<Piece>> {
    let mut pieces = Vec::new();
    while !input.is_empty() {
        if input.peek(Token![else]) || (input.peek(syn::Ident) && input.peek2(Token![=>])) {
            let keyword: TokenTree = input.parse()?;
            let arrow: Token![=>] = input.parse()?;
            pieces.push(Piece::Tokens(quote!(#keyword #arrow)));
        } else {
            let pat = Pat::parse_multi_with_leading_vert(input)?;
            let eq: Token![=] = input.parse()?;
            pieces.push(Piece::Tokens(quote!(#pat #eq)));
            pieces.push(Piece::Expr(input.parse()?));
            if input.peek(Token![,]) && input.peek2(Token![if]) {
                let comma: Token![,] = input.parse()?;
                let if_token: Token![if] = input.parse()?;
                pieces.push(Piece::Tokens(quote!(#comma #if_token)));
                pieces.push(Piece::Expr(input.parse()?));
            }
            let arrow: Token![=>] = input.parse()?;
            pieces.push(Piece::Tokens(quote!(#arrow)));
        }
        if input.peek(syn::token::Brace) {
            let block: Block = input.parse()?;
            pieces.push(Piece::Handler(Expr::Block(syn::ExprBlock {
                attrs: Vec::new(),
                label: None,
                block,
            })));
            if input.peek(Token![,]) {
                let comma: Token![,] = input.parse()?;
                pieces.push(Piece::Tokens(quote!(#comma)));
            }
        } else {
            pieces.push(Piece::Handler(input.parse()?));
            if !input.is_empty() {
                let comma: Token![,] = input.parse()?;
                pieces.push(Piece::Tokens(quote!(#comma)));
            }
        }
    }
    Ok(pieces)
}
