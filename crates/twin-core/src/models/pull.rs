//! Downloading GGUF files from Hugging Face (or a mirror in its URL layout), resumably.
//!
//! The file goes to `<name>.part` first and is renamed only once it is complete, a valid GGUF
//! and, when the server names it (`X-Linked-Etag`, the LFS object id), has the right sha256.
//! A `.part` left by an interrupted pull is continued with an HTTP `Range` request guarded by
//! `If-Range` (the file's id, kept beside the `.part`): a file that changed on the server
//! since is downloaded again from the start instead of being spliced onto the old bytes. A
//! server that stops sending for [`STALL_TIMEOUT`] fails the pull, naming the URL; what
//! arrived is kept for the next try.

use super::ModelError;
use crate::progress::{CancelToken, Progress, ProgressEvent, Stage};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a download may receive nothing before it fails (hotel Wi-Fi recovers in less;
/// a dead server never does).
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a file comes from.
#[derive(Clone, Debug)]
pub struct PullRequest {
    /// Base URL: `$HF_ENDPOINT`, else `https://huggingface.co`.
    pub endpoint: String,
    /// `owner/name`.
    pub repo: String,
    /// File inside the repository.
    pub file: String,
    /// Branch, tag or commit.
    pub revision: String,
    /// See [`STALL_TIMEOUT`].
    pub stall_timeout: Duration,
}

impl PullRequest {
    /// A request for `file` in `repo` at `main`, from `$HF_ENDPOINT` or the public hub.
    pub fn new(repo: &str, file: &str) -> Self {
        Self {
            endpoint: std::env::var("HF_ENDPOINT")
                .unwrap_or_else(|_| "https://huggingface.co".into()),
            repo: repo.into(),
            file: file.into(),
            revision: "main".into(),
            stall_timeout: STALL_TIMEOUT,
        }
    }

    /// `{endpoint}/{repo}/resolve/{revision}/{file}`, Hugging Face's download URL.
    pub fn url(&self) -> String {
        format!(
            "{}/{}/resolve/{}/{}",
            self.endpoint.trim_end_matches('/'),
            self.repo,
            self.revision,
            self.file
        )
    }
}

/// A response header's value, quotes trimmed (ETags come quoted).
fn header_of(response: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_matches('"').to_string())
}

/// An absolute URL for a redirect's `Location`, relative to `base`.
fn resolve_location(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    // scheme://host[:port]
    let origin_end = base
        .find("://")
        .and_then(|i| base[i + 3..].find('/').map(|j| i + 3 + j))
        .unwrap_or(base.len());
    if location.starts_with('/') {
        format!("{}{location}", &base[..origin_end])
    } else {
        let dir = base
            .rfind('/')
            .filter(|&i| i >= origin_end)
            .unwrap_or(base.len());
        format!("{}/{location}", &base[..dir])
    }
}

/// Whether `repo` is `owner/name` as Hugging Face spells repositories, and `file` a relative
/// path inside one: no `..`, no absolute paths, nothing a URL or a folder name could misread.
fn check_names(repo: &str, file: &str) -> Result<(), String> {
    let part_ok = |p: &str| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    let repo_parts: Vec<&str> = repo.split('/').collect();
    if repo_parts.len() != 2 || !repo_parts.iter().all(|p| part_ok(p)) {
        return Err(format!(
            "{repo:?} is not a Hugging Face repository (owner/name, letters, digits, - _ .)"
        ));
    }
    if file.starts_with('/') || !file.split('/').all(part_ok) {
        return Err(format!("{file:?} is not a file path inside a repository"));
    }
    Ok(())
}

