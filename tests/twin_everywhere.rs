//! The twin outside the app: the local OpenAI-compatible API, driven by the official `openai`
//! Python client against `twin serve`, and twin bundles moved between data folders.
//!
//! Both tests share one trained twin (the sample writing's posts and threads, two short
//! adapters, one continued from the other, and a channel choice), made once.

mod common;

use common::{json, repo_root, run_ok, twin};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The shared twin: a data folder with a library, a dataset and two adapters.
fn trained() -> &'static Path {
    static TWIN: OnceLock<tempfile::TempDir> = OnceLock::new();
    TWIN.get_or_init(|| {
        let data = common::library_for_training();
        run_ok(twin(data.path()).args([
            "dataset",
            "build",
            "--author",
            "Nell",
            "--machine-drafts",
            "0",
        ]));
        let train = |name: &str, from: Option<&str>| {
            let mut c = twin(data.path());
            c.args(["train", "--max-steps", "2", "--sequence-tokens", "128"])
                .args(["--eval-every", "2", "--name", name]);
            if let Some(f) = from {
                c.args(["--from", f]);
            }
            run_ok(&mut c);
        };
        train("voice-a", None);
        train("voice-b", Some("voice-a"));
        run_ok(twin(data.path()).args([
            "adapters",
            "use",
            "voice-a",
            "--channel",
            "linkedin",
            "--strength",
            "0.8",
        ]));
        data
    })
    .path()
}

/// The `openai` package installed by scripts/setup.sh.
fn python_with_openai() -> (PathBuf, PathBuf) {
    let site = repo_root().join("target/py-openai");
    assert!(
        site.join("openai").is_dir(),
        "the openai Python client is missing at {}: run scripts/setup.sh",
        site.display()
    );
    (PathBuf::from("python3"), site)
}

/// `text` without terminal colour codes (tracing colours its fields).
fn plain(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether a socket listens on `port`, and on which addresses (from /proc/net/tcp and tcp6).
fn listening_addresses(port: u16) -> Vec<String> {
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else {
                continue;
            };
            let Some((addr, p)) = local.split_once(':') else {
                continue;
            };
            if *state == "0A" && u16::from_str_radix(p, 16).ok() == Some(port) {
                found.push(format!("{table}:{addr}"));
            }
        }
    }
    found
}

#[test]
fn the_openai_python_client_lists_completes_streams_embeds_and_cancels() {
    let data = trained();
    let (python, site) = python_with_openai();
    let mut server = twin(data)
        .args(["--json", "serve"])
        .env("TWIN_LOG", "twin_api=info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(server.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let started: serde_json::Value = serde_json::from_str(&first).expect("twin serve's JSON line");
    let base_url = started["base_url"].as_str().unwrap().to_string();
    let token = started["token"].as_str().unwrap().to_string();
    let port = started["port"].as_u64().unwrap() as u16;
    assert!(base_url.starts_with("http://127.0.0.1:"), "{started}");

    // The token file is the user's alone; nothing listens beyond the loopback address.
    let token_file = data.join("api-token");
    let mode = std::fs::metadata(&token_file).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), token);
    let listening = listening_addresses(port);
    assert_eq!(
        listening,
        vec!["/proc/net/tcp:0100007F".to_string()],
        "127.0.0.1 only"
    );

    // Another user's process, without the token (it cannot read the file), is refused.
    let as_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let mut other = if as_root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "curl"]);
        c
    } else {
        Command::new("curl")
    };
    let refused = other
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("{base_url}/models"))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&refused.stdout), "401");
    if as_root {
        let read = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
            .arg(&token_file)
            .output()
            .unwrap();
        assert!(!read.status.success(), "another user read the token");
    }

    // The official client: models, completions, a stream, grounding, embeddings, errors, and
    // a stream closed early.
    let client = Command::new(&python)
        .arg(repo_root().join("tests/api_client.py"))
        .args([&base_url, &token])
        .env("PYTHONPATH", &site)
        .output()
        .unwrap();
    let report_text = String::from_utf8_lossy(&client.stdout).to_string();
    assert!(
        client.status.success(),
        "the openai client failed:\n{report_text}\n{}",
        String::from_utf8_lossy(&client.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(report_text.lines().last().unwrap()).unwrap();
    let models: Vec<String> = serde_json::from_value(report["models"].clone()).unwrap();
    assert!(
        models.contains(&"twin:voice-a".to_string())
            && models.contains(&"twin:voice-b".to_string()),
        "{models:?}"
    );

    // Stopping the server ends the process; its log says when the closed stream's generation
    // ended.
    interrupt(server.id());
    let mut log = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let _ = server.wait();
    let log = plain(&log);
    let ended = log
        .lines()
        .find(|l| l.contains("cancelled generation ended"))
        .unwrap_or_else(|| panic!("the closed stream's generation was not cancelled:\n{log}"));
    let at_ms: f64 = log_field(ended, "at_ms").unwrap_or_else(|| panic!("{ended}"));
    let tokens: usize = log_field(ended, "tokens").unwrap_or_else(|| panic!("{ended}"));
    let closed_ms = report["cancel"]["closed_at_ms"].as_f64().unwrap();
    let latency = at_ms - closed_ms;
    println!(
        "api: first token {} ms, {} tok/s streamed; a closed stream stopped {latency:.0} ms after \
         the client closed it, at token {tokens}; the next request answered in {} ms",
        report["stream"]["first_token_ms"],
        report["stream"]["tokens_per_s"],
        report["cancel"]["next_request_ms"]
    );
    println!("{report_text}");
    // Well inside the 2,000 tokens it was asked for: the client read 5 pieces before closing.
    // Counted in tokens, not milliseconds, so a busy machine cannot fail it.
    assert!(tokens < 200, "{tokens} tokens written after a close\n{log}");
}

/// The value of the field `name` in a log line (`… name=value …`).
fn log_field<T: std::str::FromStr>(line: &str, name: &str) -> Option<T> {
    line.split(&format!(" {name}="))
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// SIGINT, as Ctrl-C sends it.
fn interrupt(pid: u32) {
    let _ = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
}

/// A draft with a fixed seed, its text only.
fn draft(data: &Path) -> String {
    let d = json(&run_ok(twin(data).args([
        "--json",
        "draft",
        "--draft-only",
        "--no-self-query",
        "--expansions",
        "1",
        "--seed",
        "5",
        "-f",
        "linkedin",
        "sharp tools and small shops",
    ])));
    d["text"].as_str().unwrap().to_string()
}

/// Adapters as comparable rows (name, sha256, parent's name), and the channels' choices
/// (channel, adapter, strength).
type History = (
    Vec<(String, String, Option<String>)>,
    Vec<(String, String, f64)>,
);

/// The adapters list as comparable rows: name, sha256, parent's name, channels using it.
fn history(data: &Path) -> History {
    let list = json(&run_ok(twin(data).args(["--json", "adapters", "list"])));
    let adapters = list["adapters"].as_array().unwrap();
    let name_of = |path: &str| {
        adapters
            .iter()
            .find(|a| a["path"] == path)
            .map(|a| a["name"].as_str().unwrap().to_string())
    };
    let rows = adapters
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["sha256"].as_str().unwrap().to_string(),
                a["params"]["init_adapter"].as_str().and_then(name_of),
            )
        })
        .collect();
    let active = list["active"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["channel"].as_str().unwrap().to_string(),
                c["adapter"]["name"].as_str().unwrap_or("none").to_string(),
                c["scale"].as_f64().unwrap(),
            )
        })
        .collect();
    (rows, active)
}

