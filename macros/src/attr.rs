//! A branch's attributes, read once into [`Attrs`]: its mode (`#[spawn]`,
//! `#[blocking]`) and the checks it opts out of (`#[allow(raw_channel)]`,
//! `#[allow(detached_spawn)]`). Unknown, repeated and conflicting
//! attributes are reported here.

use syn::{Attribute, Meta};

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
    /// `#[allow(raw_channel)]`.
    pub(crate) allow_raw_channel: bool,
    /// `#[allow(detached_spawn)]`.
    pub(crate) allow_detached_spawn: bool,
}

const ATTRS: &str =
    "`#[spawn]`, `#[blocking]`, `#[allow(raw_channel)]` and `#[allow(detached_spawn)]`";

/// One attribute the macro knows.
enum Attr {
    Spawn,
    Blocking,
    AllowRawChannel,
    AllowDetachedSpawn,
}

impl Attr {
    fn read(attr: &Attribute) -> Option<Attr> {
        match &attr.meta {
            Meta::Path(path) if path.is_ident("spawn") => Some(Attr::Spawn),
            Meta::Path(path) if path.is_ident("blocking") => Some(Attr::Blocking),
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
                Some(Attr::Spawn) => read.set_mode(Mode::Spawn, attr, errors),
                Some(Attr::Blocking) => read.set_mode(Mode::Blocking, attr, errors),
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
            Mode::InTask => self.mode = mode,
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
