//! The runtime's modules are layers: each imports only from the modules
//! declared before it in runtime/lib.rs (the lowest first), so the
//! cancellation tree knows nothing of tasks, branches or `Ctx`, and there
//! is no import cycle. `private.rs` (the macro's surface) and the test
//! modules sit on top and may use anything.

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
