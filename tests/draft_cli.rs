//! `twin draft`, `twin models`, `twin traces` and `twin style` end to end through the binary,
//! on the embedded default models and the sample writing.

mod common;

use common::{json, repo_root, run_ok, twin};

#[test]
fn a_thread_is_drafted_streamed_traced_and_listed() {
    let data = common::library_with_model();
    run_ok(
        twin(data.path())
            .arg("import")
            .arg(repo_root().join("assets/sample-writing")),
    );
    let smol = repo_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let added = json(&run_ok(
        twin(data.path())
            .args(["--json", "models", "add"])
            .arg(&smol),
    ));
    assert_eq!(added["kind"], "chat");
    assert_eq!(added["sha256"].as_str().unwrap().len(), 64);

    // Streaming text mode: the draft appears on stdout with its sources.
    let out = run_ok(twin(data.path()).args([
        "draft",
        "--format",
        "thread",
        "--draft-only",
        "--expansions",
        "2",
        "small pull requests and code review",
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("Sources:") && stdout.contains("1/ "),
        "{stdout}"
    );
    let likeness = stdout
        .lines()
        .find_map(|l| l.strip_prefix("sounds like you: "))
        .and_then(|rest| rest.split('%').next())
        .and_then(|p| p.parse::<u32>().ok());
    assert!(
        likeness.is_some_and(|p| p <= 100),
        "the draft shows its 'sounds like you' score: {stdout}"
    );
    assert!(
        stderr.contains("── draft ──") && stderr.contains("trace "),
        "{stderr}"
    );
    for line in stdout
        .lines()
        .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()) && l.contains("/ "))
    {
        let post = line.split(" [").next().unwrap_or(line);
        assert!(twin_core::draft::format::x_length(post) <= 280, "{post}");
    }

    // JSON mode.
    let d = json(&run_ok(twin(data.path()).args([
        "--json",
        "draft",
        "-f",
        "linkedin",
        "--draft-only",
        "--no-self-query",
        "--seed",
        "7",
        "pricing a small product",
    ])));
    assert!(!d["text"].as_str().unwrap().is_empty());
    assert!(!d["citations"].as_array().unwrap().is_empty());
    let trace_id = d["trace_id"].as_i64().unwrap();

    let traces = json(&run_ok(twin(data.path()).args(["--json", "traces"])));
    let traces = traces.as_array().unwrap();
    assert_eq!(traces.len(), 2);
    assert_eq!(traces[0]["id"].as_i64(), Some(trace_id));
    let shown = json(&run_ok(twin(data.path()).args([
        "--json",
        "traces",
        "show",
        &trace_id.to_string(),
    ])));
    assert_eq!(shown["output"], d["text"]);
    let text = String::from_utf8_lossy(
        &run_ok(twin(data.path()).args(["traces", "show", &trace_id.to_string()])).stdout,
    )
    .to_string();
    assert!(
        text.contains("templates") && text.contains("draft v2") && text.contains("first token"),
        "{text}"
    );

    let style = json(&run_ok(twin(data.path()).args(["--json", "style"])));
    assert!(style["text"].as_str().unwrap().contains("sentences"));

    let models = json(&run_ok(
        twin(data.path()).args(["--json", "models", "list"]),
    ));
    assert!(models["registered"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["kind"] == "chat"));
}

#[test]
fn a_corrupt_model_is_refused_with_its_name_and_nothing_breaks() {
    let data = common::library_with_model();
    let bad = data.path().join("half-downloaded.gguf");
    let smol = std::fs::read(repo_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    std::fs::write(&bad, &smol[..smol.len() / 3]).unwrap();
    let out = twin(data.path())
        .args(["models", "add"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("half-downloaded.gguf") && stderr.contains("truncated"),
        "{stderr}"
    );
    // Drafting on a fresh library registers the default chat model by itself (first run),
    // then says what is missing: writing to draw on.
    let out = twin(data.path())
        .args(["draft", "anything"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("registered the default chat model") && stderr.contains("twin import"),
        "{stderr}"
    );
}

/// First run: `twin import` on an empty data folder, with no prior command, sets up the
/// embedded default models by itself; search and the model list work at once.
#[test]
fn import_on_an_empty_data_folder_sets_up_the_default_models() {
    let data = tempfile::tempdir().unwrap();
    let out = run_ok(
        twin(data.path())
            .arg("import")
            .arg(repo_root().join("assets/sample-writing")),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("first run: set up the default embedding model")
            && stderr.contains("registered the default chat model"),
        "{stderr}"
    );
    let status = json(&run_ok(twin(data.path()).args(["--json", "status"])));
    let library = &status["library"];
    assert!(library["chunks"].as_u64().unwrap() > 0, "{status}");
    assert_eq!(library["chunks"], library["embedded_chunks"], "{status}");
    let hits = json(&run_ok(twin(data.path()).args([
        "--json",
        "search",
        "pricing a small product",
    ])));
    assert!(!hits.as_array().unwrap().is_empty(), "{hits}");
    let models = json(&run_ok(
        twin(data.path()).args(["--json", "models", "list"]),
    ));
    let registered = models["registered"].as_array().unwrap();
    assert!(registered.iter().any(|m| m["kind"] == "chat"), "{models}");
    assert!(
        registered.iter().any(|m| m["kind"] == "embedding"),
        "{models}"
    );
    // A second import provisions nothing again.
    let again = run_ok(
        twin(data.path())
            .arg("import")
            .arg(repo_root().join("assets/sample-writing")),
    );
    assert!(!String::from_utf8_lossy(&again.stderr).contains("first run"));
}
