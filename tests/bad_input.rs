//! Bad input: every broken file is reported with its path and a reason, the good files beside
//! it are imported, and nothing stored before is lost.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// A small, valid one-page PDF with a text layer, byte offsets computed for the xref table.
fn pdf(text: &str) -> Vec<u8> {
    let stream = format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_string(),
        format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for off in offsets {
        out.extend(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// A minimal .docx: a ZIP with word/document.xml holding a heading and a paragraph.
fn docx(heading: &str, para: &str) -> Vec<u8> {
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
fn twin_as_user(data: &Path) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(common::twin_bin());
        c.env("TWIN_DATA_DIR", data);
        c
    } else {
        common::twin(data)
    }
}

fn open_to_all(path: &Path) {
    for entry in walkdir_all(path) {
        let mode = if entry.is_dir() { 0o777 } else { 0o666 };
        let _ = std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(mode));
    }
}

fn walkdir_all(path: &Path) -> Vec<std::path::PathBuf> {
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
fn docx_bomb(bytes: usize) -> Vec<u8> {
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

#[test]
fn bad_files_are_reported_and_good_ones_imported() {
    let data = common::library_with_model();
    let src = tempfile::tempdir().unwrap();
    let dir = src.path();

    // Good files first, imported into the library.
    std::fs::write(
        dir.join("good.md"),
        "---\ntitle: Good note\n---\nThe lathe hums in the corner of the workshop.",
    )
    .unwrap();
    std::fs::write(
        dir.join("good.pdf"),
        pdf("Quarter-sawn oak resists cupping."),
    )
    .unwrap();
    std::fs::write(
        dir.join("good.docx"),
        docx("Joinery", "Dovetails lock the drawer front to its sides."),
    )
    .unwrap();
    std::fs::write(
        dir.join("plain.txt"),
        "Plain text about hand planes.\n\nSecond paragraph.",
    )
    .unwrap();
    std::fs::write(dir.join("page.html"), "<html><body><nav>Menu</nav><main><h1>Finishes</h1><p>Shellac dries fast.</p></main></body></html>").unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::write(
        dir.join("sub/kept.md"),
        "# Kept\n\nA note about marking gauges that must survive an unreadable folder.",
    )
    .unwrap();
    open_to_all(data.path());
    open_to_all(dir);
    let first = common::run_ok(
        twin_as_user(data.path())
            .arg("import")
            .arg(dir)
            .arg("--json"),
    );
    let first = common::json(&first);
    assert_eq!(first["added"], 6, "{first:#}");
    assert!(first["failed"].as_array().unwrap().is_empty(), "{first:#}");

    // Now the bad ones, and a good file that goes bad.
    let good_pdf = pdf("Quarter-sawn oak resists cupping.");
    std::fs::write(dir.join("truncated.pdf"), &good_pdf[..good_pdf.len() / 2]).unwrap();
    let good_docx = docx("Joinery", "Dovetails lock the drawer front to its sides.");
    std::fs::write(
        dir.join("truncated.docx"),
        &good_docx[..good_docx.len() / 2],
    )
    .unwrap();
    std::fs::write(dir.join("latin1.md"), b"Caf\xe9 au lait, na\xefve.\n").unwrap();
    std::fs::write(
        dir.join("binary.md"),
        [0x7fu8, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    )
    .unwrap();
    std::fs::write(dir.join("empty.md"), b"").unwrap();
    std::fs::write(dir.join("secret.md"), "You cannot read me.").unwrap();
    std::os::unix::fs::symlink(dir, dir.join("loop")).unwrap();
    let big = std::fs::File::create(dir.join("huge.txt")).unwrap();
    big.set_len(50 * 1024 * 1024).unwrap();
    std::fs::write(dir.join("image.png"), [0x89u8, b'P', b'N', b'G']).unwrap();
    std::fs::write(
        dir.join("good.md"),
        b"The lathe hums \xff\xfe in the corner.",
    )
    .unwrap(); // breaks a stored file
    std::fs::write(
        dir.join("new-good.md"),
        "# Fresh\n\nA new note about sharpening chisels.",
    )
    .unwrap();
    // HTML nested 300,000 deep (a stack overflow and a quadratic tree build before), a DOCX
    // whose document.xml inflates to 200 MiB, and a FIFO named like a note.
    std::fs::write(
        dir.join("deep.html"),
        format!("{}x{}", "<div>".repeat(300_000), "</div>".repeat(300_000)),
    )
    .unwrap();
    std::fs::write(dir.join("bomb.docx"), docx_bomb(200 * 1024 * 1024)).unwrap();
    assert!(Command::new("mkfifo")
        .arg(dir.join("pipe.md"))
        .status()
        .unwrap()
        .success());
    open_to_all(dir);
    std::fs::set_permissions(
        dir.join("secret.md"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    // A folder that cannot be read this time (a share that comes and goes): what is stored
    // from it stays.
    std::fs::set_permissions(dir.join("sub"), std::fs::Permissions::from_mode(0o000)).unwrap();

    let started = std::time::Instant::now();
    let out = twin_as_user(data.path())
        .arg("import")
        .arg(dir)
        .arg("--json")
        .output()
        .unwrap();
    let took = started.elapsed();
    std::fs::set_permissions(dir.join("sub"), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(took.as_secs() < 60, "the bad files took {took:?}");
    assert_eq!(
        out.status.code(),
        Some(3),
        "partial import exits 3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = common::json(&out);
    let issues: Vec<(String, String)> = report["failed"]
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
        .collect();
    let reason_for = |name: &str| -> String {
        issues
            .iter()
            .find(|(p, _)| Path::new(p).file_name().is_some_and(|f| f == name))
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("{name} not reported; issues: {issues:#?}"))
    };
    for (name, expect) in [
        ("truncated.pdf", "PDF"),
        ("truncated.docx", "DOCX"),
        ("latin1.md", "UTF-8"),
        ("binary.md", "binary"),
        ("empty.md", "empty"),
        ("secret.md", "permission denied"),
        ("loop", "symlink loop"),
        ("huge.txt", "size limit"),
        ("image.png", "unsupported"),
        ("good.md", "UTF-8"),
        ("deep.html", "nested over 1024"),
        ("bomb.docx", "inflates past"),
        ("pipe.md", "not a regular file"),
        ("sub", "permission denied"),
    ] {
        let reason = reason_for(name);
        println!("{name}: {reason}");
        assert!(
            reason.contains(expect),
            "{name}: {reason:?} should mention {expect:?}"
        );
    }
    assert_eq!(
        report["added"], 1,
        "new-good.md is imported beside the bad files: {report:#}"
    );

    // Nothing stored before is lost: the earlier version of good.md is still searchable.
    let search = common::run_ok(common::twin(data.path()).args([
        "search",
        "lathe hums workshop",
        "--mode",
        "bm25",
        "--json",
    ]));
    let results = common::json(&search);
    assert!(
        results
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["path"].as_str().unwrap().ends_with("good.md")),
        "{results:#}"
    );
    let status = common::json(&common::run_ok(
        common::twin(data.path()).args(["status", "--json"]),
    ));
    assert_eq!(
        status["library"]["documents"], 7,
        "sub/kept.md is kept though its folder could not be read: {status:#}"
    );
    std::fs::set_permissions(
        dir.join("secret.md"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
}

#[test]
fn a_missing_path_and_a_missing_model_are_clear_errors() {
    let data = tempfile::tempdir().unwrap();
    let out = common::twin(data.path())
        .args(["import", "/no/such/folder"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("embedding model") || err.contains("/no/such/folder"),
        "{err}"
    );

    let data = common::library_with_model();
    let out = common::twin(data.path())
        .args(["import", "/no/such/folder"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/no/such/folder: no such file or folder")
    );

    let out = common::twin(data.path())
        .args(["models", "import", "/no/such/model"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/model"));
}
