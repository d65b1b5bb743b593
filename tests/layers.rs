//! The runtime's modules are layers: each imports only from the modules
//! declared before it in runtime/lib.rs (the lowest first), so the
//! cancellation tree knows nothing of tasks, branches or `Ctx`, and there
//! is no import cycle; nor does a layer call up into a higher one through a
//! trait it declares and the higher one implements, but for the few named
//! with their reason (`UPWARD_TRAITS`). `private.rs` (the macro's surface) and the test
//! modules sit on top and may use anything. The macro crate's modules have
//! no fixed order, but no import cycle either.

use std::fs;
use std::path::Path;

/// The layered modules, lowest first, as runtime/lib.rs declares them.
fn layers(lib: &str) -> Vec<String> {
    lib.lines()
        .filter_map(|line| line.strip_prefix("mod ")?.strip_suffix(';'))
        .filter(|name| !name.contains("tests"))
        .map(str::to_owned)
        .collect()
}

/// The modules of this crate that `source` names as `crate::<module>`.
fn uses(source: &str, modules: &[String]) -> Vec<String> {
    let mut found: Vec<String> = modules
        .iter()
        .filter(|m| {
            source.match_indices(&format!("crate::{m}")).any(|(i, _)| {
                let after = &source[i + "crate::".len() + m.len()..];
                !after.starts_with(|c: char| c.is_alphanumeric() || c == '_')
            })
        })
        .cloned()
        .collect();
    found.sort();
    found
}

#[test]
fn every_runtime_module_imports_only_the_layers_below_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime");
    let lib = fs::read_to_string(root.join("lib.rs")).unwrap();
    let layers = layers(&lib);
    assert!(
        layers.len() >= 10,
        "runtime/lib.rs declares the layers as `mod name;` lines: {layers:?}"
    );
    let mut violations = Vec::new();
    for (level, module) in layers.iter().enumerate() {
        let source = fs::read_to_string(root.join(format!("{module}.rs"))).unwrap();
        // Unit tests beside the code may reach up (they drive the surface).
        let code = source.split("#[cfg(all(test").next().unwrap();
        for used in uses(code, &layers) {
            let used_level = layers.iter().position(|l| *l == used).unwrap();
            if used_level > level {
                violations.push(format!("{module} imports {used}, a layer above it"));
            }
        }
    }
    assert!(violations.is_empty(), "{violations:#?}");
}

