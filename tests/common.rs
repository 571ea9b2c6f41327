//! Shared helpers for the end-to-end tests that drive the `twin` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

pub fn twin_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_twin"))
}

/// A `twin` command on the data folder `data`.
pub fn twin(data: &Path) -> Command {
    let mut c = Command::new(twin_bin());
    c.env("TWIN_DATA_DIR", data).env_remove("TWIN_LOG");
    c
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run twin");
    assert!(
        out.status.success(),
        "{cmd:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// A fresh data folder with the default embedding model imported.
pub fn library_with_model() -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    let model = repo_root().join("models/all-MiniLM-L6-v2");
    assert!(
        model.exists(),
        "{} is missing: run scripts/fetch-models.sh",
        model.display()
    );
    run_ok(twin(data.path()).args(["models", "import"]).arg(&model));
    data
}

pub fn rust_book() -> PathBuf {
    let out = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .expect("rustc");
    let book =
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("share/doc/rust/html/book");
    assert!(
        book.join("ch04-01-what-is-ownership.html").exists(),
        "the Rust Book is missing at {}",
        book.display()
    );
    book
}
