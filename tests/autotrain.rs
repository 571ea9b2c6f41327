//! Automatic retraining end to end through the binary: writing added to a watched folder past
//! the threshold wakes a cycle with no further command; the `twin watch` process running it is
//! killed with SIGKILL mid-training, and the cycle resumes from its checkpoint on the next
//! start, then trains, evaluates and promotes its candidate. A deliberately degraded candidate
//! (`twin autotrain run` with a ruinous learning rate) is evaluated and not promoted, with the
//! reason recorded, and the adapter in use stays.

mod common;

use common::{json, repo_root, run_ok, twin};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn copy_posts(names: &[std::path::PathBuf], to: &Path) {
    for p in names {
        std::fs::copy(p, to.join(p.file_name().unwrap())).unwrap();
    }
}

/// `twin --json watch <folder>`, returned once it watches.
fn start_watch(data: &Path, folder: &Path) -> Child {
    let mut child = twin(data)
        .args(["--json", "watch"])
        .arg(folder)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines
            .next()
            .expect("twin watch ended before it watched")
            .unwrap();
        if line.contains("\"started\"") {
            break;
        }
    }
    // Keep draining, so the watcher never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    child
}

fn status(data: &Path) -> serde_json::Value {
    json(&run_ok(twin(data).args(["--json", "autotrain", "status"])))
}

/// Poll `twin autotrain status` until `done` says so, for at most `limit`.
fn wait_for(data: &Path, limit: Duration, what: &str, done: impl Fn(&serde_json::Value) -> bool) {
    let started = Instant::now();
    loop {
        let s = status(data);
        if done(&s) {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "waited {limit:?} for {what}: {s:#}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn new_writing_in_a_watched_folder_trains_evaluates_and_promotes_a_candidate_by_itself() {
    let data = common::library_with_model();
    let smol = repo_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    run_ok(twin(data.path()).args(["models", "add"]).arg(&smol));
    // Small enough for CI: ten steps (a checkpoint every five), one draft a side.
    run_ok(twin(data.path()).args([
        "autotrain",
        "enable",
        "--min-words",
        "1200",
        "--steps",
        "10",
        "--drafts",
        "1",
    ]));
    let mut posts: Vec<_> =
        common::walkdir_all(&repo_root().join("assets/sample-writing/linkedin"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "md"))
            .collect();
    posts.sort();
    let folder = tempfile::tempdir().unwrap();
    copy_posts(&posts[..5], folder.path());

    let mut watch = start_watch(data.path(), folder.path());
    let s = status(data.path());
    let first_words = s["pending"]["words"].as_u64().unwrap();
    assert!(first_words > 0 && first_words < 1200, "{s:#}");
    assert!(s["due"].is_null() && s["unfinished"].is_null(), "{s:#}");

    // More writing arrives: past the threshold, a cycle starts with no command.
    copy_posts(&posts[5..], folder.path());
    wait_for(data.path(), Duration::from_secs(300), "a checkpoint", |s| {
        s["unfinished"]["phase"] == "train"
            && s["training_step"][0].as_i64().is_some_and(|step| step >= 5)
    });
    watch.kill().unwrap();
    let _ = watch.wait();
    let s = status(data.path());
    assert_eq!(s["unfinished"]["status"], "running", "{s:#}");
    assert_eq!(s["unfinished"]["trigger"], "threshold");

    // The next start resumes it from its checkpoint, to the end.
    let mut watch = start_watch(data.path(), folder.path());
    wait_for(
        data.path(),
        Duration::from_secs(400),
        "the cycle to end",
        |s| s["unfinished"].is_null() && !s["last"].is_null(),
    );
    watch.kill().unwrap();
    let _ = watch.wait();
    let history = json(&run_ok(twin(data.path()).args([
        "--json",
        "autotrain",
        "history",
    ])));
    let cycle = &history[0];
    assert_eq!(history.as_array().unwrap().len(), 1, "{history:#}");
    assert_eq!(cycle["status"], "done", "{cycle:#}");
    assert!(cycle["change"]["words"].as_u64().unwrap() >= 1200);
    assert_eq!(cycle["scores"]["resumed_from_step"], 5, "{cycle:#}");
    assert_eq!(cycle["scores"]["steps"], 10);
    let (cand, inc) = (&cycle["scores"]["candidate"], &cycle["scores"]["incumbent"]);
    assert!(
        cand["nll"].as_f64().unwrap() < inc["nll"].as_f64().unwrap() * 0.98,
        "{cycle:#}"
    );
    assert_eq!(
        cand["drafts"], 1,
        "the candidate's drafts were measured too"
    );
    assert!(cycle["promoted"].as_bool().unwrap(), "{cycle:#}");
    let voice = cycle["candidate_name"].as_str().unwrap().to_string();
    let reason = cycle["reason"].as_str().unwrap();
    assert!(reason.contains("held-out loss -"), "{reason}");
    let in_use = |data: &Path| -> String {
        let a = json(&run_ok(twin(data).args(["--json", "adapters", "list"])));
        a["active"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["channel"] == "default")
            .map(|c| c["adapter"]["name"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    assert_eq!(in_use(data.path()), voice);
    for (phase, secs) in cycle["scores"]["seconds"].as_object().unwrap() {
        eprintln!("cycle phase {phase}: {:.1} s", secs.as_f64().unwrap());
    }
    eprintln!(
        "peak memory {:.0} MiB; {reason}",
        cycle["scores"]["peak_memory_bytes"].as_f64().unwrap_or(0.0) / 1048576.0
    );

    // A degraded candidate: evaluated against the adapter in use and turned down.
    let degraded = json(&run_ok(twin(data.path()).args([
        "--json",
        "autotrain",
        "run",
        "--learning-rate",
        "0.5",
        "--steps",
        "4",
        "--drafts",
        "0",
    ])));
    assert_eq!(degraded["trigger"], "manual");
    assert_eq!(degraded["status"], "done", "{degraded:#}");
    assert_eq!(degraded["incumbent_name"], voice.as_str());
    assert!(!degraded["promoted"].as_bool().unwrap(), "{degraded:#}");
    let why = degraded["reason"].as_str().unwrap();
    assert!(
        why.contains(&format!("against {voice}")) && why.contains("needs -2.0% or better"),
        "{why}"
    );
    assert_eq!(in_use(data.path()), voice, "the adapter in use stays");
    let text = run_ok(twin(data.path()).args(["autotrain", "history"]));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(&format!("not used, kept {voice}")), "{text}");
    eprintln!("{text}");
}
