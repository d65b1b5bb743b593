//! A branch's attributes, read once into [`Attrs`]: its mode (`#[spawn]`,
//! `#[blocking]`, with the names the branch clones: `#[spawn(clone(db))]`)
//! and the checks it opts out of (`#[allow(raw_channel)]`,
//! `#[allow(detached_spawn)]`). What cannot be read (an unknown attribute
//! or option, a capture list that is not a list of names) is reported
//! here; the rules on what was read (given twice, both modes) are
//! `valid.rs`'s, called as each attribute is read.

use syn::parse::ParseStream;
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, Ident, Meta, MetaList, Token};

use crate::ast::Attrs;
use crate::errors::{Errors, closest};
use crate::mode::Mode;
use crate::valid;

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

/// Reads a branch's attributes, reporting each one that is unknown or
/// breaks a rule.
pub(crate) fn read(attrs: &[Attribute], errors: &mut Errors) -> Attrs {
    let mut read = Attrs::default();
    for attr in attrs {
        match Attr::read(attr) {
            Some(Attr::Spawn(options)) => {
                set_mode(&mut read, Mode::Spawn, attr, errors);
                read_options(&mut read, options, errors);
            }
            Some(Attr::Blocking(options)) => {
                set_mode(&mut read, Mode::Blocking, attr, errors);
                read_options(&mut read, options, errors);
            }
            Some(Attr::AllowRawChannel) => {
                valid::flag(read.allow_raw_channel, "allow(raw_channel)", attr, errors);
                read.allow_raw_channel = true;
            }
            Some(Attr::AllowDetachedSpawn) => {
                valid::flag(
                    read.allow_detached_spawn,
                    "allow(detached_spawn)",
                    attr,
                    errors,
                );
                read.allow_detached_spawn = true;
            }
            None => unknown(attr, errors),
        }
    }
    read
}

fn set_mode(read: &mut Attrs, mode: Mode, attr: &Attribute, errors: &mut Errors) {
    if valid::mode(read, mode, attr, errors) {
        read.mode = mode;
        read.mode_span = attr.path().get_ident().map(Ident::span);
    }
}

/// The options of `#[spawn(..)]` / `#[blocking(..)]`: `clone(a, b)`.
fn read_options(read: &mut Attrs, options: Option<&MetaList>, errors: &mut Errors) {
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
    valid::options(list, &path_name(list), &options, errors);
    let mut seen_clone = false;
    for option in options {
        match option {
            Meta::List(clone) if clone.path.is_ident("clone") => {
                valid::clone_option(seen_clone, &clone, errors);
                seen_clone = true;
                clone_list(read, &clone, errors);
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
fn clone_list(read: &mut Attrs, clone: &MetaList, errors: &mut Errors) {
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
    valid::clone_list(clone, &names, errors);
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
        if valid::clone_name(&read.clones, ident, errors) {
            read.clones.push(ident.clone());
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
