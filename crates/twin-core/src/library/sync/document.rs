//! One file or export item through parse → clean → chunk → embed → store, with the metadata and
//! fingerprint that make a re-import skip what did not change.

use super::*;

/// `YYYY-MM-DD` of a Unix time in nanoseconds (UTC), for documents that state no date.
pub(super) fn date_of(nanos: i64) -> String {
    // Howard Hinnant's civil-from-days.
    let z = nanos.div_euclid(86_400_000_000_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

pub(super) enum Outcome {
    Stored {
        chunks: usize,
        reused: usize,
        near_duplicate: bool,
        duplicate: bool,
    },
    Skipped(String),
    Failed(String),
}

pub(super) struct Syncer<'a> {
    pub(super) store: &'a mut Store,
    pub(super) embedder: &'a Embedder,
    pub(super) source: &'a Source,
    pub(super) options: &'a ImportOptions,
    pub(super) near: NearDuplicateIndex,
}

impl Syncer<'_> {
    /// Parse, clean, chunk and store one file whose bytes are `bytes`.
    pub(super) fn process(
        &mut self,
        file: &Candidate,
        bytes: &[u8],
        hash: String,
    ) -> Result<Outcome, StoreError> {
        let path = &file.path;
        let Some(format) = Format::of(path) else {
            let ext = path
                .extension()
                .map(|e| format!(".{}", e.to_string_lossy()))
                .unwrap_or_else(|| "no extension".into());
            return Ok(Outcome::Skipped(format!("unsupported file type ({ext})")));
        };
        if bytes.is_empty() {
            return Ok(Outcome::Skipped("empty file".into()));
        }
        let parsed = match parse::parse(format, bytes) {
            Ok(p) => p,
            Err(ParseError::Skip(reason)) => return Ok(Outcome::Skipped(reason)),
            Err(ParseError::Invalid(reason)) => return Ok(Outcome::Failed(reason)),
        };
        let meta = DocMeta {
            path: path.clone(),
            format: format.name(),
            kind: None,
            url: None,
            date: parsed.date.clone().or_else(|| Some(date_of(file.mtime))),
            mtime: file.mtime,
            size: file.size as i64,
        };
        self.store_parsed(meta, parsed, hash)
    }

    /// Clean, chunk and store what a parser (or an export reader) produced.
    pub(super) fn store_parsed(
        &mut self,
        meta: DocMeta,
        parsed: ParsedDoc,
        hash: String,
    ) -> Result<Outcome, StoreError> {
        let path = &meta.path;
        // Cleaning and chunking run on whatever a file holds: contain a panic to this file.
        let ParsedDoc {
            blocks,
            title,
            platform,
            tags,
            ..
        } = parsed;
        let Ok(blocks) = std::panic::catch_unwind(|| clean::clean_blocks(blocks)) else {
            return Ok(Outcome::Failed(
                "cleaning crashed on this file; it was skipped".into(),
            ));
        };
        if blocks.is_empty() {
            return Ok(Outcome::Skipped("no text content".into()));
        }
        let existing_id = self.store.document_id_by_path(path)?;
        let original = self
            .store
            .documents_with_hash(&hash)?
            .into_iter()
            .find(|d| d.path != *path && d.duplicate_of.is_none())
            .map(|d| d.id);
        let body = chunk::render_body(&blocks);
        let title = title
            .map(|t| clean::tidy_whitespace(&clean::normalize(&t)).replace('\n', " "))
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| untitled(path, meta.kind.is_some(), &body.text));
        let simhash = dedup::simhash(&body.text);
        let near = if original.is_none() {
            simhash.and_then(|h| self.near.find(h, existing_id))
        } else {
            None
        };
        let chunks = if original.is_some() {
            Vec::new()
        } else {
            let chunked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                chunk::chunk(&body, &title, &self.options.chunking, self.embedder)
            }));
            match chunked {
                Ok(c) => c,
                Err(_) => {
                    return Ok(Outcome::Failed(
                        "chunking crashed on this file; it was skipped".into(),
                    ))
                }
            }
        };
        let doc = NewDocument {
            info: DocumentInfo {
                source_id: self.source.id,
                path: path.clone(),
                title,
                platform,
                format: meta.format.into(),
                date: meta.date,
                tags,
                body: body.text,
                duplicate_of: original,
                near_duplicate_of: near,
                kind: meta.kind,
                url: meta.url,
            },
            content_hash: hash,
            mtime: meta.mtime,
            size: meta.size,
            simhash,
        };
        let put = self.store.put_document(&doc, &chunks)?;
        if let (Some(h), None) = (simhash, original) {
            self.near.remove(put.id);
            self.near.insert(put.id, h);
        }
        Ok(Outcome::Stored {
            chunks: chunks.len(),
            reused: put.vectors_reused,
            near_duplicate: near.is_some(),
            duplicate: original.is_some(),
        })
    }

    /// Read a platform export and store its items; `Ok(None)` when `file` is not an export.
    pub(super) fn process_export(
        &mut self,
        file: &Candidate,
        report: &mut ImportReport,
    ) -> Result<Option<()>, StoreError> {
        let mut read = match export::read(&file.path) {
            Ok(Some(e)) => e,
            Ok(None) => return Ok(None),
            Err(e) => {
                report.failed.push(FileIssue {
                    path: file.path.clone(),
                    reason: e.to_string(),
                });
                return Ok(Some(()));
            }
        };
        let mut summary = ExportSummary {
            path: file.path.clone(),
            platform: read.platform.as_str().into(),
            ..Default::default()
        };
        for part in &read.failed {
            report.failed.push(FileIssue {
                path: file.path.clone(),
                reason: format!("{}: {}", part.part, part.reason),
            });
        }
        summary.failed = read.failed.clone();
        if self.options.authors.is_empty() && read.authors.len() > 1 {
            let who: Vec<String> = read
                .authors
                .iter()
                .map(|(name, n)| format!("{name} ({n})"))
                .collect();
            report.failed.push(FileIssue {
                path: file.path.clone(),
                reason: format!(
                    "this export has posts by {} authors: {}; say which are yours (`--author NAME`, several allowed, or your name in the app's Settings)",
                    read.authors.len(),
                    who.join(", ")
                ),
            });
            summary.skipped = read.skipped;
            report.exports.push(summary);
            return Ok(Some(()));
        }
        read.select(
            &self.options.authors,
            self.options.include_drafts,
            self.options.include_pages,
        );
        summary.skipped = std::mem::take(&mut read.skipped);
        for item in read.items {
            let path = PathBuf::from(format!("{}:{}", item.platform.as_str(), item.id));
            let (parsed, format) = match parse_item(&item) {
                Ok(p) => p,
                Err(reason) => {
                    report.failed.push(FileIssue {
                        path: file.path.clone(),
                        reason: format!("{} ({}): {reason}", item.part, item.id),
                    });
                    continue;
                }
            };
            let hash = item_hash(&item, &parsed);
            let known = self.store.document_state(&path)?;
            if known.as_ref().is_some_and(|d| d.content_hash == hash) {
                // Counts grow between exports of the same post; the text did not change.
                if let Some(n) = item.engagement {
                    self.store.set_engagement(&path, n)?;
                }
                summary.unchanged += 1;
                report.unchanged += 1;
                continue;
            }
            let meta = DocMeta {
                path: path.clone(),
                format,
                kind: Some(item.kind.as_str().into()),
                url: item.url.clone(),
                date: item.date.clone().or_else(|| Some(date_of(file.mtime))),
                mtime: file.mtime,
                size: match &item.body {
                    Body::Text(t) | Body::Html(t) => t.len() as i64,
                },
            };
            match self.store_parsed(meta, parsed, hash)? {
                Outcome::Stored {
                    chunks,
                    reused,
                    near_duplicate,
                    ..
                } => {
                    if let Some(n) = item.engagement {
                        self.store.set_engagement(&path, n)?;
                    }
                    if known.is_some() {
                        summary.updated += 1;
                    } else {
                        *summary.added.entry(item.kind.as_str().into()).or_default() += 1;
                    }
                    report.count_stored(known.is_some(), chunks, reused, near_duplicate);
                }
                Outcome::Skipped(reason) => {
                    *summary.skipped.entry(reason).or_default() += 1;
                }
                Outcome::Failed(reason) => report.failed.push(FileIssue {
                    path: file.path.clone(),
                    reason: format!("{} ({}): {reason}", item.part, item.id),
                }),
            }
        }
        report.exports.push(summary);
        Ok(Some(()))
    }
}

