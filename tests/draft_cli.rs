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
        assert!(twin_core::prompt::format::x_length(post) <= 280, "{post}");
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

    // Learning from edits: the text the user made of the draft is kept with it; the draft as
    // written teaches nothing; an unknown trace is a clear error.
    let id = trace_id.to_string();
    let kept = data.path().join("kept.md");
    std::fs::write(&kept, d["text"].as_str().unwrap()).unwrap();
    let same = json(&run_ok(
        twin(data.path())
            .args(["--json", "feedback", &id, "--final"])
            .arg(&kept),
    ));
    assert!(same.is_null(), "{same}");
    let edited = data.path().join("edited.md");
    let mine = format!("{}\n\nI would say it shorter.", d["text"].as_str().unwrap());
    std::fs::write(&edited, &mine).unwrap();
    let edit = json(&run_ok(
        twin(data.path())
            .args(["--json", "feedback", &id, "--final"])
            .arg(&edited),
    ));
    assert_eq!(edit["trace_id"].as_i64(), Some(trace_id), "{edit}");
    assert!(edit["changed"].as_f64().unwrap() > 0.0, "{edit}");
    let edits = json(&run_ok(twin(data.path()).args(["--json", "drafts"])));
    assert_eq!(edits.as_array().unwrap().len(), 1, "{edits}");
    assert_eq!(edits[0]["final_text"], mine.trim(), "{edits}");
    assert_eq!(edits[0]["draft"], d["text"], "{edits}");
    let missing = twin(data.path())
        .args(["feedback", "9999", "--final"])
        .arg(&edited)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no draft 9999"));

    // The quality bench: one draft measured by its checks and its fluency to the base model,
    // beside the author's own pieces as the reference.
    let bench = json(&run_ok(twin(data.path()).args([
        "--json",
        "bench",
        "quality",
        "--topic",
        "pricing a small product",
        "--formats",
        "linkedin",
        "--chains",
        "direct",
    ])));
    let perplexity = bench["drafts"][0]["base_perplexity"].as_f64().unwrap();
    assert!(perplexity > 1.0 && perplexity.is_finite(), "{bench}");
    let own = bench["summary"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["metric"] == "your own writing: base-model perplexity")
        .unwrap_or_else(|| panic!("{bench}"));
    let own: f64 = own["value"].as_str().unwrap().parse().unwrap();
    assert!(own > 1.0, "{bench}");

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
            .env_remove("TWIN_NO_PROMPT_HEAD")
            .arg("import")
            .arg(repo_root().join("assets/sample-writing")),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("first run: set up the default embedding model")
            && stderr.contains("registered the default chat model"),
        "{stderr}"
    );
    // The import prepared the first draft: a LinkedIn post's shared prompt head is on disk,
    // and the first draft reads it instead of evaluating it.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("prepared the next draft: kept the prompt head of LinkedIn posts"),
        "{stdout}"
    );
    let d = json(&run_ok(twin(data.path()).args([
        "--json",
        "draft",
        "--draft-only",
        "-f",
        "linkedin",
        "pricing a small product",
    ])));
    let trace = json(&run_ok(twin(data.path()).args([
        "--json",
        "traces",
        "show",
        &d["trace_id"].to_string(),
    ])));
    // The first step the model wrote (a small model's post plan is the author's own sentences,
    // taken without the model).
    let first_step = trace["detail"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["stats"])
        .find(|s| s["prompt_tokens"].as_u64().unwrap_or(0) > 0)
        .unwrap();
    assert!(
        first_step["from_disk_tokens"].as_u64().unwrap() > 300,
        "the first draft started from the kept head: {first_step}"
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
    // The default chat model is rewritten into the data folder with 8-bit weights, which
    // llama.cpp's CPU kernels read prompts faster from than the package's Q4_1.
    let chat = registered
        .iter()
        .find(|m| m["kind"] == "chat")
        .unwrap_or_else(|| panic!("{models}"));
    let chat_path = std::path::PathBuf::from(chat["path"].as_str().unwrap());
    assert!(
        chat_path.ends_with("models/SmolLM2-135M-Instruct.Q8_0.gguf")
            && chat_path.starts_with(std::fs::canonicalize(data.path()).unwrap()),
        "{models}"
    );
    assert!(
        registered.iter().any(|m| m["kind"] == "embedding"),
        "{models}"
    );
    // A second import provisions nothing again, and with nothing changed prepares nothing.
    let again = run_ok(
        twin(data.path())
            .env_remove("TWIN_NO_PROMPT_HEAD")
            .arg("import")
            .arg(repo_root().join("assets/sample-writing")),
    );
    assert!(!String::from_utf8_lossy(&again.stderr).contains("first run"));
    assert!(!String::from_utf8_lossy(&again.stdout).contains("prepared the next draft"));
}

