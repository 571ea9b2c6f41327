//! The model registry on a real SQLite file: registering, finding and verifying GGUF files,
//! discovering Ollama's and LM Studio's models in place, and resumable downloads from a local
//! HTTP server in Hugging Face's URL layout (the real hub is unreachable in tests).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use twin_core::gguf::{self, Tensor, TensorType, Value};
use twin_core::models::{self, registry, ModelError, ModelKind, PullRequest};
use twin_core::progress::NoProgress;
use twin_core::store::Store;
use twin_core::CancelToken;

/// A small but valid GGUF "model" (a llama-architecture header and one 256 KiB tensor).
fn tiny_gguf(path: &Path, name: &str) {
    let meta = vec![
        (
            "general.architecture".to_string(),
            Value::Str("llama".into()),
        ),
        ("general.name".to_string(), Value::Str(name.into())),
    ];
    let values: Vec<f32> = (0..65536).map(|i| (i % 97) as f32 / 97.0).collect();
    let t = Tensor::from_f32("token_embd.weight", &[256, 256], &values, TensorType::F32);
    gguf::write(path, &meta, &[t]).unwrap();
}

#[test]
fn registered_models_are_found_verified_and_activated() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("lib.sqlite3")).unwrap();
    let a = dir.path().join("alpha-1b.gguf");
    let b = dir.path().join("beta-1b.gguf");
    tiny_gguf(&a, "alpha");
    tiny_gguf(&b, "beta");
    let ra = registry::register(&store, &a, "added", None, None).unwrap();
    assert_eq!(ra.kind, "chat");
    assert_eq!(ra.sha256, registry::sha256_file(&a).unwrap());
    // One chat model: it is the active one without being chosen.
    assert_eq!(
        registry::active(&store, ModelKind::Chat)
            .unwrap()
            .unwrap()
            .id,
        ra.id
    );
    let rb = registry::register(&store, &b, "added", None, None).unwrap();
    assert!(registry::active(&store, ModelKind::Chat).unwrap().is_none());
    registry::set_active(&store, &rb).unwrap();
    assert_eq!(
        registry::active(&store, ModelKind::Chat)
            .unwrap()
            .unwrap()
            .id,
        rb.id
    );
    assert_eq!(registry::find(&store, "alp").unwrap().id, ra.id);
    assert_eq!(
        registry::find(&store, &ra.id.to_string()).unwrap().id,
        ra.id
    );
    assert!(matches!(
        registry::find(&store, "nope"),
        Err(ModelError::NotFound(_))
    ));
    // Registering the same file again updates it instead of duplicating it.
    registry::register(&store, &a, "added", Some("alpha renamed"), None).unwrap();
    assert_eq!(store.models().unwrap().len(), 2);

    // A changed file no longer verifies.
    registry::verify(&ra, true).unwrap();
    let mut bytes = std::fs::read(&a).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&a, &bytes).unwrap();
    let err = registry::verify(&ra, false).unwrap_err().to_string();
    assert!(
        err.contains("alpha-1b.gguf") && err.contains("sha256"),
        "{err}"
    );
}

#[test]
fn bad_files_are_refused_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("lib.sqlite3")).unwrap();
    let cut = dir.path().join("cut.gguf");
    tiny_gguf(&cut, "cut");
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = registry::register(&store, &cut, "added", None, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cut.gguf") && err.contains("truncated"),
        "{err}"
    );
    let junk = dir.path().join("junk.gguf");
    std::fs::write(&junk, b"<html>404 Not Found</html>").unwrap();
    let err = registry::register(&store, &junk, "added", None, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("junk.gguf") && err.contains("magic"), "{err}");
    assert!(store.models().unwrap().is_empty());
}

