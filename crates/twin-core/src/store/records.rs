//! Registered models and drafting traces: small tables read and written as whole records.

use super::{now_secs, Result, RunStatus, Store};
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

/// Row id of a registered model.
pub type ModelId = i64;
/// Row id of a trace.
pub type TraceId = i64;

/// A model file Twin knows about. Files found in Ollama's or LM Studio's folders are used in
/// place, never copied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct ModelRecord {
    /// Row id (0 before it is stored).
    pub id: ModelId,
    /// Display name, unique enough to pick with `twin models use`.
    pub name: String,
    /// The GGUF file.
    pub path: String,
    /// `chat`, `embedding` or `reranker`.
    pub kind: String,
    /// How it got here: `added`, `pulled`, `ollama`, `lmstudio`.
    pub origin: String,
    /// `general.architecture`.
    pub architecture: Option<String>,
    /// sha256 of the file, hex.
    pub sha256: String,
    /// File size in bytes.
    pub size: u64,
    /// File modification time (ns since the epoch) when it was hashed.
    pub mtime: i64,
    /// When it was registered (seconds since the epoch).
    pub added_at: i64,
}

/// A stored drafting run; `detail` holds the full JSON trace.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TraceRecord {
    /// Row id (0 before it is stored).
    pub id: TraceId,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// What ran (`draft`).
    pub kind: String,
    /// How the run ended.
    pub status: RunStatus,
    /// The user's topic.
    pub topic: String,
    /// The requested format.
    pub format: String,
    /// Model name and sha256 prefix.
    pub model: String,
    /// Adapter id and scale, if one was used.
    pub adapter: Option<String>,
    /// The final text.
    pub output: String,
    /// Templates, retrieval, citations and timings, as JSON.
    pub detail: serde_json::Value,
}

const MODEL_COLUMNS: &str =
    "id, name, path, kind, origin, architecture, sha256, size, mtime, added_at";

const TRACE_COLUMNS: &str =
    "id, created_at, kind, status, topic, format, model, adapter, output, detail";

fn model_row(r: &rusqlite::Row) -> rusqlite::Result<ModelRecord> {
    Ok(ModelRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        path: r.get(2)?,
        kind: r.get(3)?,
        origin: r.get(4)?,
        architecture: r.get(5)?,
        sha256: r.get(6)?,
        size: r.get::<_, i64>(7)? as u64,
        mtime: r.get(8)?,
        added_at: r.get(9)?,
    })
}

fn trace_row(r: &rusqlite::Row) -> rusqlite::Result<TraceRecord> {
    let detail: String = r.get(9)?;
    Ok(TraceRecord {
        id: r.get(0)?,
        created_at: r.get(1)?,
        kind: r.get(2)?,
        status: r.get(3)?,
        topic: r.get(4)?,
        format: r.get(5)?,
        model: r.get(6)?,
        adapter: r.get(7)?,
        output: r.get(8)?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
    })
}