/// A one-file Hugging Face–layout hub on localhost: `bytes` at `/{repo}/resolve/main/{file}`
/// with the LFS sha256 in `X-Linked-Etag`, 404 for anything else. Returns the base URL.
fn one_file_hub(repo: &str, file: &str, bytes: Vec<u8>, sha256: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let path = format!("/{repo}/resolve/main/{file} ");
    let sha256 = sha256.to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
            }
            if !request_line.contains(&path) {
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Linked-Etag: \"{sha256}\"\r\nConnection: close\r\n\r\n",
                bytes.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&bytes);
        }
    });
    base
}

/// `twin models recommend` judges the catalog against this machine's RAM (as llama.cpp reads
/// it), names a pick, and `twin models pull <id>` fetches that entry from a hub in Hugging
/// Face's layout, registers it and marks it installed.
#[test]
fn a_recommended_model_is_pulled_by_its_catalog_id() {
    let data = tempfile::tempdir().unwrap();
    let rec = json(&run_ok(twin(data.path()).args([
        "--json",
        "models",
        "recommend",
    ])));
    let ram = rec["machine"]["ram_bytes"].as_u64().unwrap();
    assert!(ram > 1_000_000_000, "{rec}");
    let models = rec["models"].as_array().unwrap();
    assert!(models.len() >= 10, "{rec}");
    assert!(models[0]["pick"] == true, "the pick comes first: {rec}");
    for m in models {
        // Nothing said to run here needs more than half the RAM (no GPU on CI).
        if m["placement"]["kind"] == "cpu" {
            assert!(m["draft_bytes"].as_u64().unwrap() <= ram / 2, "{m}");
        }
        assert_eq!(m["installed"], false);
    }
    let table = run_ok(twin(data.path()).args(["models", "recommend", "--all"]));
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("this computer:") && table.contains("★ best for this computer"),
        "{table}"
    );
    assert!(
        table.contains("no (gemma3 not supported)"),
        "Gemma cannot be trained: {table}"
    );

    // The catalog's SmolLM2-360M entry, served with the bytes of the built-in model.
    let model = repo_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let sha = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
    let hub = one_file_hub(
        "HuggingFaceTB/SmolLM2-360M-Instruct-GGUF",
        "smollm2-360m-instruct-q8_0.gguf",
        std::fs::read(&model).unwrap(),
        sha,
    );
    let pulled = json(&run_ok(twin(data.path()).env("HF_ENDPOINT", &hub).args([
        "--json",
        "models",
        "pull",
        "smollm2-360m",
    ])));
    assert_eq!(pulled["origin"], "pulled", "{pulled}");
    assert_eq!(pulled["sha256"], sha, "{pulled}");
    let rec = json(&run_ok(twin(data.path()).args([
        "--json",
        "models",
        "recommend",
        "--all",
    ])));
    let entry = rec["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["entry"]["id"] == "smollm2-360m")
        .unwrap();
    assert_eq!(entry["installed"], true, "{entry}");

    // An id that is not in the catalog is refused with a way forward.
    let out = twin(data.path())
        .env("HF_ENDPOINT", &hub)
        .args(["models", "pull", "no-such-model"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not a catalog id") && stderr.contains("twin models recommend"),
        "{stderr}"
    );
}