#[test]
fn ollama_and_lm_studio_models_are_discovered_and_used_in_place() {
    let home = tempfile::tempdir().unwrap();
    // Ollama: a manifest naming a blob by its sha256.
    let ollama = home.path().join(".ollama/models");
    std::fs::create_dir_all(ollama.join("blobs")).unwrap();
    let staging = home.path().join("staging.gguf");
    tiny_gguf(&staging, "smol");
    let sha = registry::sha256_file(&staging).unwrap();
    let blob = ollama.join(format!("blobs/sha256-{sha}"));
    std::fs::rename(&staging, &blob).unwrap();
    let manifest_dir = ollama.join("manifests/registry.ollama.ai/library/smol");
    std::fs::create_dir_all(&manifest_dir).unwrap();
    std::fs::write(
        manifest_dir.join("135m"),
        serde_json::json!({
            "schemaVersion": 2,
            "layers": [
                {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:0000"},
                {"mediaType": "application/vnd.ollama.image.model", "digest": format!("sha256:{sha}")}
            ]
        })
        .to_string(),
    )
    .unwrap();
    // A broken manifest is skipped, not fatal.
    std::fs::write(manifest_dir.join("broken"), "{not json").unwrap();
    // LM Studio: publisher/repo/file.gguf, with a vision projector that is not a model.
    let lms = home.path().join(".lmstudio/models/someone/Tiny-GGUF");
    std::fs::create_dir_all(&lms).unwrap();
    tiny_gguf(&lms.join("tiny-q4.gguf"), "tiny");
    tiny_gguf(&lms.join("mmproj-tiny.gguf"), "proj");

    let found = models::discover(home.path());
    let names: Vec<&str> = found.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["someone/Tiny-GGUF/tiny-q4.gguf", "smol:135m"],
        "{found:?}"
    );
    let smol = found.iter().find(|d| d.origin == "ollama").unwrap();
    assert_eq!(smol.sha256.as_deref(), Some(sha.as_str()));

    let data = tempfile::tempdir().unwrap();
    let store = Store::open(&data.path().join("lib.sqlite3")).unwrap();
    let record = registry::register(&store, &smol.path, "ollama", Some(&smol.name), None).unwrap();
    assert_eq!(record.sha256, sha, "hashed, and equal to the blob's name");
    // In place: the registry points at Ollama's blob, nothing was copied.
    assert_eq!(PathBuf::from(&record.path), blob.canonicalize().unwrap());
    assert_eq!(
        std::fs::read_dir(data.path()).unwrap().count(),
        3,
        "db, -wal, -shm only"
    );
    registry::verify(&record, true).unwrap();

    // A blob whose bytes no longer match its digest name is refused, not served.
    let other = ollama.join(format!("blobs/sha256-{}", "0".repeat(64)));
    std::fs::copy(&blob, &other).unwrap();
    let err = registry::register(&store, &other, "ollama", Some("swapped"), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sha256") && err.contains(&"0".repeat(12)),
        "{err}"
    );
}

/// What the local hub does with one request for the file.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// Serve `version` from the requested offset, closing after `cut` body bytes if given.
    Serve { version: usize, cut: Option<usize> },
    /// Accept, then send nothing (a dead server).
    Stall,
    /// Redirect to `/cdn/tiny.gguf` (served without `X-Linked-Etag`, as a CDN does), naming
    /// `etag` as the file's sha256 on the redirect, as the hub does.
    Redirect { etag: &'static str },
}

/// A minimal HTTP server in Hugging Face's URL layout, serving one of `versions` at
/// `/{repo}/resolve/main/tiny.gguf` with the LFS sha256 in `X-Linked-Etag`, honouring `Range`
/// and `If-Range` (a changed file is sent whole, as a real CDN does). Request `n` is answered
/// as `script(n)`. Returns the base URL and the `Range` header of every request.
fn scripted_hub(
    versions: Vec<Vec<u8>>,
    script: impl Fn(usize) -> Answer + Send + 'static,
) -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    use sha2::Digest;
    let shas: Vec<String> = versions
        .iter()
        .map(|v| format!("{:x}", sha2::Sha256::digest(v)))
        .collect();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&ranges);
    std::thread::spawn(move || {
        let mut served = 0;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let (mut range, mut if_range) = (None, None);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("range") {
                        range = Some(v.trim().to_string());
                    } else if k.eq_ignore_ascii_case("if-range") {
                        if_range = Some(v.trim().trim_matches('"').to_string());
                    }
                }
            }
            let from_cdn = request_line.contains(" /cdn/tiny.gguf ");
            if !request_line.contains("/resolve/main/tiny.gguf ") && !from_cdn {
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            }
            seen.lock().unwrap().push(range.clone());
            let answer = if from_cdn {
                Answer::Serve {
                    version: 0,
                    cut: None,
                }
            } else {
                let a = script(served);
                served += 1;
                a
            };
            let (version, cut) = match answer {
                Answer::Stall => {
                    // Hold the connection open, silent, until the client gives up.
                    std::thread::spawn(move || {
                        std::thread::sleep(std::time::Duration::from_secs(120));
                        drop(stream);
                    });
                    continue;
                }
                Answer::Redirect { etag } => {
                    let etag = if etag.is_empty() {
                        shas[0].as_str()
                    } else {
                        etag
                    };
                    let _ = stream.write_all(
                        format!(
                            "HTTP/1.1 302 Found\r\nLocation: /cdn/tiny.gguf\r\nX-Linked-Etag: \"{etag}\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    );
                    continue;
                }
                Answer::Serve { version, cut } => (version, cut),
            };
            let (bytes, sha) = (&versions[version], &shas[version]);
            let unchanged = if_range.as_deref().is_none_or(|id| id == sha);
            let start = range
                .as_deref()
                .filter(|_| unchanged)
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok())
                .unwrap_or(0)
                .min(bytes.len());
            let body = &bytes[start..];
            let status = if start > 0 {
                "206 Partial Content"
            } else {
                "200 OK"
            };
            let etag = if from_cdn {
                String::new()
            } else {
                format!("X-Linked-Etag: \"{sha}\"\r\n")
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{etag}Content-Range: bytes {start}-{}/{}\r\nConnection: close\r\n\r\n",
                body.len(),
                bytes.len() - 1,
                bytes.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let sent = cut.unwrap_or(body.len()).min(body.len());
            let _ = stream.write_all(&body[..sent]);
            // Dropping the stream closes the connection, mid-body when cut.
        }
    });
    (addr, ranges)
}

