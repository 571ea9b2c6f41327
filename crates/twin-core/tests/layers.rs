//! The layering of twin-core's modules, checked: a module may use only modules of a lower
//! layer. This keeps the pipelines side by side (draft and train are siblings and never use
//! each other), keeps evaluation on top of what it evaluates (nothing uses eval), and rules out
//! import cycles. ARCHITECTURE.md draws the same table; a new module must be placed in it.
//!
//! The check reads `crate::…` paths in the sources (comments and `#[cfg(test)]` modules aside:
//! tests may reach for any helper), so it needs no build tool and cannot be fooled by a
//! re-export: a path names the module it comes from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// twin-core's top-level modules, lowest layer first. Modules in one layer are siblings.
const LAYERS: &[(&str, &[&str])] = &[
    ("errors", &["error"]),
    ("foundations", &["progress", "gguf"]),
    ("store", &["store"]),
    ("runtime", &["engine"]),
    ("models", &["models"]),
    ("search", &["search"]),
    ("feature pipeline", &["library"]),
    ("prompts", &["prompt"]),
    ("inference and training pipelines", &["draft", "train"]),
    ("evaluation", &["eval"]),
    ("tools", &["autotrain", "bench", "first_run", "fuzzing"]),
    ("moving", &["bundle"]),
    ("service", &["service"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a source file belongs to (`draft/tidy.rs` → `draft`).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_string()
}

/// The modules a file's non-test code names through `crate::module`.
fn uses(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        // The unit tests sit at the end of a file, in a `#[cfg(test)] mod …`.
        if code.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|l| l.trim_start().starts_with("mod "))
        {
            break;
        }
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

#[test]
fn modules_use_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut arrows: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut unplaced = BTreeSet::new();
    for file in &files {
        let module = module_of(&src, file);
        // `tests.rs` holds a module's unit tests (`#[cfg(test)] mod tests;`), like the inline
        // test modules skipped below.
        if module == "lib" || file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        for used in uses(&text) {
            if used != module {
                let name = file.strip_prefix(&src).unwrap().display().to_string();
                arrows.entry((module.clone(), used)).or_default().push(name);
            }
        }
    }
    let mut wrong = Vec::new();
    for ((from, to), files) in &arrows {
        match (layer_of(from), layer_of(to)) {
            (Some(a), Some(b)) if b < a => {}
            (Some(a), Some(b)) => wrong.push(format!(
                "{from} ({}) uses {to} ({}) in {}",
                LAYERS[a].0,
                LAYERS[b].0,
                files.join(", ")
            )),
            (a, b) => {
                if a.is_none() {
                    unplaced.insert(from.clone());
                }
                if b.is_none() {
                    unplaced.insert(to.clone());
                }
            }
        }
    }
    assert!(
        unplaced.is_empty(),
        "modules missing from LAYERS (place them, and in ARCHITECTURE.md): {unplaced:?}"
    );
    assert!(
        wrong.is_empty(),
        "imports that cross the layering (a module may use only lower layers):\n{}",
        wrong.join("\n")
    );
    // Every module of lib.rs is placed, so a new module cannot skip the check.
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    for line in lib.lines() {
        if let Some(name) = line.trim().strip_prefix("pub mod ") {
            let name = name.trim_end_matches(';');
            assert!(
                layer_of(name).is_some(),
                "lib.rs module {name} is not in LAYERS"
            );
        }
    }
    let count = arrows.len();
    eprintln!("{count} arrows between modules, all downward");
}

#[test]
fn the_check_sees_imports_and_skips_comments_and_tests() {
    let text = "use crate::store::Store;\n// crate::eval in a comment\nfn f() { crate::search::run(); }\n#[cfg(test)]\nmod tests {\n    use crate::fuzzing;\n}\n";
    let found: Vec<_> = uses(text).into_iter().collect();
    assert_eq!(found, ["search", "store"]);
}
