//! A branch's attributes, read once into [`Attrs`]: its mode (`#[spawn]`,
//! `#[blocking]`, with the names the branch clones: `#[spawn(clone(db))]`)
//! and the checks it opts out of (`#[allow(raw_channel)]`,
//! `#[allow(detached_spawn)]`). Unknown, repeated and conflicting
//! attributes, and a capture list that is not a list of names, are
//! reported here.

use proc_macro2::Span;
use syn::parse::ParseStream;
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, Ident, Meta, MetaList, Token};

use crate::errors::Errors;
use crate::parse::closest;

/// Where a branch runs.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Polled in the calling task (no attribute).
    #[default]
    InTask,
    /// `#[spawn]`: a tokio task.
    Spawn,
    /// `#[blocking]`: synchronous code on tokio's blocking pool.
    Blocking,
}

/// What the attributes of one branch ask for.
#[derive(Default)]
pub(crate) struct Attrs {
    pub(crate) mode: Mode,
    /// The mode attribute's name (`spawn`, `blocking`): a moving branch's
    /// `move` is spanned there, so rustc's "value moved here" points at it.
    pub(crate) mode_span: Option<Span>,
    /// `clone(a, b)` on `#[spawn]` or `#[blocking]`: the names cloned into
    /// the branch before it moves them, each as written.
    pub(crate) clones: Vec<Ident>,
    /// `#[allow(raw_channel)]`.
    pub(crate) allow_raw_channel: bool,
    /// `#[allow(detached_spawn)]`.
    pub(crate) allow_detached_spawn: bool,
}

const ATTRS: &str =
    "`#[spawn]`, `#[blocking]`, `#[allow(raw_channel)]` and `#[allow(detached_spawn)]`";

/// One attribute the macro knows.
enum Attr<'a> {
    /// `#[spawn]`, or `#[spawn(..)]` with its options.
    Spawn(Option<&'a MetaList>),
    Blocking(Option<&'a MetaList>),
    AllowRawChannel,
    AllowDetachedSpawn,
}

impl Attr<'_> {
    fn read(attr: &Attribute) -> Option<Attr<'_>> {
        match &attr.meta {
            Meta::Path(path) if path.is_ident("spawn") => Some(Attr::Spawn(None)),
            Meta::Path(path) if path.is_ident("blocking") => Some(Attr::Blocking(None)),
            Meta::List(list) if list.path.is_ident("spawn") => Some(Attr::Spawn(Some(list))),
            Meta::List(list) if list.path.is_ident("blocking") => Some(Attr::Blocking(Some(list))),
            Meta::List(allow) if allow.path.is_ident("allow") => {
                let lint: syn::Ident = allow.parse_args().ok()?;
                if lint == "raw_channel" {
                    Some(Attr::AllowRawChannel)
                } else if lint == "detached_spawn" {
                    Some(Attr::AllowDetachedSpawn)
                } else {
                    None
                }
            }
            _ => None,
        }
    }
}

impl Attrs {
    /// Reads a branch's attributes, reporting each one that is unknown,
    /// given twice, or conflicts with an earlier one.
    pub(crate) fn read(attrs: &[Attribute], errors: &mut Errors) -> Attrs {
        let mut read = Attrs::default();
        for attr in attrs {
            match Attr::read(attr) {
                Some(Attr::Spawn(options)) => {
                    read.set_mode(Mode::Spawn, attr, errors);
                    read.options(options, errors);
                }
                Some(Attr::Blocking(options)) => {
                    read.set_mode(Mode::Blocking, attr, errors);
                    read.options(options, errors);
                }
                Some(Attr::AllowRawChannel) => {
                    set_flag(
                        &mut read.allow_raw_channel,
                        "allow(raw_channel)",
                        attr,
                        errors,
                    );
                }
                Some(Attr::AllowDetachedSpawn) => {
                    set_flag(
                        &mut read.allow_detached_spawn,
                        "allow(detached_spawn)",
                        attr,
                        errors,
                    );
                }
                None => unknown(attr, errors),
            }
        }
        read
    }

    fn set_mode(&mut self, mode: Mode, attr: &Attribute, errors: &mut Errors) {
        match self.mode {
            Mode::InTask => {
                self.mode = mode;
                self.mode_span = attr.path().get_ident().map(Ident::span);
            }
            set if set == mode => duplicate(
                attr,
                if mode == Mode::Spawn {
                    "spawn"
                } else {
                    "blocking"
                },
                errors,
            ),
            _ => errors.push(syn::Error::new_spanned(
                attr,
                "a branch cannot be both `#[spawn]` and `#[blocking]`\nhelp: keep `#[blocking]` for synchronous CPU-bound work, or `#[spawn]` for an async task on another worker",
            )),
        }
    }
}