/// Where a document's metadata comes from besides its parsed text.
pub(super) struct DocMeta {
    pub(super) path: PathBuf,
    pub(super) format: &'static str,
    pub(super) kind: Option<String>,
    pub(super) url: Option<String>,
    pub(super) date: Option<String>,
    pub(super) mtime: i64,
    pub(super) size: i64,
}

/// A title for a document that states none: the file's name, or for an export item (a post
/// has no title) its first words.
pub(super) fn untitled(path: &Path, from_export: bool, body: &str) -> String {
    if !from_export || body.is_empty() {
        return path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    let words: Vec<&str> = body.split_whitespace().take(8).collect();
    let mut t = words.join(" ");
    if body.split_whitespace().count() > 8 {
        t.push('…');
    }
    t
}

/// An export item's text as blocks, with the platform and title attached.
pub(super) fn parse_item(item: &ExportItem) -> Result<(ParsedDoc, &'static str), String> {
    let (format, text) = match &item.body {
        Body::Text(t) => (Format::Text, t),
        Body::Html(h) => (Format::Html, h),
    };
    let mut parsed = match parse::parse(format, text.as_bytes()) {
        Ok(p) => p,
        Err(ParseError::Skip(r) | ParseError::Invalid(r)) => return Err(r),
    };
    // A heading that only repeats the title is the title.
    if let (Some(t), Some(Block { text: first, .. })) = (&item.title, parsed.blocks.first()) {
        if first.trim() == t.trim() {
            parsed.blocks.remove(0);
        }
    }
    parsed.title = item.title.clone();
    parsed.platform = Some(item.platform.as_str().into());
    Ok((parsed, format.name()))
}

/// What an item's stored document depends on: a change to any of it is an edit.
pub(super) fn item_hash(item: &ExportItem, parsed: &ParsedDoc) -> String {
    let mut h = blake3::Hasher::new();
    for part in [
        item.kind.as_str(),
        item.title.as_deref().unwrap_or(""),
        item.date.as_deref().unwrap_or(""),
        item.url.as_deref().unwrap_or(""),
    ] {
        h.update(part.as_bytes());
        h.update(b"\0");
    }
    for b in &parsed.blocks {
        h.update(b.text.as_bytes());
        h.update(b"\n");
    }
    h.finalize().to_hex().to_string()
}

/// The unpacked export folder that `path` lies in, below the source's `root`, if any.
pub(super) fn enclosing_export(path: &Path, root: &Path) -> Option<PathBuf> {
    path.ancestors()
        .skip(1)
        .take_while(|a| a.starts_with(root))
        .find(|a| export::is_export_folder(a))
        .map(Path::to_path_buf)
}

pub(super) fn under(path: &Path, scope: &[PathBuf]) -> bool {
    scope.iter().any(|s| path == s || path.starts_with(s))
}
