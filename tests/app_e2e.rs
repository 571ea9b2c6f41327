//! The desktop app end to end in a real WebKit window: Xvfb, tauri-driver and WebKitWebDriver
//! (Debian's webkit2gtk-driver), driven over the plain WebDriver protocol. The main flow:
//! import the sample writing through the command the drop handler calls, wait for the progress
//! to finish, search, draft, and watch the text stream in with citations; then build a dataset,
//! train a short run with its live loss chart, use and roll back the adapter, and cancel a
//! longer run. A screenshot of every
//! screen is saved under `target/e2e-screenshots/`; launch time and idle RSS are printed.

use base64::Engine;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// Kills the processes this test started, by pid, even when an assertion fails.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in self.0.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// POST `body` as JSON and parse the JSON answer (Twin's ureq has no JSON feature).
fn post_json(url: &str, body: &Value) -> Result<Value, ureq::Error> {
    let mut resp = ureq::post(url)
        .header("Content-Type", "application/json")
        .send(body.to_string())?;
    let text = resp.body_mut().read_to_string()?;
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn get_json(url: &str) -> Result<Value, ureq::Error> {
    let text = ureq::get(url).call()?.body_mut().read_to_string()?;
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

struct Session {
    base: String,
}

impl Session {
    fn post(&self, path: &str, body: Value) -> Value {
        post_json(&format!("{}{path}", self.base), &body)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))["value"]
            .clone()
    }

    fn run(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": [] }))
    }

    fn run_async(&self, script: &str) -> Value {
        self.post("/execute/async", json!({ "script": script, "args": [] }))
    }

    fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = get_json(&format!("{}/screenshot", self.base)).unwrap()["value"]
            .as_str()
            .unwrap()
            .to_string();
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
        let dir = repo_root().join("target/e2e-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
        path
    }

    fn show(&self, screen: &str) {
        self.run(&format!(
            "document.querySelector('nav [data-screen=\"{screen}\"]').click(); return true;"
        ));
        std::thread::sleep(Duration::from_millis(600));
    }
}

/// RSS of the app process (the one running `binary`), in MiB.
fn rss_mib_of(binary: &Path) -> Option<f64> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let exe = std::fs::read_link(entry.path().join("exe")).ok();
        if exe.as_deref() == Some(binary) {
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            let kb: f64 = status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            return Some(kb / 1024.0);
        }
    }
    None
}