/// The first answer announces the whole file, sends half, and closes the connection.
fn flaky_hub(bytes: Vec<u8>) -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    let half = bytes.len() / 2;
    scripted_hub(vec![bytes], move |n| Answer::Serve {
        version: 0,
        cut: (n == 0).then_some(half),
    })
}

fn request_for(endpoint: String) -> PullRequest {
    PullRequest {
        endpoint,
        repo: "someone/Tiny-GGUF".into(),
        file: "tiny.gguf".into(),
        revision: "main".into(),
        stall_timeout: models::STALL_TIMEOUT,
    }
}

/// How many trials of each kind: a few in the test suite, the numbers with
/// `TWIN_LONG_TRIALS=1`.
fn trials(short: usize, long: usize) -> usize {
    if std::env::var_os("TWIN_LONG_TRIALS").is_some() {
        long
    } else {
        short
    }
}

/// Interrupted at random offsets, a pull resumes each time until the file is whole; a file
/// that changes between tries is detected and fetched again from the start; a server that
/// stalls fails within a minute, naming the URL.
#[test]
fn pulls_survive_interruptions_changed_files_and_stalls() {
    let src = tempfile::tempdir().unwrap();
    let (a, b) = (src.path().join("a.gguf"), src.path().join("b.gguf"));
    tiny_gguf(&a, "tiny-a");
    tiny_gguf(&b, "tiny-b");
    let (va, vb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let (sha_a, sha_b) = (
        registry::sha256_file(&a).unwrap(),
        registry::sha256_file(&b).unwrap(),
    );
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut random = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };

    // Interrupted pulls: each trial cuts the first answer at a random offset.
    let interrupted = trials(5, 20);
    for trial in 0..interrupted {
        let cut = random(va.len());
        let (hub, _) = scripted_hub(vec![va.clone()], move |n| Answer::Serve {
            version: 0,
            cut: (n == 0).then_some(cut),
        });
        let dest = tempfile::tempdir().unwrap();
        let request = request_for(hub);
        let err = models::pull(&request, dest.path(), &NoProgress, &CancelToken::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("resolve/main/tiny.gguf"),
            "trial {trial}: {err}"
        );
        let (path, sha) = models::pull(&request, dest.path(), &NoProgress, &CancelToken::new())
            .unwrap_or_else(|e| panic!("trial {trial}, cut at {cut}: {e}"));
        assert_eq!(sha, sha_a);
        assert_eq!(std::fs::read(path).unwrap(), va);
    }

    // The file changes between tries: first version a, cut; then version b.
    let changed = trials(2, 5);
    for trial in 0..changed {
        let cut = 1 + random(va.len() - 2);
        let (hub, ranges) = scripted_hub(vec![va.clone(), vb.clone()], move |n| Answer::Serve {
            version: usize::from(n > 0),
            cut: (n == 0).then_some(cut),
        });
        let dest = tempfile::tempdir().unwrap();
        let request = request_for(hub);
        assert!(models::pull(&request, dest.path(), &NoProgress, &CancelToken::new()).is_err());
        let (path, sha) = models::pull(&request, dest.path(), &NoProgress, &CancelToken::new())
            .unwrap_or_else(|e| panic!("changed-file trial {trial}: {e}"));
        assert_eq!(sha, sha_b, "the new file, not a splice of two");
        assert_eq!(std::fs::read(path).unwrap(), vb);
        let ranges = ranges.lock().unwrap().clone();
        assert_eq!(ranges.len(), 2, "{ranges:?}");
    }

    // The hub names the sha256 on its redirect to the CDN: it is checked (a wrong one is
    // caught), and the right one passes.
    let (hub, _) = scripted_hub(vec![va.clone()], |_| Answer::Redirect { etag: "" });
    let dest = tempfile::tempdir().unwrap();
    let (_, sha) = models::pull(
        &request_for(hub),
        dest.path(),
        &NoProgress,
        &CancelToken::new(),
    )
    .unwrap();
    assert_eq!(sha, sha_a);
    const WRONG: &str = "0000000000000000000000000000000000000000000000000000000000000000";
    let (hub, _) = scripted_hub(vec![va.clone()], |_| Answer::Redirect { etag: WRONG });
    let dest = tempfile::tempdir().unwrap();
    let err = models::pull(
        &request_for(hub),
        dest.path(),
        &NoProgress,
        &CancelToken::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("000000000000"),
        "the redirect's sha256 is checked: {err}"
    );

    // A stalled server: the pull fails within a minute (default limit), naming the URL, and
    // with a short limit in the test suite.
    let stall = if std::env::var_os("TWIN_LONG_TRIALS").is_some() {
        models::STALL_TIMEOUT
    } else {
        std::time::Duration::from_secs(2)
    };
    let (hub, _) = scripted_hub(vec![va.clone()], |_| Answer::Stall);
    let dest = tempfile::tempdir().unwrap();
    let request = PullRequest {
        stall_timeout: stall,
        ..request_for(hub)
    };
    let started = std::time::Instant::now();
    let err = models::pull(&request, dest.path(), &NoProgress, &CancelToken::new())
        .unwrap_err()
        .to_string();
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(60), "{took:?}");
    assert!(
        err.contains("resolve/main/tiny.gguf") && err.contains("sent nothing"),
        "{err}"
    );
    // A server that stalls mid-body: what arrived is kept for the next try.
    let half = va.len() / 2;
    let (hub, _) = scripted_hub(vec![va.clone()], move |n| match n {
        0 => Answer::Serve {
            version: 0,
            cut: Some(half),
        },
        _ => Answer::Serve {
            version: 0,
            cut: None,
        },
    });
    let request = PullRequest {
        stall_timeout: stall,
        ..request_for(hub)
    };
    let _ = models::pull(&request, dest.path(), &NoProgress, &CancelToken::new());
    let (_, sha) = models::pull(&request, dest.path(), &NoProgress, &CancelToken::new()).unwrap();
    assert_eq!(sha, sha_a);
    eprintln!(
        "pull trials: {interrupted} interrupted and resumed, {changed} changed between tries \
         and restarted, a stalled server failed in {:.1} s",
        took.as_secs_f64()
    );
}

