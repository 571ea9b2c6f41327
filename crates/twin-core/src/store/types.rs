//! Plain data types that cross the store's API.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A closed set of values stored as text: serde, SQLite and display all use the same words,
/// and a value this build does not know is an error, not a silent string. `legacy` names
/// words older databases hold for a variant.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }
     $(legacy { $($old:literal => $to:ident),+ })?) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ts_rs::TS,
        )]
        #[ts(export)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// The word stored and shown for this value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> std::result::Result<Self, String> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    $($($old => Ok(Self::$to),)+)?
                    other => Err(format!("unknown {} {other:?}", stringify!($name))),
                }
            }
        }

        impl rusqlite::types::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|e: String| rusqlite::types::FromSqlError::Other(e.into()))
            }
        }
    };
}

text_enum!(
    /// Where a run (a draft's trace, a training run, an evaluation) stands.
    RunStatus {
        /// Started and not finished (or killed: a re-run resumes it).
        Running = "running",
        /// Finished.
        Done = "done",
        /// Stopped by the user; what finished is kept.
        Cancelled = "cancelled",
        /// Stopped by an error, recorded with it.
        Failed = "failed",
    }
    legacy { "ok" => Done, "error" => Failed }
);

text_enum!(
    /// What an evaluation row measured.
    EvalItemKind {
        /// A held-out passage's text (the reference the drafts are compared with).
        Heldout = "heldout",
        /// Negative log-likelihood sum of one held-out example under one configuration.
        Nll = "nll",
        /// A draft on a held-out topic.
        Draft = "draft",
        /// The "sounds like you" probability of a text.
        Authorship = "authorship",
        /// A retrieval query's rank of its source.
        Retrieval = "retrieval",
        /// A local judge's score.
        Judge = "judge",
    }
);

text_enum!(
    /// Which part of a dataset an example belongs to.
    Split {
        /// Trained on.
        Train = "train",
        /// Held out for evaluation.
        Test = "test",
        /// The base model's drafts kept as "sounds like you" negatives: neither trained on nor
        /// held out.
        Negative = "negative",
    }
);

text_enum!(
    /// Whose text a dataset example's reply is.
    ExampleKind {
        /// The user's own passage.
        User = "user",
        /// The base model's answer to a generic request, replayed so the adapter keeps general
        /// skills.
        Replay = "replay",
        /// The base model's draft for a training request: a "sounds like you" negative.
        Machine = "machine",
    }
);

/// Row id of a source.
pub type SourceId = i64;
/// Row id of a document.
pub type DocumentId = i64;
/// Row id of a chunk.
pub type ChunkId = i64;

/// A folder or file the user added to the library.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct Source {
    /// Row id.
    pub id: SourceId,
    /// Absolute path.
    pub path: PathBuf,
    /// Whether `twin watch` follows it.
    pub watched: bool,
    /// When it was added (Unix seconds).
    pub added_at: i64,
    /// When it last finished syncing (Unix seconds).
    pub last_sync_at: Option<i64>,
    /// Documents imported from it.
    pub documents: u64,
    /// Chunks of those documents.
    pub chunks: u64,
    /// Chunks still waiting for a vector.
    pub pending_chunks: u64,
    /// Its documents per platform and kind (a platform export's breakdown).
    pub by_platform: Vec<PlatformCount>,
}

/// What the sync needs to decide whether a file changed.
#[derive(Clone, Debug)]
pub struct DocState {
    /// Row id.
    pub id: DocumentId,
    /// Owning source.
    pub source_id: SourceId,
    /// Absolute path.
    pub path: PathBuf,
    /// blake3 of the file bytes.
    pub content_hash: String,
    /// File mtime in nanoseconds.
    pub mtime: i64,
    /// File size in bytes.
    pub size: i64,
    /// Set when the file is a byte-identical copy of another document.
    pub duplicate_of: Option<DocumentId>,
}

/// What a document is, the same whether it is being written or was read back: where it came
/// from, what it says, and what it duplicates.
#[derive(Clone, Debug, Serialize)]
pub struct DocumentInfo {
    /// Owning source.
    pub source_id: SourceId,
    /// Absolute path.
    pub path: PathBuf,
    /// Title (front matter, first heading, or file name).
    pub title: String,
    /// Platform (`linkedin`, `x`, `blog`, `newsletter`, …) when known.
    pub platform: Option<String>,
    /// Source format (`markdown`, `html`, `docx`, `pdf`, `text`).
    pub format: String,
    /// `YYYY-MM-DD`.
    pub date: Option<String>,
    /// Tags from front matter.
    pub tags: Vec<String>,
    /// Cleaned text; chunk offsets index into it (in characters).
    pub body: String,
    /// Byte-identical copy of this document.
    pub duplicate_of: Option<DocumentId>,
    /// Nearly identical to this document (e.g. an earlier draft).
    pub near_duplicate_of: Option<DocumentId>,
    /// What kind of writing (post, article, thread, comment…), for documents from platform
    /// exports; None for files.
    pub kind: Option<String>,
    /// The canonical URL, when the platform gave one.
    pub url: Option<String>,
}

