//! Bad input: every broken file is reported with its path and a reason, the good files beside
//! it are imported, and nothing stored before is lost.

mod common;

use common::{docx, docx_bomb, open_to_all, pdf, twin_as_user};

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

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
    let issues = common::import_issues(&report);
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

    // A link to / given by mistake is not "import the whole computer".
    let links = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/", links.path().join("everything")).unwrap();
    for path in [links.path().join("everything"), "/proc".into()] {
        let out = common::twin(data.path())
            .arg("import")
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("a system folder"), "{err}");
    }

    let out = common::twin(data.path())
        .args(["models", "import", "/no/such/model"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/model"));
}

/// A source folder that comes back empty (an unmounted share, a cloud folder not synced yet)
/// keeps its documents and says why; forgetting it is one explicit command.
#[test]
fn an_empty_or_missing_source_keeps_its_documents() {
    let data = common::library_with_model();
    let src = tempfile::tempdir().unwrap();
    let share = src.path().join("share");
    std::fs::create_dir(&share).unwrap();
    std::fs::write(share.join("a.md"), "# A\n\nNotes on a bench vise.").unwrap();
    std::fs::write(share.join("b.md"), "# B\n\nNotes on a leg vise.").unwrap();
    let first = common::json(&common::run_ok(
        common::twin(data.path())
            .args(["--json", "import"])
            .arg(&share),
    ));
    assert_eq!(first["added"], 2, "{first:#}");

    // The share is unmounted: its mount point is empty.
    let away = src.path().join("away");
    std::fs::create_dir(&away).unwrap();
    for f in ["a.md", "b.md"] {
        std::fs::rename(share.join(f), away.join(f)).unwrap();
    }
    let out = common::twin(data.path())
        .args(["--json", "import"])
        .arg(&share)
        .output()
        .unwrap();
    let report = common::json(&out);
    assert_eq!(report["deleted"], 0, "{report:#}");
    let issues = common::import_issues(&report);
    assert!(
        issues.iter().any(|(p, r)| p.ends_with("share")
            && r.contains("unmounted")
            && r.contains("2 documents are kept")),
        "{issues:?}"
    );
    let status = common::json(&common::run_ok(
        common::twin(data.path()).args(["--json", "status"]),
    ));
    assert_eq!(status["library"]["documents"], 2, "{status:#}");

    // One file deleted while the rest is there still leaves the library.
    std::fs::rename(away.join("a.md"), share.join("a.md")).unwrap();
    let report = common::json(&common::run_ok(
        common::twin(data.path())
            .args(["--json", "import"])
            .arg(&share),
    ));
    assert_eq!(report["deleted"], 1, "{report:#}");

    // Forgetting a source is explicit.
    let removed = common::run_ok(
        common::twin(data.path())
            .args(["sources", "--remove"])
            .arg(&share),
    );
    assert!(String::from_utf8_lossy(&removed.stdout).contains("removed source"));
    let status = common::json(&common::run_ok(
        common::twin(data.path()).args(["--json", "status"]),
    ));
    assert_eq!(status["library"]["documents"], 0, "{status:#}");
}