#[test]
fn pull_resumes_an_interrupted_download_and_checks_the_hash() {
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("tiny.gguf");
    tiny_gguf(&file, "tiny");
    let bytes = std::fs::read(&file).unwrap();
    let sha = registry::sha256_file(&file).unwrap();
    let (endpoint, ranges) = flaky_hub(bytes.clone());

    let dest = tempfile::tempdir().unwrap();
    let request = request_for(endpoint);
    let first = models::pull(&request, dest.path(), &NoProgress, &CancelToken::new());
    let err = first.unwrap_err().to_string();
    assert!(
        err.contains("resolve/main/tiny.gguf") && err.contains("resume"),
        "{err}"
    );
    let part = dest.path().join("someone__Tiny-GGUF/tiny.gguf.part");
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(
        kept > 0 && (kept as usize) < bytes.len(),
        "kept {kept} bytes"
    );

    let (path, got_sha) =
        models::pull(&request, dest.path(), &NoProgress, &CancelToken::new()).unwrap();
    assert_eq!(got_sha, sha);
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert!(!part.exists());
    let ranges = ranges.lock().unwrap().clone();
    assert_eq!(ranges[0], None);
    assert_eq!(
        ranges[1].as_deref(),
        Some(format!("bytes={kept}-").as_str()),
        "{ranges:?}"
    );

    // A missing file is a clear 404, not a crash.
    let missing = PullRequest {
        file: "other.gguf".into(),
        ..request
    };
    let err = models::pull(&missing, dest.path(), &NoProgress, &CancelToken::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("not found"), "{err}");
}