/// A stored document with its cleaned text; its fields read through to [`DocumentInfo`].
#[derive(Clone, Debug, Serialize)]
pub struct Document {
    /// Row id.
    pub id: DocumentId,
    /// What it is.
    #[serde(flatten)]
    pub info: DocumentInfo,
}

impl std::ops::Deref for Document {
    type Target = DocumentInfo;
    fn deref(&self) -> &DocumentInfo {
        &self.info
    }
}

/// A document to insert or replace: what it is, and the file stamps and fingerprints that let
/// the next import skip it when nothing changed.
#[derive(Clone, Debug)]
pub struct NewDocument {
    /// What it is.
    pub info: DocumentInfo,
    /// blake3 of the file bytes.
    pub content_hash: String,
    /// File mtime in nanoseconds.
    pub mtime: i64,
    /// File size in bytes.
    pub size: i64,
    /// Similarity fingerprint of the body.
    pub simhash: Option<u64>,
}

impl NewDocument {
    /// A markdown document at `path` with `body`, for tests.
    #[cfg(test)]
    pub(crate) fn for_test(
        source_id: SourceId,
        path: &str,
        platform: Option<&str>,
        body: &str,
    ) -> Self {
        Self {
            info: DocumentInfo {
                source_id,
                path: PathBuf::from(path),
                title: path.into(),
                platform: platform.map(Into::into),
                format: "markdown".into(),
                date: None,
                tags: Vec::new(),
                body: body.into(),
                duplicate_of: None,
                near_duplicate_of: None,
                kind: None,
                url: None,
            },
            content_hash: blake3::hash(body.as_bytes()).to_hex().to_string(),
            mtime: 0,
            size: body.len() as i64,
            simhash: None,
        }
    }
}

impl std::ops::Deref for NewDocument {
    type Target = DocumentInfo;
    fn deref(&self) -> &DocumentInfo {
        &self.info
    }
}

/// A chunk to insert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewChunk {
    /// Headings above the chunk, joined with " > ".
    pub heading_path: String,
    /// The chunk's text: exactly `body[char_start..char_end]` in characters.
    pub text: String,
    /// Start offset in characters into the document body.
    pub char_start: usize,
    /// End offset (exclusive) in characters.
    pub char_end: usize,
    /// Tokens of the embedding input (title, headings and text) in the embedding model.
    pub n_tokens: usize,
}

/// A stored chunk.
#[derive(Clone, Debug, Serialize)]
pub struct ChunkRow {
    /// Row id.
    pub id: ChunkId,
    /// Owning document.
    pub document_id: DocumentId,
    /// Position in the document.
    pub ord: usize,
    /// Headings above it.
    pub heading_path: String,
    /// Text.
    pub text: String,
    /// Start offset in characters into the body.
    pub char_start: usize,
    /// End offset in characters.
    pub char_end: usize,
    /// Tokens of the embedding input.
    pub n_tokens: usize,
    /// Whether it has a vector.
    pub embedded: bool,
}

/// The result of [`super::Store::put_document`].
#[derive(Clone, Copy, Debug)]
pub struct PutOutcome {
    /// The document's row id.
    pub id: DocumentId,
    /// Whether an older version was replaced.
    pub replaced: bool,
    /// Chunks that kept their vector because their text did not change.
    pub vectors_reused: usize,
}

/// The embedding model recorded for a library.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct StoredModel {
    /// Name.
    pub name: String,
    /// blake3 of the GGUF file.
    pub hash: String,
    /// Vector width.
    pub dim: usize,
    /// Where the GGUF file was.
    pub path: String,
}

/// A chunk waiting for a vector.
#[derive(Clone, Debug)]
pub struct PendingChunk {
    /// Row id.
    pub id: ChunkId,
    /// Its document's title.
    pub title: String,
    /// Headings above it.
    pub heading_path: String,
    /// Text.
    pub text: String,
}

