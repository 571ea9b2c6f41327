//! `twin dataset`, `twin train` and `twin adapters` end to end through the binary: a training
//! run killed with SIGKILL after a checkpoint resumes from it and finishes; the adapter is
//! registered, used by drafts, evaluated by `twin eval` (report, list, show, compare), and can
//! be rolled back and removed.

mod common;

use common::{json, run_ok, twin};
use std::io::{BufRead, BufReader};
use std::process::Stdio;

#[test]
fn a_killed_training_run_resumes_from_its_checkpoint() {
    let data = common::library_for_training();
    let ds = json(&run_ok(
        twin(data.path()).args(["--json", "dataset", "build", "--author", "Nell"]),
    ));
    assert!(ds["stats"]["train_user"].as_u64().unwrap() >= 10, "{ds}");
    assert!(ds["stats"]["test_user"].as_u64().unwrap() >= 1, "{ds}");
    let shown = run_ok(twin(data.path()).args(["dataset", "show"]));
    assert!(String::from_utf8_lossy(&shown.stdout).contains("request: Write a"));
    let out = data.path().join("dataset.jsonl");
    run_ok(
        twin(data.path())
            .args(["dataset", "export", "-o"])
            .arg(&out),
    );
    let lines = std::fs::read_to_string(&out).unwrap();
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(
        first["messages"].as_array().unwrap().last().unwrap()["role"],
        "assistant"
    );
    // Preference pairs the dataset implies: the user's passage against the base model's draft
    // for the same prompt.
    let prefs = data.path().join("preferences.jsonl");
    run_ok(
        twin(data.path())
            .args(["dataset", "preferences", "-o"])
            .arg(&prefs),
    );
    let pairs: Vec<serde_json::Value> = std::fs::read_to_string(&prefs)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let machine = ds["stats"]["machine_negatives"].as_u64().unwrap_or(0) as usize;
    assert_eq!(
        pairs.len(),
        machine,
        "one pair per machine draft: {pairs:?}"
    );
    for p in &pairs {
        assert_eq!(p["source"], "machine_draft");
        assert_ne!(p["chosen"], p["rejected"]);
    }

    let plan = json(&run_ok(twin(data.path()).args([
        "--json",
        "train",
        "--dry-run",
    ])));
    assert!(plan["steps"].as_u64().unwrap() > 0 && plan["memory_bytes"].as_u64().unwrap() > 0);
    assert!(plan["eta_seconds"].as_f64().unwrap() > 0.0, "{plan}");

    let args = [
        "--json",
        "train",
        "--max-steps",
        "6",
        "--checkpoint-every",
        "2",
        "--eval-every",
        "3",
        "--sequence-tokens",
        "256",
        "--name",
        "crash-test",
    ];
    // First run: killed as soon as the checkpoint after step 2 is on disk.
    let mut child = twin(data.path())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut killed_after = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if event["event"] == "checkpoint" {
            killed_after = event["step"].as_u64();
            child.kill().unwrap();
            break;
        }
    }
    let _ = child.wait();
    let killed_after = killed_after.expect("the run wrote a checkpoint before it was killed");

    // Second run: same settings, so it resumes.
    let resumed = run_ok(twin(data.path()).args(args));
    let text = String::from_utf8_lossy(&resumed.stdout);
    let started: serde_json::Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "started")
        .expect("a started event");
    let resumed_at = started["step"].as_u64().unwrap();
    assert!(resumed_at >= killed_after && resumed_at < 6, "{text}");
    let outcome: serde_json::Value =
        serde_json::from_str(&text[text.find("{\n").expect("outcome JSON")..]).unwrap();
    assert_eq!(outcome["resumed_from"].as_u64(), Some(resumed_at));
    assert_eq!(outcome["steps"].as_u64(), Some(6));
    let adapter_path = outcome["adapter"]["path"].as_str().unwrap().to_string();
    assert!(std::path::Path::new(&adapter_path).exists());

    // The registry: in use by default; drafts load it; rollback and rm work.
    let list = json(&run_ok(
        twin(data.path()).args(["--json", "adapters", "list"]),
    ));
    assert_eq!(list["adapters"].as_array().unwrap().len(), 1);
    assert_eq!(list["active"][0]["channel"], "default");
    let d = run_ok(twin(data.path()).args([
        "draft",
        "--draft-only",
        "--no-self-query",
        "--expansions",
        "0",
        "--strength",
        "0.5",
        "sharp tools",
    ]));
    let stderr = String::from_utf8_lossy(&d.stderr);
    assert!(stderr.contains("voice adapter: crash-test"), "{stderr}");
    run_ok(twin(data.path()).args(["adapters", "use", "none", "--channel", "linkedin"]));
    let d = run_ok(twin(data.path()).args([
        "draft",
        "--draft-only",
        "--no-self-query",
        "--expansions",
        "0",
        "sharp tools",
    ]));
    assert!(!String::from_utf8_lossy(&d.stderr).contains("voice adapter"));
    let rb = run_ok(twin(data.path()).args(["adapters", "rollback", "--channel", "linkedin"]));
    assert!(String::from_utf8_lossy(&rb.stdout).contains("linkedin"));

    // Evaluation from the command line: a small run writes its report; list, show and compare
    // read it back; an unknown run is a clear error.
    let reports = tempfile::tempdir().unwrap();
    let out = run_ok(
        twin(data.path())
            .args(["eval", "--drafts", "1", "--queries", "5", "--no-judge"])
            .args(["--author", "Nell", "--out"])
            .arg(reports.path()),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("held-out perplexity") && text.contains("crash-test"),
        "{text}"
    );
    let html = std::fs::read_to_string(reports.path().join("eval-1.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("Style distance"));
    let report = json(&run_ok(
        twin(data.path())
            .args(["--json", "eval", "--show", "1", "--out"])
            .arg(reports.path()),
    ));
    assert_eq!(
        report["perplexity"].as_array().unwrap().len(),
        2,
        "{report}"
    );
    assert_eq!(report["run"]["status"], "done");
    let listed = json(&run_ok(
        twin(data.path()).args(["--json", "eval", "--list"]),
    ));
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let compared = json(&run_ok(twin(data.path()).args([
        "--json",
        "eval",
        "--compare",
        "1",
        "1",
    ])));
    let rows = compared.as_array().unwrap();
    assert!(!rows.is_empty() && rows.iter().all(|r| r["a"] == r["b"]));
    let missing = twin(data.path())
        .args(["eval", "--show", "99"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no evaluation run 99"));

    // Training again with the same settings makes a second adapter beside the first: the
    // first one's file is neither overwritten nor registered twice (this once failed at the
    // very end of the run, on the adapters table's unique path).
    run_ok(twin(data.path()).args(args));
    let list = json(&run_ok(
        twin(data.path()).args(["--json", "adapters", "list"]),
    ));
    let adapters = list["adapters"].as_array().unwrap();
    assert_eq!(adapters.len(), 2, "{list}");
    assert_ne!(adapters[0]["path"], adapters[1]["path"]);
    let second = adapters
        .iter()
        .find(|a| a["path"] != adapter_path.as_str())
        .unwrap();
    run_ok(twin(data.path()).args(["adapters", "rm", &second["id"].to_string()]));

    // Continuing from an adapter, with the preference term (LN-DPO on the dataset's machine
    // drafts): the run starts from crash-test's weights, so its first held-out loss is
    // crash-test's, below the base model's, and the adapter records both choices.
    let out = run_ok(twin(data.path()).args([
        "--json",
        "train",
        "--max-steps",
        "2",
        "--sequence-tokens",
        "256",
        "--eval-every",
        "2",
        "--preference",
        "--from",
        "crash-test",
        "--name",
        "pref",
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    let pref: serde_json::Value =
        serde_json::from_str(&text[text.find("{\n").expect("outcome JSON")..]).unwrap();
    let params = &pref["adapter"]["params"];
    // Length-normalised DPO by default, at its per-token β.
    assert_eq!(params["preference"]["objective"], "ln_dpo", "{params}");
    assert_eq!(params["preference"]["beta"], 1.0, "{params}");
    assert_eq!(params["init_adapter"], adapter_path.as_str());
    let start = pref["adapter"]["metrics"]["history"][0]["eval"]
        .as_f64()
        .unwrap();
    assert!(
        start < pref["base_eval_loss"].as_f64().unwrap(),
        "continued from crash-test: {pref}"
    );
    run_ok(twin(data.path()).args(["adapters", "rm", "pref"]));

    run_ok(twin(data.path()).args(["adapters", "rm", "crash-test"]));
    assert!(!std::path::Path::new(&adapter_path).exists());
    let list = json(&run_ok(
        twin(data.path()).args(["--json", "adapters", "list"]),
    ));
    assert!(list["adapters"].as_array().unwrap().is_empty());
}