impl Store {
    /// Register `model`, or update the record with the same path; returns its id.
    pub fn put_model(&self, model: &ModelRecord) -> Result<ModelId> {
        self.conn
            .query_row(
                "INSERT INTO models(name, path, kind, origin, architecture, sha256, size, mtime, added_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT(path) DO UPDATE SET name = excluded.name, kind = excluded.kind,
                    origin = excluded.origin, architecture = excluded.architecture,
                    sha256 = excluded.sha256, size = excluded.size, mtime = excluded.mtime
                 RETURNING id",
                params![
                    model.name,
                    model.path,
                    model.kind,
                    model.origin,
                    model.architecture,
                    model.sha256,
                    model.size as i64,
                    model.mtime,
                    if model.added_at == 0 { now_secs() } else { model.added_at },
                ],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Every registered model, by kind then name.
    pub fn models(&self) -> Result<Vec<ModelRecord>> {
        self.rows(
            &format!("SELECT {MODEL_COLUMNS} FROM models ORDER BY kind, name"),
            [],
            model_row,
        )
    }

    /// A registered model by id.
    pub fn model(&self, id: ModelId) -> Result<Option<ModelRecord>> {
        self.conn
            .query_row(
                &format!("SELECT {MODEL_COLUMNS} FROM models WHERE id = ?1"),
                [id],
                model_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Forget a registered model (the file is left alone).
    pub fn remove_model(&self, id: ModelId) -> Result<bool> {
        self.conn
            .execute("DELETE FROM models WHERE id = ?1", [id])
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// Store a trace; returns its id.
    pub fn put_trace(&self, trace: &TraceRecord) -> Result<TraceId> {
        self.conn
            .query_row(
                "INSERT INTO traces(created_at, kind, status, topic, format, model, adapter, output, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
                params![
                    if trace.created_at == 0 { now_secs() } else { trace.created_at },
                    trace.kind,
                    trace.status,
                    trace.topic,
                    trace.format,
                    trace.model,
                    trace.adapter,
                    trace.output,
                    trace.detail.to_string(),
                ],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// The newest `limit` traces, newest first.
    pub fn traces(&self, limit: usize) -> Result<Vec<TraceRecord>> {
        self.rows(
            &format!("SELECT {TRACE_COLUMNS} FROM traces ORDER BY id DESC LIMIT ?1"),
            [limit as i64],
            trace_row,
        )
    }

    /// The formats (platform values) of the newest `recent` drafts, most drafted first.
    pub fn drafted_formats(&self, recent: usize) -> Result<Vec<String>> {
        self.rows(
            "SELECT format FROM (SELECT format FROM traces WHERE kind = 'draft' ORDER BY id DESC LIMIT ?1)
             GROUP BY format ORDER BY COUNT(*) DESC, format",
            [recent as i64],
            |r| r.get(0),
        )
    }

    /// One trace by id.
    pub fn trace(&self, id: TraceId) -> Result<Option<TraceRecord>> {
        self.conn
            .query_row(
                &format!("SELECT {TRACE_COLUMNS} FROM traces WHERE id = ?1"),
                [id],
                trace_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}

/// A draft and the text the user made of it (copied, exported or marked final after editing):
/// the pair that shows what the user would have written instead.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct DraftEdit {
    /// Row id (0 before it is stored).
    pub id: i64,
    /// The draft's trace.
    pub trace_id: TraceId,
    /// When the final text was recorded (seconds since the epoch).
    pub created_at: i64,
    /// The request's topic.
    pub topic: String,
    /// The platform written for.
    pub format: String,
    /// The chat model.
    pub model: String,
    /// The adapter and strength, if one was used.
    pub adapter: Option<String>,
    /// The model's text.
    pub draft: String,
    /// The user's final text.
    pub final_text: String,
    /// Share of the draft's words the user changed (0 to 1).
    pub changed: f64,
}

const EDIT_COLUMNS: &str =
    "id, trace_id, created_at, topic, format, model, adapter, draft, final, changed";

fn edit_row(r: &rusqlite::Row) -> rusqlite::Result<DraftEdit> {
    Ok(DraftEdit {
        id: r.get(0)?,
        trace_id: r.get(1)?,
        created_at: r.get(2)?,
        topic: r.get(3)?,
        format: r.get(4)?,
        model: r.get(5)?,
        adapter: r.get(6)?,
        draft: r.get(7)?,
        final_text: r.get(8)?,
        changed: r.get(9)?,
    })
}

impl Store {
    /// Keep the user's final text for a draft; a later one for the same trace replaces it.
    /// Returns the row id.
    pub fn put_draft_edit(&self, edit: &DraftEdit) -> Result<i64> {
        self.conn
            .query_row(
                "INSERT INTO draft_edits(trace_id, created_at, topic, format, model, adapter, draft, final, changed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT(trace_id) DO UPDATE SET created_at = excluded.created_at,
                     final = excluded.final, changed = excluded.changed
                 RETURNING id",
                params![
                    edit.trace_id,
                    edit.created_at,
                    edit.topic,
                    edit.format,
                    edit.model,
                    edit.adapter,
                    edit.draft,
                    edit.final_text,
                    edit.changed
                ],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// The drafts the user edited, newest first.
    pub fn draft_edits(&self, limit: usize) -> Result<Vec<DraftEdit>> {
        self.rows(
            &format!(
                "SELECT {EDIT_COLUMNS} FROM draft_edits ORDER BY created_at DESC, id DESC LIMIT ?1"
            ),
            [limit as i64],
            edit_row,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(kind: &str, format: &str) -> TraceRecord {
        TraceRecord {
            id: 0,
            created_at: 0,
            kind: kind.into(),
            status: RunStatus::Done,
            topic: "t".into(),
            format: format.into(),
            model: "m".into(),
            adapter: None,
            output: String::new(),
            detail: serde_json::json!({}),
        }
    }

    #[test]
    fn drafted_formats_count_only_the_newest_drafts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("twin.db")).unwrap();
        assert!(store.drafted_formats(10).unwrap().is_empty());
        // Long ago: blog articles; lately: X threads, then LinkedIn posts twice; one non-draft.
        for format in ["blog", "blog", "blog", "x", "linkedin", "linkedin"] {
            store.put_trace(&trace("draft", format)).unwrap();
        }
        store.put_trace(&trace("ideas", "newsletter")).unwrap();
        assert_eq!(
            store.drafted_formats(3).unwrap(),
            vec!["linkedin".to_string(), "x".to_string()]
        );
        assert_eq!(
            store.drafted_formats(10).unwrap(),
            vec!["blog".to_string(), "linkedin".to_string(), "x".to_string()]
        );
    }
}