#[test]
fn main_flow_in_a_real_webkit_window() {
    let app = PathBuf::from(env!("CARGO_BIN_EXE_twin-app"))
        .canonicalize()
        .unwrap();
    // An empty data folder: the first drop sets up the embedded default models by itself.
    // Learning by itself is turned off first: the sample writing would wake a training cycle
    // (tests/autotrain.rs covers that) while this test drafts and trains by hand.
    let data = tempfile::tempdir().unwrap();
    {
        let store =
            twin_core::store::Store::open(&data.path().join(twin_core::library::DATABASE_FILE))
                .unwrap();
        twin_core::autotrain::AutotrainSettings {
            enabled: false,
            ..Default::default()
        }
        .save(&store)
        .unwrap();
    }
    let mut procs = Processes(Vec::new());

    // A virtual display of the size the app is designed for.
    let display = format!(":{}", 90 + std::process::id() % 100);
    procs.0.push(
        Command::new("Xvfb")
            .args([
                display.as_str(),
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb (scripts/setup.sh installs it)"),
    );
    let socket = format!("/tmp/.X11-unix/X{}", &display[1..]);
    wait_until("Xvfb", Duration::from_secs(10), || {
        Path::new(&socket).exists()
    });

    let port = free_port();
    let native = free_port();
    // `cargo install` puts tauri-driver in $CARGO_HOME/bin (default ~/.cargo/bin), which is
    // not always on PATH.
    let driver = [
        std::env::var_os("CARGO_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")),
    ]
    .into_iter()
    .flatten()
    .map(|d| d.join("bin/tauri-driver"))
    .find(|p| p.exists())
    .unwrap_or_else(|| PathBuf::from("tauri-driver"));
    procs.0.push(
        Command::new(driver)
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &native.to_string(),
            ])
            .env("DISPLAY", &display)
            .env("TWIN_DATA_DIR", data.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tauri-driver (scripts/setup.sh installs it)"),
    );
    let root = format!("http://127.0.0.1:{port}");
    wait_until("tauri-driver", Duration::from_secs(20), || {
        ureq::get(&format!("{root}/status")).call().is_ok()
    });

    // A platform export: a LinkedIn archive as downloaded.
    let exports = tempfile::tempdir().unwrap();
    let archive = exports
        .path()
        .join("Basic_LinkedInDataExport_12-01-2026.zip");
    {
        use std::io::Write;
        let mut z = zip::ZipWriter::new(std::fs::File::create(&archive).unwrap());
        z.start_file("Shares.csv", zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(
            "Date,ShareLink,ShareCommentary,SharedUrl,MediaUrl,Visibility\n\
             2024-03-05 09:15:00,https://www.linkedin.com/feed/update/urn%3Ali%3Ashare%3A1,\"Price is a signal.\"\"\n\"\"Charge more.\",,,PUBLIC\n\
             2024-03-06 09:15:00,https://www.linkedin.com/feed/update/urn%3Ali%3Ashare%3A2,\"Ship small, ship often.\",,,PUBLIC\n\
             2024-03-07 09:15:00,https://www.linkedin.com/feed/update/urn%3Ali%3Ashare%3A3,,https://example.com/a-repost,,PUBLIC\n"
                .as_bytes(),
        )
        .unwrap();
        z.finish().unwrap();
    }
    // Twin is opened with the sample writing and the archive ("Open with", `twin-app PATH…`):
    // the page imports them as if they were dropped, and they are the only paths it may name.
    let sample = repo_root().join("assets/sample-writing");
    let launched = Instant::now();
    let created = post_json(
        &format!("{root}/session"),
        &json!({
            "capabilities": { "alwaysMatch": { "tauri:options": { "application": app, "args": [&sample, &archive] } } }
        }),
    )
    .expect("a WebDriver session with the app");
    let id = created["value"]["sessionId"].as_str().unwrap().to_string();
    let s = Session {
        base: format!("{root}/session/{id}"),
    };
    wait_until(
        "the window to be interactive",
        Duration::from_secs(30),
        || s.run("return document.body.dataset.ready || ''") == json!("yes"),
    );
    let startup = launched.elapsed();
    std::thread::sleep(Duration::from_millis(800));
    let idle_rss = rss_mib_of(&app);
    eprintln!(
        "launch to interactive window: {} ms; idle RSS of the app process: {}",
        startup.as_millis(),
        idle_rss.map_or("unknown".into(), |r| format!("{r:.0} MiB"))
    );
    s.post("/timeouts", json!({ "script": 300_000 }));
    s.screenshot("0-library-empty");

    // The paths Twin was opened with are imported as a drop is (window.twinImport).
    wait_until(
        "the import of the paths Twin was opened with",
        Duration::from_secs(300),
        || {
            s.run("return document.getElementById('import-progress').dataset.state || ''")
                .as_str()
                .is_some_and(|st| st == "done" || st == "error")
        },
    );
    let label = s.run("return document.getElementById('import-label').textContent");
    let report = s.run("return window.twinLastImport || null");
    assert_eq!(
        report["added"], 33,
        "31 sample pieces and 2 LinkedIn posts: {label} {report}"
    );
    assert_eq!(report["exports"][0]["platform"], "linkedin", "{report}");
    let sources = s.run("return document.querySelectorAll('#sources tbody tr').length");
    assert_eq!(sources, json!(2));

    // Paths the user did not pick, drop or open Twin with are refused by every command that
    // takes one, even when the page names a real file (here: a note beside nothing granted,
    // and the chat model itself).
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(
        outside.path().join("private.md"),
        "# Not for Twin\n\nPrivate.",
    )
    .unwrap();
    let export_target = outside.path().join("overwritten.md");
    let model = repo_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let refusals = s.run_async(&format!(
        "const done = arguments[arguments.length - 1];
         const invoke = window.__TAURI_INTERNALS__.invoke;
         const outcome = (p) => p.then(() => 'accepted', (e) => e);
         // What `Channel` serialises to: a callback id the shell streams progress to.
         const channel = () => '__CHANNEL__:' + window.__TAURI_INTERNALS__.transformCallback(() => {{}});
         Promise.all([
           outcome(window.twinImport([{file}])),
           outcome(window.twinWatch({dir})),
           outcome(invoke('export_markdown', {{ path: {target}, topic: 't', format: 'linkedin', text: 'x' }})),
           outcome(invoke('add_model', {{ path: {model}, origin: null }})),
           outcome(invoke('bundle_export', {{ path: {bundle}, withLibrary: true, onEvent: channel() }})),
           outcome(invoke('bundle_import', {{ path: {file}, model: null, onEvent: channel() }})),
         ]).then(done);",
        file = json!(outside.path().join("private.md")),
        dir = json!(outside.path()),
        target = json!(export_target),
        model = json!(model),
        bundle = json!(outside.path().join("twin.twinpkg")),
    ));
    for (command, outcome) in [
        "import_paths",
        "watch_folder",
        "export_markdown",
        "add_model",
        "bundle_export",
        "bundle_import",
    ]
    .iter()
    .zip(refusals.as_array().expect("six outcomes"))
    {
        // Errors reach the page as data: `{kind, message, path}`.
        assert_eq!(outcome["kind"], "bad_input", "{command}: {outcome}");
        assert!(
            outcome["message"]
                .as_str()
                .is_some_and(|o| o.contains("not a file or folder you picked or dropped")),
            "{command} refused a path the user never chose: {outcome}"
        );
    }
    assert!(!export_target.exists(), "nothing was written");
    assert!(
        !outside.path().join("twin.twinpkg").exists(),
        "no bundle was written"
    );
    let after = s.run("return document.querySelectorAll('#sources tbody tr').length");
    assert_eq!(after, json!(2), "no source was added");
    // First run: with writing in the library and no voice adapter, the app offers to train.
    wait_until("the offer to train", Duration::from_secs(20), || {
        s.run("return document.getElementById('train-offer').hidden") == json!(false)
    });

    // Search.
    s.run(
        "document.getElementById('search-input').value = 'how to price a small product';
         document.getElementById('search-form').requestSubmit(); return true;",
    );
    wait_until("search results", Duration::from_secs(60), || {
        let st = s.run("return document.getElementById('search-results').dataset.state || ''");
        st == json!("done") || st == json!("error")
    });
    let status = s.run("return document.getElementById('status').textContent");
    assert_eq!(
        s.run("return document.getElementById('search-results').dataset.state"),
        json!("done"),
        "{status}"
    );
    let first = s.run("return document.querySelector('#search-results li')?.textContent || ''");
    assert!(
        first.as_str().unwrap().to_lowercase().contains("pric"),
        "the first result is about pricing: {first}"
    );
    s.screenshot("1-library");

    // Draft: typing the topic gathers the sources ahead; then text streams in, with citations.
    s.show("draft");
    s.run(
        "document.getElementById('draft-only').checked = true;
         const t = document.getElementById('draft-topic');
         t.value = 'how to price a small software product';
         t.dispatchEvent(new Event('input')); return true;",
    );
    wait_until("the draft's sources", Duration::from_secs(240), || {
        s.run("return document.getElementById('draft-ready').dataset.state") == json!("ready")
    });
    let ready = s.run("return document.getElementById('draft-ready').textContent");
    assert!(ready.as_str().unwrap().starts_with("Ready: "), "{ready}");
    s.run("document.getElementById('draft-form').requestSubmit(); return true;");
    let mut saw_streaming = false;
    wait_until("the draft", Duration::from_secs(240), || {
        let out = s.run(
            "const o = document.getElementById('draft-output');
             return [o.dataset.state, o.dataset.streamed || '', o.textContent.length];",
        );
        if out[0] == "running" && out[1] == "yes" && out[2].as_u64().unwrap_or(0) > 0 {
            saw_streaming = true;
        }
        out[0] == "done" || out[0] == "error"
    });
    let state = s.run("return document.getElementById('draft-output').dataset.state");
    let text = s.run("return document.getElementById('draft-output').textContent");
    assert!(
        saw_streaming,
        "text streamed into the window before the draft finished ({state}: {text})"
    );
    assert_eq!(state, json!("done"), "{text}");
    assert!(
        text.as_str().unwrap().split_whitespace().count() > 20,
        "{text}"
    );
    assert_eq!(
        s.run("return document.getElementById('draft-output').dataset.prepared"),
        json!("yes"),
        "the draft started from what was gathered while the topic was typed"
    );
    // Draft health: every check listed, and a verdict that matches the checks.
    let health = s.run(
        "const h = document.getElementById('draft-health');
         return [h.hidden, h.dataset.publishable || '', h.querySelectorAll('li').length,
                 h.querySelectorAll('li[data-passed=\"no\"]').length, h.textContent];",
    );
    assert_eq!(
        health[0],
        json!(false),
        "the health panel is shown: {health}"
    );
    assert!(health[2].as_u64().unwrap() >= 6, "{health}");
    assert_eq!(
        health[1] == json!("yes"),
        health[4].as_str().unwrap().starts_with("Ready to post"),
        "{health}"
    );
    let citations = s.run("return document.querySelectorAll('#citations li').length");
    assert!(
        citations.as_u64().unwrap() >= 1,
        "the draft lists its sources"
    );
    s.run("document.querySelector('#citations button').click(); return true;");
    let snippet = s.run("return document.getElementById('citation-detail').textContent");
    assert!(
        snippet.as_str().unwrap().contains("sample-writing"),
        "{snippet}"
    );
    let likeness = s.run(
        "const l = document.getElementById('draft-likeness'); return [l.hidden, l.textContent];",
    );
    assert_eq!(
        likeness[0],
        json!(false),
        "the draft shows its 'sounds like you' score"
    );
    assert!(
        likeness[1]
            .as_str()
            .unwrap()
            .starts_with("Sounds like you: "),
        "{likeness}"
    );
    s.screenshot("2-draft");

    // The draft is the user's to edit: marking the edited text final keeps the pair (model's
    // text, user's text) that Twin learns from.
    assert_eq!(
        s.run("return document.getElementById('draft-output').isContentEditable"),
        json!(true)
    );
    s.run(
        "const o = document.getElementById('draft-output');
         o.textContent = 'Honestly? ' + o.textContent + '\\n\\nEdited by hand before posting.';
         document.getElementById('draft-final').click(); return true;",
    );
    wait_until("the edit kept", Duration::from_secs(30), || {
        s.run("return document.getElementById('draft-edited').textContent")
            .as_str()
            .is_some_and(|t| t.starts_with("Your edit is kept"))
    });
    let edits = twin_core::store::Store::open(&data.path().join(twin_core::library::DATABASE_FILE))
        .unwrap()
        .draft_edits(10)
        .unwrap();
    assert_eq!(edits.len(), 1, "{edits:?}");
    assert!(edits[0].final_text.starts_with("Honestly? "), "{edits:?}");
    assert!(edits[0]
        .final_text
        .ends_with("Edited by hand before posting."));
    assert!(
        edits[0].changed > 0.0 && edits[0].changed < 0.5,
        "{edits:?}"
    );
    assert_eq!(edits[0].draft.trim(), text.as_str().unwrap().trim());

    // Ideas from the user's own themes, each citing what it came from; one click writes it.
    s.run(
        "document.getElementById('ideas-box').open = true;
         document.getElementById('ideas-go').click(); return true;",
    );
    wait_until("the ideas", Duration::from_secs(180), || {
        s.run("return document.querySelectorAll('#ideas li').length")
            .as_u64()
            .is_some_and(|n| n >= 2)
    });
    let idea = s.run(
        "const li = document.querySelector('#ideas li');
         return [li.querySelector('button').textContent, li.textContent];",
    );
    let idea_topic = idea[0].as_str().unwrap().to_string();
    assert!(
        idea[1].as_str().unwrap().contains("from: "),
        "an idea names its sources: {idea}"
    );
    s.screenshot("2b-draft-ideas");
    s.run("document.querySelector('#ideas li button').click(); return true;");
    wait_until("the idea being written", Duration::from_secs(30), || {
        s.run("return document.getElementById('draft-output').dataset.state") != json!("done")
    });
    wait_until("the idea written", Duration::from_secs(300), || {
        s.run("return document.getElementById('draft-output').dataset.state") == json!("done")
            && s.run("return document.getElementById('draft-topic').value") == json!(idea_topic)
    });

    // Train: build the dataset (the local model back-translates every passage), plan, train a
    // short run with the live loss chart, then use and roll back the adapter it made.
    s.show("train");
    s.run("document.getElementById('dataset-build').click(); return true;");
    wait_until("the dataset", Duration::from_secs(600), || {
        let st = s.run("return document.getElementById('dataset-summary').dataset.state || ''");
        st == json!("done") || st == json!("error")
    });
    let summary = s.run("return document.getElementById('dataset-summary').textContent");
    assert!(
        summary.as_str().unwrap().starts_with("Dataset "),
        "{summary}"
    );
    let examples = s.run("return document.querySelectorAll('#dataset-examples li').length");
    assert!(examples.as_u64().unwrap() >= 5, "the dataset is previewed");
    // Each example is titled by the request it answers, stored with it (not one shared line).
    let titles = s.run(
        "return [...document.querySelectorAll('#dataset-examples li .title')].map(t => t.textContent)",
    );
    let titles: Vec<&str> = titles
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    let distinct: std::collections::HashSet<_> = titles.iter().collect();
    assert!(
        titles.iter().all(|t| {
            [
                "LinkedIn post: ",
                "X thread: ",
                "Blog article: ",
                "Newsletter: ",
            ]
            .iter()
            .any(|f| t.starts_with(f))
        }) && distinct.len() > 1,
        "every preview titled by its own request: {titles:?}"
    );
    s.run(
        "document.getElementById('train-epochs').value = '1';
         document.getElementById('train-steps').value = '3';
         document.getElementById('train-plan').click(); return true;",
    );
    wait_until("the training plan", Duration::from_secs(120), || {
        s.run("return document.getElementById('plan').textContent")
            .as_str()
            .is_some_and(|t| t.contains("steps") && !t.contains("measuring"))
    });
    let plan = s.run("return document.getElementById('plan').textContent");
    assert!(plan.as_str().unwrap().contains(", 3 steps"), "{plan}");
    s.run("document.getElementById('train-start').click(); return true;");
    wait_until("the training run", Duration::from_secs(600), || {
        let st = s.run("return document.getElementById('train-state').dataset.state || ''");
        st == json!("done") || st == json!("error") || st == json!("cancelled")
    });
    let trained = s.run("return document.getElementById('train-state').textContent");
    assert_eq!(
        s.run("return document.getElementById('train-state').dataset.state"),
        json!("done"),
        "{trained}"
    );
    assert!(
        trained.as_str().unwrap().contains("held-out loss"),
        "{trained}"
    );
    let curve = s.run(
        "return document.querySelector('#loss-chart polyline.train')?.getAttribute('points') || ''",
    );
    assert_eq!(
        curve.as_str().unwrap().split_whitespace().count(),
        3,
        "one loss point per step: {curve}"
    );
    let in_use = || {
        s.run("return document.querySelector('#adapters tbody tr td:nth-child(3)')?.textContent || ''")
    };
    wait_until(
        "the new adapter in the list",
        Duration::from_secs(20),
        || in_use() == json!("default@1"),
    );
    wait_until(
        "the offer to go once trained",
        Duration::from_secs(20),
        || s.run("return document.getElementById('train-offer').hidden") == json!(true),
    );
    // The Twin history: automation's state and every training cycle (none here).
    wait_until("the twin history", Duration::from_secs(20), || {
        s.run("return document.getElementById('autotrain-summary').textContent")
            .as_str()
            .is_some_and(|t| t.contains("Learning by itself is off"))
    });
    s.screenshot("3-train");
    s.run("document.getElementById('adapter-rollback').click(); return true;");
    wait_until(
        "the rollback to the base model",
        Duration::from_secs(20),
        || in_use() == json!("—"),
    );
    s.run("document.querySelector('#adapters tbody button').click(); return true;");
    wait_until("the adapter in use again", Duration::from_secs(20), || {
        in_use() == json!("default@1")
    });

    // Cancelling a longer run stops it and says so.
    s.run(
        "document.getElementById('train-steps').value = '';
         document.getElementById('train-epochs').value = '20';
         document.getElementById('train-start').click(); return true;",
    );
    wait_until("a training step", Duration::from_secs(300), || {
        s.run("return document.getElementById('train-state').textContent")
            .as_str()
            .is_some_and(|t| t.starts_with("step "))
    });
    s.run("document.getElementById('train-cancel').click(); return true;");
    wait_until("the cancelled run", Duration::from_secs(60), || {
        s.run("return document.getElementById('train-state').dataset.state") != json!("running")
    });
    let cancelled = s.run("return document.getElementById('train-state').textContent");
    assert_eq!(
        s.run("return document.getElementById('train-state').dataset.state"),
        json!("cancelled"),
        "{cancelled}"
    );

    // The Evaluate screen renders a stored run's report, with every number computed from the
    // run's measurements: here two configurations whose NLL sums give perplexity e² and e¹.
    let store = twin_core::store::Store::open(&data.path().join(twin_core::library::DATABASE_FILE))
        .unwrap();
    let run = store
        .put_eval_run(&twin_core::store::EvalRunRecord {
            id: 0,
            run_key: "e2e".into(),
            status: twin_core::store::RunStatus::Done,
            dataset_id: "e2e-dataset".into(),
            base_sha256: "0".repeat(64),
            params: json!(null),
            error: None,
            created_at: 0,
            updated_at: 0,
        })
        .unwrap();
    for (config, sum) in [("base", 20.0), ("adapter:1", 10.0)] {
        store
            .put_eval_item(
                run,
                &twin_core::store::EvalItem {
                    kind: twin_core::store::EvalItemKind::Nll,
                    config: config.into(),
                    key: "0".into(),
                    value: sum,
                    detail: json!({ "tokens": 10 }),
                },
            )
            .unwrap();
    }
    s.show("evaluate");
    wait_until("the list of runs", Duration::from_secs(20), || {
        s.run("return document.querySelectorAll('#eval-runs button').length") == json!(1)
    });
    s.run("document.querySelector('#eval-runs button').click(); return true;");
    wait_until("the report", Duration::from_secs(20), || {
        s.run("return document.getElementById('eval-report').textContent.includes('Evaluation #')")
            == json!(true)
    });
    let report = s.run("return document.getElementById('eval-report').textContent");
    let report = report.as_str().unwrap();
    assert!(
        report.contains("7.39") && report.contains("2.72"),
        "perplexities e² and e¹ are shown: {report}"
    );
    s.screenshot("4-evaluate");

    s.show("settings");
    let models = s.run("return document.querySelector('#models tbody').textContent");
    assert!(
        models.as_str().unwrap().contains("SmolLM2"),
        "the chat model is listed: {models}"
    );
    // "Recommended for this computer": the catalog judged against this machine, a pick first.
    wait_until("the recommended models", Duration::from_secs(20), || {
        s.run("return document.querySelectorAll('#recommended tbody tr').length")
            .as_u64()
            .is_some_and(|n| n >= 5)
    });
    let pick =
        s.run("return document.querySelector('#recommended tbody tr.pick')?.textContent || ''");
    assert!(pick.as_str().unwrap().starts_with('★'), "{pick}");
    let machine = s.run("return document.getElementById('recommended-machine').textContent");
    assert!(machine.as_str().unwrap().contains("GB RAM"), "{machine}");
    // The switch shows the stored setting, and saving it keeps it (a threshold no library
    // here reaches, so no cycle starts).
    wait_until("the learning switch", Duration::from_secs(20), || {
        s.run("return document.getElementById('set-autotrain-words').value") == json!("2000")
    });
    assert_eq!(
        s.run("return document.getElementById('set-autotrain').checked"),
        json!(false)
    );
    s.run(
        "document.getElementById('set-autotrain-words').value = '500000';
         document.querySelector('#autotrain-form button[type=submit]').click(); return true;",
    );
    wait_until(
        "the learning settings saved",
        Duration::from_secs(20),
        || s.run("return document.getElementById('autotrain-state').textContent") == json!("saved"),
    );
    // The local API's switch: on, it serves the twin to a real HTTP client with the key it
    // shows, and refuses one without it.
    wait_until("the API switch", Duration::from_secs(20), || {
        s.run("return document.getElementById('api-state').textContent") == json!("off")
    });
    s.run(
        "document.getElementById('set-api').checked = true;
         document.getElementById('set-api-port').value = '0';
         document.querySelector('#api-form button[type=submit]').click(); return true;",
    );
    wait_until("the API serving", Duration::from_secs(20), || {
        s.run("return document.getElementById('api-state').textContent") == json!("serving")
    });
    let api_url = s.run("return document.getElementById('api-url').textContent");
    let api_url = api_url.as_str().unwrap().to_string();
    let key = s.run("return document.getElementById('api-token').textContent");
    let key = key.as_str().unwrap().to_string();
    assert!(api_url.starts_with("http://127.0.0.1:"), "{api_url}");
    let models = ureq::get(&format!("{api_url}/models"))
        .header("Authorization", &format!("Bearer {key}"))
        .call()
        .expect("the API answers with the key")
        .body_mut()
        .read_to_string()
        .unwrap();
    let models: Value = serde_json::from_str(&models).unwrap();
    assert!(
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "twin"),
        "{models}"
    );
    let refused = ureq::get(&format!("{api_url}/models")).call();
    assert!(
        matches!(refused, Err(ureq::Error::StatusCode(401))),
        "without the key: {refused:?}"
    );
    s.screenshot("5-settings");
    s.run("document.getElementById('api-form').scrollIntoView(); return true;");
    s.screenshot("5b-settings-api");

    // The LinkedIn archive Twin was opened with is listed with what it held.
    s.show("library");
    wait_until(
        "the export among the sources",
        Duration::from_secs(30),
        || {
            s.run("return document.getElementById('sources').textContent.includes('linkedin: 2 posts')")
            == json!(true)
        },
    );
    s.screenshot("6-library-export");

    let _ = ureq::delete(&s.base).call();
}