impl Attrs {
    /// The options of `#[spawn(..)]` / `#[blocking(..)]`: `clone(a, b)`.
    fn options(&mut self, options: Option<&MetaList>, errors: &mut Errors) {
        let Some(list) = options else {
            return;
        };
        let parsed = list.parse_args_with(|input: ParseStream| {
            Punctuated::<Meta, Token![,]>::parse_terminated(input)
        });
        let options = match parsed {
            Ok(options) => options,
            Err(e) => {
                errors.push(syn::Error::new(
                    e.span(),
                    format!("expected `clone(name, ..)`\nhelp: {CLONE_HELP}"),
                ));
                return;
            }
        };
        if options.is_empty() {
            errors.push(syn::Error::new_spanned(
                list,
                format!(
                    "empty options\nhelp: write `#[{name}]`, or list the names the branch clones: `#[{name}(clone(db, cfg))]`",
                    name = path_name(list)
                ),
            ));
        }
        let mut seen_clone = false;
        for option in options {
            match option {
                Meta::List(clone) if clone.path.is_ident("clone") => {
                    if seen_clone {
                        errors.push(syn::Error::new_spanned(
                            &clone.path,
                            "`clone(..)` is given twice\nhelp: list every name in one `clone(..)`",
                        ));
                    }
                    seen_clone = true;
                    self.clone_list(&clone, errors);
                }
                other => {
                    let help = match other.path().get_ident() {
                        Some(name) if name == "clone" => {
                            "write it as a list: `clone(db, cfg)`".to_owned()
                        }
                        Some(name) if closest(&name.to_string(), &["clone"]).is_some() => {
                            "did you mean `clone(..)`?".to_owned()
                        }
                        _ => CLONE_HELP.to_owned(),
                    };
                    errors.push(syn::Error::new_spanned(
                        other,
                        format!("unknown option of `#[{}]`\nhelp: {help}", path_name(list)),
                    ));
                }
            }
        }
    }

    /// The names of one `clone(a, b)`.
    fn clone_list(&mut self, clone: &MetaList, errors: &mut Errors) {
        let names = match clone.parse_args_with(Punctuated::<Expr, Token![,]>::parse_terminated) {
            Ok(names) => names,
            Err(e) => {
                errors.push(syn::Error::new(
                    e.span(),
                    format!("expected a name\nhelp: {CLONE_HELP}"),
                ));
                return;
            }
        };
        if names.is_empty() {
            errors.push(syn::Error::new_spanned(
                clone,
                "`clone()` names nothing\nhelp: list the names the branch clones, `clone(db, cfg)`, or remove `clone()`",
            ));
        }
        for name in names {
            let ident = match &name {
                Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => {
                    path.path.get_ident()
                }
                _ => None,
            };
            let Some(ident) = ident else {
                errors.push(syn::Error::new_spanned(
                    &name,
                    "`clone(..)` takes the names of local variables\n\
                     help: bind the value to a name before the group (`let db = self.db.clone();`), then `clone(db)`",
                ));
                continue;
            };
            if ident == "ctx" {
                errors.push(syn::Error::new_spanned(
                    ident,
                    "`ctx` is the branch's own: every branch gets its `ctx` without `clone`\n\
                     help: remove `ctx` from the list",
                ));
            } else if self.clones.contains(ident) {
                errors.push(syn::Error::new_spanned(
                    ident,
                    format!("`{ident}` is cloned twice\nhelp: remove this one"),
                ));
            } else {
                self.clones.push(ident.clone());
            }
        }
    }
}

const CLONE_HELP: &str =
    "`clone(db, cfg)` clones `db` and `cfg` into the branch before it moves them";

/// `spawn` or `blocking`, as written.
fn path_name(list: &MetaList) -> String {
    list.path
        .get_ident()
        .map_or_else(|| "spawn".to_owned(), ToString::to_string)
}

fn set_flag(flag: &mut bool, name: &str, attr: &Attribute, errors: &mut Errors) {
    if *flag {
        duplicate(attr, name, errors);
    }
    *flag = true;
}

fn unknown(attr: &Attribute, errors: &mut Errors) {
    let name = attr.path().get_ident().map(ToString::to_string);
    let help = match name
        .as_deref()
        .and_then(|n| closest(n, &["spawn", "blocking"]))
    {
        Some(known) => format!("did you mean `#[{known}]`?"),
        None => format!("a branch takes {ATTRS}"),
    };
    errors.push(syn::Error::new_spanned(
        attr,
        format!("unknown branch attribute\nhelp: {help}"),
    ));
}

fn duplicate(attr: &Attribute, name: &str, errors: &mut Errors) {
    errors.push(syn::Error::new_spanned(
        attr,
        format!("`#[{name}]` is given twice\nhelp: remove this one"),
    ));
}