/// Download `request` into `dir/<owner>__<name>/<file>`; returns the final path and its sha256.
/// Reports [`Stage::Download`] progress in bytes.
pub fn pull(
    request: &PullRequest,
    dir: &Path,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<(PathBuf, String), ModelError> {
    let _span = tracing::info_span!("pull", url = %request.url()).entered();
    check_names(&request.repo, &request.file).map_err(|reason| ModelError::Download {
        url: request.url(),
        reason,
    })?;
    let folder = dir.join(request.repo.replace('/', "__"));
    let file_name = Path::new(&request.file)
        .file_name()
        .ok_or_else(|| ModelError::NotFound(request.file.clone()))?;
    let target = folder.join(file_name);
    let part = folder.join(format!("{}.part", file_name.to_string_lossy()));
    std::fs::create_dir_all(&folder).map_err(|source| ModelError::Io {
        path: folder.clone(),
        source,
    })?;
    let url = request.url();
    let download_err = |reason: String| ModelError::Download {
        url: url.clone(),
        reason,
    };
    // The id of the file the .part holds the start of (its LFS sha256 or ETag).
    let id_file = folder.join(format!("{}.part.id", file_name.to_string_lossy()));
    let part_id = std::fs::read_to_string(&id_file)
        .ok()
        .map(|s| s.trim().to_string());
    let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        // Redirects are followed here, not by ureq: the hub names the file's sha256
        // (`X-Linked-Etag`) on its redirect to the CDN, not on the CDN's answer.
        .max_redirects(0)
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_recv_response(Some(request.stall_timeout))
        .timeout_per_read(Some(request.stall_timeout))
        .build()
        .into();
    let stalled = |e: &ureq::Error| match e {
        ureq::Error::Timeout(_) => format!(
            "the server sent nothing for {} s; run the same pull again to resume",
            request.stall_timeout.as_secs()
        ),
        other => other.to_string(),
    };
    let mut linked_etag: Option<String> = None;
    let mut at = url.clone();
    let mut hops = 0;
    let mut response = loop {
        let mut call = agent.get(&at);
        if have > 0 {
            call = call.header("Range", format!("bytes={have}-"));
            if let Some(id) = &part_id {
                // Only continue if the file is still the one the .part began; else a 200 and
                // all of the new file.
                call = call.header("If-Range", format!("\"{id}\""));
            }
        }
        let response = call.call().map_err(|e| download_err(stalled(&e)))?;
        let status = response.status().as_u16();
        if !(300..400).contains(&status) || status == 304 {
            break response;
        }
        let header = |name: &str| header_of(&response, name);
        linked_etag = linked_etag.or_else(|| header("x-linked-etag"));
        let Some(location) = header("location") else {
            return Err(download_err(format!("HTTP {status} without a Location")));
        };
        hops += 1;
        if hops > 10 {
            return Err(download_err("more than 10 redirects".into()));
        }
        at = resolve_location(&at, &location);
    };
    let status = response.status().as_u16();
    let resumed = match status {
        206 => true,
        200 => false,
        // The .part already holds the whole file.
        416 if have > 0 => true,
        404 => {
            return Err(download_err(
                "not found (check the repository and file name)".into(),
            ))
        }
        401 | 403 => {
            return Err(download_err(
                "access denied (gated or private repository)".into(),
            ))
        }
        other => return Err(download_err(format!("the server answered HTTP {other}"))),
    };
    let header = |name: &str| header_of(&response, name);
    let expected_sha = header("x-linked-etag")
        .or(linked_etag)
        .filter(|v| v.len() == 64 && v.chars().all(|c| c.is_ascii_hexdigit()));
    // A 206 must continue exactly where the .part ends; anything else would splice.
    if status == 206 {
        let starts_at = header("content-range")
            .and_then(|r| r.strip_prefix("bytes ").map(str::to_string))
            .and_then(|r| {
                r.split('-')
                    .next()
                    .and_then(|s| s.trim().parse::<u64>().ok())
            });
        if starts_at != Some(have) {
            drop(response);
            let _ = std::fs::remove_file(&part);
            let _ = std::fs::remove_file(&id_file);
            return Err(download_err(format!(
                "the server resumed at {starts_at:?}, not at byte {have}; the partial file was discarded, run the same pull again"
            )));
        }
    }
    let file_id = expected_sha.clone().or_else(|| header("etag"));
    // A server that ignores If-Range may still answer 206 for a file that changed: its id
    // tells. Start over without the old bytes.
    if resumed && status == 206 {
        if let (Some(was), Some(now)) = (&part_id, &file_id) {
            if was != now {
                drop(response);
                let _ = std::fs::remove_file(&part);
                let _ = std::fs::remove_file(&id_file);
                tracing::warn!(url = %url, "the file changed on the server since the last try; starting over");
                return pull(request, dir, progress, cancel);
            }
        }
    }
    if !resumed {
        match &file_id {
            Some(id) => std::fs::write(&id_file, id).map_err(|source| ModelError::Io {
                path: id_file.clone(),
                source,
            })?,
            None => {
                let _ = std::fs::remove_file(&id_file);
            }
        }
    }
    let remaining = header("content-length").and_then(|v| v.parse::<u64>().ok());
    let total = if status == 416 {
        have
    } else {
        remaining
            .map(|r| r + if resumed { have } else { 0 })
            .unwrap_or(0)
    };

    let mut hasher = Sha256::new();
    let part_io = |source| ModelError::Io {
        path: part.clone(),
        source,
    };
    let mut out = if resumed {
        // Hash what is already there, so the final digest covers the whole file.
        let mut existing = std::fs::File::open(&part).map_err(part_io)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = existing.read(&mut buf).map_err(part_io)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&part)
            .map_err(part_io)?
    } else {
        std::fs::File::create(&part).map_err(part_io)?
    };
    let mut done = if resumed { have } else { 0 };
    if status != 416 {
        let mut body = response.body_mut().as_reader();
        let mut buf = vec![0u8; 256 * 1024];
        let mut last_report = std::time::Instant::now();
        loop {
            if cancel.is_cancelled() {
                let _ = out.flush();
                return Err(ModelError::Cancelled);
            }
            let n = body.read(&mut buf).map_err(|e| {
                let why = if e.kind() == std::io::ErrorKind::TimedOut
                    || e.to_string().contains("timeout")
                {
                    format!("nothing for {} s", request.stall_timeout.as_secs())
                } else {
                    e.to_string()
                };
                download_err(format!(
                    "interrupted after {done} bytes ({why}); run the same pull again to resume"
                ))
            })?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).map_err(part_io)?;
            hasher.update(&buf[..n]);
            done += n as u64;
            if last_report.elapsed().as_millis() >= 100 {
                last_report = std::time::Instant::now();
                progress.report(ProgressEvent {
                    stage: Stage::Download,
                    done,
                    total,
                    item: Some(request.file.clone()),
                });
            }
        }
    }
    out.sync_all().map_err(part_io)?;
    drop(out);
    progress.report(ProgressEvent {
        stage: Stage::Download,
        done,
        total: total.max(done),
        item: Some(request.file.clone()),
    });
    if total > 0 && done != total {
        return Err(download_err(format!(
            "received {done} of {total} bytes; run the same pull again to resume"
        )));
    }
    let sha256 = format!("{:x}", hasher.finalize());
    if let Some(expected) = expected_sha {
        if expected != sha256 {
            // A corrupt partial download would poison every resume; start over next time.
            let _ = std::fs::remove_file(&part);
            let _ = std::fs::remove_file(&id_file);
            return Err(ModelError::Checksum {
                path: part,
                expected,
                actual: sha256,
            });
        }
    }
    super::registry::inspect(&part)?;
    std::fs::rename(&part, &target).map_err(|source| ModelError::Io {
        path: target.clone(),
        source,
    })?;
    let _ = std::fs::remove_file(&id_file);
    Ok((target, sha256))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_resolve_and_names_are_checked() {
        let base = "https://huggingface.co/a/b/resolve/main/x.gguf";
        assert_eq!(
            resolve_location(base, "https://cdn.example/obj?sig=1"),
            "https://cdn.example/obj?sig=1"
        );
        assert_eq!(
            resolve_location(base, "/api/resolve-cache/x"),
            "https://huggingface.co/api/resolve-cache/x"
        );
        assert_eq!(
            resolve_location(base, "y.gguf"),
            "https://huggingface.co/a/b/resolve/main/y.gguf"
        );
        assert!(check_names(
            "bartowski/SmolLM2-1.7B-Instruct-GGUF",
            "q4/SmolLM2.Q4_K_M.gguf"
        )
        .is_ok());
        for (repo, file) in [
            ("../etc", "x.gguf"),
            ("a/b/c", "x.gguf"),
            ("a", "x.gguf"),
            ("a/b", "../../x.gguf"),
            ("a/b", "/etc/passwd"),
            ("a/b c", "x.gguf"),
            ("a/b", "x.gguf?download=1"),
        ] {
            assert!(check_names(repo, file).is_err(), "{repo} {file}");
        }
    }
}