/// The traits `code` declares.
fn traits(code: &str) -> Vec<String> {
    code.lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let line = line
                .strip_prefix("pub(crate) ")
                .or_else(|| line.strip_prefix("pub "))
                .unwrap_or(line);
            let rest = line.strip_prefix("trait ")?;
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

/// Whether `code` implements the trait `name` (`impl<..> Name<..> for ..`).
fn implements(code: &str, name: &str) -> bool {
    code.lines().any(|line| {
        let Some(rest) = line.trim_start().strip_prefix("impl") else {
            return false;
        };
        let Some((head, _)) = rest.split_once(" for ") else {
            return false;
        };
        // The trait is the last path in the head, after the generics.
        let head = head.trim_start();
        let head = if head.starts_with('<') {
            let mut depth = 0;
            let end = head
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '<' => 1,
                        '>' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(head.len(), |(i, _)| i + 1);
            &head[end..]
        } else {
            head
        };
        let path = head.trim().split('<').next().unwrap_or("");
        path.rsplit("::").next() == Some(name)
    })
}

/// A trait that a layer declares and a layer above it implements lets the
/// lower layer's code run the higher one's at run time: the imports point
/// down, but the calls go up. Each such trait is named here, with why it
/// may; any other fails (move the trait to the layer that calls it).
const UPWARD_TRAITS: &[(&str, &str, &str)] = &[
    (
        "OnCancel",
        "cancel",
        "the cancellation tree's one callback: a node tells what hangs below it \
         (child groups, group channels) that it was cancelled, as tokio-util's \
         tree node cancels its children",
    ),
    (
        "HasNode",
        "cancel",
        "an accessor only: a parent link keeps the enclosing group alive and \
         reads its node, nothing of the group is called",
    ),
    (
        "Stop",
        "branch",
        "called by the engine, above both; branch.rs only forwards it through \
         its own wrappers (Inline, Placed)",
    ),
];

#[test]
fn no_runtime_module_reaches_up_through_a_trait() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime");
    let lib = fs::read_to_string(root.join("lib.rs")).unwrap();
    let layers = layers(&lib);
    let code: Vec<String> = layers
        .iter()
        .map(|module| {
            let source = fs::read_to_string(root.join(format!("{module}.rs"))).unwrap();
            source.split("#[cfg(all(test").next().unwrap().to_owned()
        })
        .collect();
    let mut upward = Vec::new();
    for (level, module) in layers.iter().enumerate() {
        for name in traits(&code[level]) {
            for (above, higher) in layers.iter().zip(&code).skip(level + 1) {
                if implements(higher, &name) {
                    upward.push(format!("{module}::{name} is implemented in {above}"));
                }
            }
        }
    }
    let mut unexplained: Vec<&String> = upward
        .iter()
        .filter(|found| {
            !UPWARD_TRAITS
                .iter()
                .any(|(name, module, _)| found.starts_with(&format!("{module}::{name} ")))
        })
        .collect();
    unexplained.dedup();
    assert!(
        unexplained.is_empty(),
        "a layer reaches up through a trait: {unexplained:#?}"
    );
    // A trait listed that no longer reaches up leaves the list.
    for (name, module, _) in UPWARD_TRAITS {
        assert!(
            upward
                .iter()
                .any(|found| found.starts_with(&format!("{module}::{name} "))),
            "{module}::{name} no longer reaches up: take it off UPWARD_TRAITS"
        );
    }
}

/// The modules of the macro crate, each named by its file.
fn macro_modules(root: &Path) -> Vec<String> {
    let mut modules: Vec<String> = fs::read_dir(root)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .filter_map(|path| Some(path.file_stem()?.to_str()?.to_owned()))
        .filter(|name| name != "lib" && name != "tests")
        .collect();
    modules.sort();
    modules
}

/// The first import cycle through `at`, depth first: a path that comes
/// back to a module on it.
fn cycle_through(
    at: usize,
    modules: &[String],
    imports: &[Vec<String>],
    path: &mut Vec<usize>,
) -> Option<Vec<String>> {
    if let Some(start) = path.iter().position(|&m| m == at) {
        let mut cycle: Vec<String> = path[start..].iter().map(|&m| modules[m].clone()).collect();
        cycle.push(modules[at].clone());
        return Some(cycle);
    }
    path.push(at);
    for used in &imports[at] {
        let next = modules.iter().position(|m| m == used).unwrap();
        if let Some(cycle) = cycle_through(next, modules, imports, path) {
            return Some(cycle);
        }
    }
    path.pop();
    None
}

/// The macro crate has no fixed order of layers, but no import cycle
/// either: following `crate::<module>` imports from any module never
/// leads back to it.
#[test]
fn no_macro_module_imports_itself_through_others() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("macros/src");
    let modules = macro_modules(&root);
    assert!(
        modules.len() >= 8,
        "macros/src holds the macro's modules: {modules:?}"
    );
    let imports: Vec<Vec<String>> = modules
        .iter()
        .map(|module| {
            let source = fs::read_to_string(root.join(format!("{module}.rs"))).unwrap();
            let code = source.split("#[cfg(test)]").next().unwrap();
            uses(code, &modules)
                .into_iter()
                .filter(|used| used != module)
                .collect()
        })
        .collect();
    for start in 0..modules.len() {
        if let Some(cycle) = cycle_through(start, &modules, &imports, &mut Vec::new()) {
            panic!("an import cycle: {}", cycle.join(" -> "));
        }
    }
}