/// Restricts a search to part of the library.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SearchFilter {
    /// Only this source.
    pub source: Option<SourceId>,
    /// Only this platform.
    pub platform: Option<String>,
    /// Only this kind of writing (post, article, thread, comment…).
    pub kind: Option<String>,
    /// Only documents dated on or after this `YYYY-MM-DD`.
    pub date_from: Option<String>,
    /// Only documents dated on or before this `YYYY-MM-DD`.
    pub date_to: Option<String>,
}

impl SearchFilter {
    /// True when nothing is restricted.
    pub fn is_empty(&self) -> bool {
        self.source.is_none()
            && self.platform.is_none()
            && self.kind.is_none()
            && self.date_from.is_none()
            && self.date_to.is_none()
    }

    /// SQL conditions on the documents table aliased `alias`, and their values (numbered from ?2).
    pub(super) fn sql(&self, alias: &str) -> (String, Vec<rusqlite::types::Value>) {
        let mut clause = String::new();
        let mut values: Vec<rusqlite::types::Value> = Vec::new();
        let mut push = |cond: &str, v: rusqlite::types::Value, clause: &mut String| {
            values.push(v);
            clause.push_str(&format!(" AND {alias}.{cond} ?{}", values.len() + 1));
        };
        if let Some(s) = self.source {
            push("source_id =", s.into(), &mut clause);
        }
        if let Some(p) = &self.platform {
            push("platform =", p.clone().into(), &mut clause);
        }
        if let Some(k) = &self.kind {
            push("kind =", k.clone().into(), &mut clause);
        }
        if let Some(d) = &self.date_from {
            push("date >=", d.clone().into(), &mut clause);
        }
        if let Some(d) = &self.date_to {
            push("date <=", format!("{d}\u{ffff}").into(), &mut clause);
        }
        (clause, values)
    }
}

/// A chunk with what a search result shows about it.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct ChunkHit {
    /// Chunk row id.
    pub chunk_id: ChunkId,
    /// Document row id.
    pub document_id: DocumentId,
    /// Source row id.
    pub source_id: SourceId,
    /// The document's file.
    pub path: PathBuf,
    /// The document's title.
    pub title: String,
    /// Platform.
    pub platform: Option<String>,
    /// `YYYY-MM-DD`.
    pub date: Option<String>,
    /// Headings above the chunk.
    pub heading_path: String,
    /// The chunk's text.
    pub text: String,
    /// Start offset in characters into the body.
    pub char_start: usize,
    /// End offset in characters.
    pub char_end: usize,
}

/// Where the database stands: equal revisions from one [`crate::store::Store`] mean nothing was
/// written in between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Revision {
    /// Rows this connection has changed since it opened.
    pub own_changes: u64,
    /// SQLite's `data_version`: moves when another connection commits.
    pub others: u64,
}

/// The result of [`super::Store::check`].
#[derive(Clone, Debug, Serialize)]
pub struct Consistency {
    /// Whether everything below holds.
    pub ok: bool,
    /// `PRAGMA integrity_check`: "ok", or what SQLite found.
    pub integrity: String,
    /// The full-text index's own check: "ok", or the error.
    pub fts_integrity: String,
    /// Chunks stored.
    pub chunks: u64,
    /// Rows in the full-text index (one per chunk).
    pub fts_rows: u64,
    /// Chunks marked embedded.
    pub embedded_chunks: u64,
    /// Rows in the vector index (one per embedded chunk).
    pub vectors: u64,
    /// Vectors whose chunk is gone.
    pub orphan_vectors: u64,
    /// Chunks marked embedded with no vector.
    pub embedded_without_vector: u64,
}

/// Library-wide counts.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct LibraryStats {
    /// Sources.
    pub sources: u64,
    /// Documents.
    pub documents: u64,
    /// Byte-identical duplicates (stored, not chunked).
    pub duplicates: u64,
    /// Documents flagged as near-duplicates of another.
    pub near_duplicates: u64,
    /// Chunks.
    pub chunks: u64,
    /// Chunks with a vector.
    pub embedded_chunks: u64,
    /// Rows in the vector table.
    pub vectors: u64,
    /// The embedding model.
    pub embedding_model: Option<StoredModel>,
    /// Size of the database file.
    pub database_bytes: u64,
    /// Documents per platform and kind (files with no platform count as "files").
    pub by_platform: Vec<PlatformCount>,
}

/// How many documents came from one platform as one kind of writing.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, ts_rs::TS)]
#[ts(export)]
pub struct PlatformCount {
    /// `linkedin`, `x`, … (front matter or export), or `files`.
    pub platform: String,
    /// `post`, `article`, … or `document` for files.
    pub kind: String,
    /// Documents (duplicates not counted).
    pub documents: u64,
}