/// A copy of `bundle` at `out` with its manifest changed by `edit` and, if given, one byte of
/// the entry `corrupt` flipped.
fn rewritten(
    bundle: &Path,
    out: &Path,
    edit: impl Fn(&mut serde_json::Value),
    corrupt: Option<&str>,
) {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(bundle).unwrap()).unwrap();
    let mut writer = zip::ZipWriter::new(std::fs::File::create(out).unwrap());
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let name = entry.name().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        if name == "manifest.json" {
            let mut m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            edit(&mut m);
            bytes = serde_json::to_vec(&m).unwrap();
        }
        if corrupt == Some(name.as_str()) {
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
        }
        writer
            .start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        writer.write_all(&bytes).unwrap();
    }
    writer.finish().unwrap();
}

fn fails_with(cmd: &mut Command, needle: &str) {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{cmd:?} succeeded");
    assert!(
        stderr.contains(needle),
        "{cmd:?}: expected {needle:?} in:\n{stderr}"
    );
}

#[test]
fn a_bundle_moves_the_twin_to_an_empty_data_folder_and_drafts_the_same() {
    let data = trained();
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("twin.twinpkg");
    let exported = json(&run_ok(
        twin(data)
            .args(["--json", "bundle", "export", "--with-library"])
            .arg(&bundle),
    ));
    let manifest = &exported["manifest"];
    assert_eq!(manifest["format_version"], 1);
    assert_eq!(manifest["base_model"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(manifest["adapters"].as_array().unwrap().len(), 2);
    assert!(
        !manifest["datasets"][0]["held_out"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{manifest}"
    );
    assert!(!manifest["style_card"]["text"].as_str().unwrap().is_empty());
    println!(
        "bundle with the library: {:.1} MB",
        exported["size"].as_f64().unwrap() / 1e6
    );

    // Into an empty data folder: the same adapters, lineage and channel choices, and the same
    // draft for the same seed.
    let moved = tempfile::tempdir().unwrap();
    let imported = json(&run_ok(
        twin(moved.path())
            .args(["--json", "bundle", "import"])
            .arg(&bundle),
    ));
    assert_eq!(imported["library"], true);
    let before = history(data);
    assert_eq!(history(moved.path()), before);
    assert_eq!(
        before
            .0
            .iter()
            .find(|a| a.0 == "voice-b")
            .unwrap()
            .2
            .as_deref(),
        Some("voice-a"),
        "voice-b was continued from voice-a: {before:?}"
    );
    for a in json(&run_ok(
        twin(moved.path()).args(["--json", "adapters", "list"]),
    ))["adapters"]
        .as_array()
        .unwrap()
    {
        assert!(
            a["path"]
                .as_str()
                .unwrap()
                .starts_with(moved.path().to_str().unwrap()),
            "{a}"
        );
    }
    let original = draft(data);
    assert_eq!(
        draft(moved.path()),
        original,
        "same seed, same twin, same draft"
    );

    // Without the library, into another empty folder: the twin arrives (adapters, history,
    // style card), ready for the writing to be imported.
    let light = work.path().join("light.twinpkg");
    let exported_light = json(&run_ok(
        twin(data).args(["--json", "bundle", "export"]).arg(&light),
    ));
    assert!(exported_light["manifest"]["library"].is_null());
    println!(
        "bundle without the library: {:.1} MB",
        exported_light["size"].as_f64().unwrap() / 1e6
    );
    let bare = tempfile::tempdir().unwrap();
    run_ok(twin(bare.path()).args(["bundle", "import"]).arg(&light));
    assert_eq!(history(bare.path()), before);
    let card = run_ok(twin(bare.path()).arg("style"));
    assert!(!String::from_utf8_lossy(&card.stdout).trim().is_empty());

    // Refusals leave the data folder as it was.
    let refused = tempfile::tempdir().unwrap();
    let newer = work.path().join("newer.twinpkg");
    rewritten(&bundle, &newer, |m| m["format_version"] = 99.into(), None);
    fails_with(
        twin(refused.path()).args(["bundle", "import"]).arg(&newer),
        "bundle format 99 is newer",
    );
    let damaged = work.path().join("damaged.twinpkg");
    let adapter_entry = manifest["adapters"][0]["file"]
        .as_str()
        .unwrap()
        .to_string();
    rewritten(&bundle, &damaged, |_| {}, Some(&adapter_entry));
    fails_with(
        twin(refused.path())
            .args(["bundle", "import"])
            .arg(&damaged),
        "does not match its checksum",
    );
    let elsewhere = work.path().join("other-base.twinpkg");
    rewritten(
        &bundle,
        &elsewhere,
        |m| {
            m["base_model"]["sha256"] = "0".repeat(64).into();
            m["base_model"]["path"] = "/nowhere/model.gguf".into();
        },
        None,
    );
    fails_with(
        twin(refused.path())
            .args(["bundle", "import"])
            .arg(&elsewhere),
        "--model <file.gguf>",
    );
    let wrong = repo_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    fails_with(
        twin(refused.path())
            .args(["bundle", "import", "--model"])
            .arg(&wrong)
            .arg(&elsewhere),
        "is not the twin's base model",
    );
    assert!(
        !refused.path().join("library.sqlite3").exists(),
        "a refused import stored nothing"
    );
    // A bundle with its library needs an empty data folder.
    fails_with(
        twin(moved.path()).args(["bundle", "import"]).arg(&bundle),
        "already holds a library",
    );
}

#[test]
fn ideas_come_from_the_authors_own_themes_and_cite_them() {
    let data = trained();
    let ideas = json(&run_ok(twin(data).args(["--json", "ideas"])));
    let themes = ideas["themes"].as_array().unwrap();
    assert!(themes.len() >= 2, "{ideas}");
    // The sample author's real topics, as the themes' names and keywords say them.
    let topics = [
        "workshop",
        "pricing",
        "price",
        "shipping",
        "maintenance",
        "estimates",
        "review",
        "rest",
        "grain",
        "jigs",
        "jig",
        "call",
        "boring",
        "debt",
        "juniors",
        "mentoring",
        "documentation",
        "docs",
        "tools",
        "sanding",
        "glue",
    ];
    let mut said: Vec<String> = Vec::new();
    for t in themes {
        said.extend(
            t["name"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .split(|c: char| !c.is_alphabetic())
                .map(String::from),
        );
        said.extend(
            t["keywords"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_string()),
        );
        assert!(!t["passages"].as_array().unwrap().is_empty(), "{t}");
    }
    let matched: std::collections::BTreeSet<&str> = topics
        .iter()
        .copied()
        .filter(|w| said.iter().any(|s| s == w))
        .collect();
    println!(
        "themes: {}",
        serde_json::to_string(
            &themes
                .iter()
                .map(|t| (&t["name"], &t["keywords"]))
                .collect::<Vec<_>>()
        )
        .unwrap()
    );
    assert!(
        matched.len() >= 3,
        "themes name the author's topics: {matched:?} of {said:?}"
    );
    // Every idea cites passages of its own theme.
    let ideas_list = ideas["ideas"].as_array().unwrap();
    assert!(ideas_list.len() >= themes.len(), "{ideas}");
    for idea in ideas_list {
        assert!(!idea["topic"].as_str().unwrap().trim().is_empty());
        let theme = themes.iter().find(|t| t["id"] == idea["theme"]).unwrap();
        let chunks: Vec<i64> = serde_json::from_value(theme["chunks"].clone()).unwrap();
        let cited = idea["citations"].as_array().unwrap();
        assert!(!cited.is_empty(), "{idea}");
        for c in cited {
            assert!(
                chunks.contains(&c["chunk_id"].as_i64().unwrap()),
                "{idea} cites a passage outside its theme"
            );
        }
    }
}
