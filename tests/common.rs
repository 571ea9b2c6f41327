//! Shared helpers for the end-to-end tests that drive the `twin` binary.

#![allow(dead_code)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
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
    // Imports here are rarely followed by a draft: leave the next draft unprepared (~2 s an
    // import; tests/draft_cli.rs checks the preparation).
    c.env("TWIN_DATA_DIR", data)
        .env_remove("TWIN_LOG")
        .env("TWIN_NO_PROMPT_HEAD", "1");
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

/// A library with the sample writing's LinkedIn posts and X threads (enough for a short
/// training run, and a quick dataset) and the default chat model.
pub fn library_for_training() -> tempfile::TempDir {
    let data = library_with_model();
    for folder in ["linkedin", "x"] {
        run_ok(
            twin(data.path())
                .arg("import")
                .arg(repo_root().join("assets/sample-writing").join(folder)),
        );
    }
    let smol = repo_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    run_ok(twin(data.path()).args(["models", "add"]).arg(&smol));
    data
}

/// The files an import report lists as failed or skipped, as (path, reason).
pub fn import_issues(report: &serde_json::Value) -> Vec<(String, String)> {
    report["failed"]
        .as_array()
        .unwrap()
        .iter()
        .chain(report["skipped"].as_array().unwrap())
        .map(|i| {
            (
                i["path"].as_str().unwrap().to_string(),
                i["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
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

/// A small, valid one-page PDF with a text layer, byte offsets computed for the xref table.
pub fn pdf(text: &str) -> Vec<u8> {
    let stream = format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_string(),
        format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
    ];
    twin_core::fuzzing::pdf_file(&objects, false, "")
}

/// A minimal .docx: a ZIP with word/document.xml holding a heading and a paragraph.
pub fn docx(heading: &str, para: &str) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default();
        zip.start_file("[Content_Types].xml", opts).unwrap();
        zip.write_all(br#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>"#).unwrap();
        zip.start_file("word/document.xml", opts).unwrap();
        let xml = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>{heading}</w:t></w:r></w:p><w:p><w:r><w:t xml:space="preserve">{para}</w:t></w:r></w:p></w:body></w:document>"#
        );
        zip.write_all(xml.as_bytes()).unwrap();
        zip.finish().unwrap();
    }
    buf.into_inner()
}

/// Run `twin` as an unprivileged user when the tests run as root, so a chmod 000 file really is
/// unreadable (root reads everything).
pub fn twin_as_user(data: &Path) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(twin_bin());
        c.env("TWIN_DATA_DIR", data);
        c
    } else {
        twin(data)
    }
}

pub fn open_to_all(path: &Path) {
    for entry in walkdir_all(path) {
        let mode = if entry.is_dir() { 0o777 } else { 0o666 };
        let _ = std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(mode));
    }
}

pub fn walkdir_all(path: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![path.to_path_buf()];
    if path.is_dir() && !path.is_symlink() {
        for e in std::fs::read_dir(path).unwrap().flatten() {
            if !e.file_type().unwrap().is_symlink() {
                out.extend(walkdir_all(&e.path()));
            }
        }
    }
    out
}

/// A .docx whose `word/document.xml` inflates to `bytes` of XML (a deflate bomb: a few hundred
/// KiB on disk).
pub fn docx_bomb(bytes: usize) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        z.start_file("word/document.xml", opts).unwrap();
        z.write_all(b"<w:document><w:body><w:p><w:r><w:t>").unwrap();
        let block = vec![b'a'; 1 << 20];
        for _ in 0..bytes / block.len() {
            z.write_all(&block).unwrap();
        }
        z.write_all(b"</w:t></w:r></w:p></w:body></w:document>")
            .unwrap();
        z.finish().unwrap();
    }
    buf.into_inner()
}
