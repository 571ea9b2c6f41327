//! Evaluation runs and their raw measurements (`eval_runs`, `eval_items`).

use super::{now_secs, Result, Store};
use super::{EvalItemKind, RunStatus};
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

/// Row id of an evaluation run.
pub type EvalRunId = i64;

/// An evaluation run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct EvalRunRecord {
    /// Row id (0 before it is stored).
    pub id: EvalRunId,
    /// Dataset, base, adapters and parameters hashed: the same key resumes.
    pub run_key: String,
    /// `running`, `cancelled`, `failed` or `done`.
    pub status: RunStatus,
    /// The dataset whose held-out split is evaluated.
    pub dataset_id: String,
    /// sha256 of the base model.
    pub base_sha256: String,
    /// Parameters (JSON).
    pub params: serde_json::Value,
    /// Why it failed.
    pub error: Option<String>,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// Seconds since the epoch.
    pub updated_at: i64,
}

/// One raw measurement of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalItem {
    /// `nll`, `draft`, `judge`, `retrieval` or `heldout`.
    pub kind: EvalItemKind,
    /// What was measured: `base`, `adapter:<id>`, a retriever…
    pub config: String,
    /// Which example or query.
    pub key: String,
    /// The measured number (NLL sum, rank, score…).
    pub value: f64,
    /// Everything else (JSON): token counts, texts, hits.
    pub detail: serde_json::Value,
}

const RUN_COLUMNS: &str =
    "id, run_key, status, dataset_id, base_sha256, params, error, created_at, updated_at";

fn run_row(r: &rusqlite::Row) -> rusqlite::Result<EvalRunRecord> {
    Ok(EvalRunRecord {
        id: r.get(0)?,
        run_key: r.get(1)?,
        status: r.get(2)?,
        dataset_id: r.get(3)?,
        base_sha256: r.get(4)?,
        params: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
        error: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

impl Store {
    /// Store a new evaluation run; returns its id.
    pub fn put_eval_run(&self, run: &EvalRunRecord) -> Result<EvalRunId> {
        let now = now_secs();
        self.conn
            .execute(
                "INSERT INTO eval_runs(run_key, status, dataset_id, base_sha256, params, error, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
                params![
                    run.run_key,
                    run.status,
                    run.dataset_id,
                    run.base_sha256,
                    run.params.to_string(),
                    run.error,
                    now
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Set a run's status (and error).
    pub fn set_eval_status(
        &self,
        id: EvalRunId,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<()> {
        self.conn
            .execute(
                "UPDATE eval_runs SET status = ?2, error = ?3, updated_at = ?4 WHERE id = ?1",
                params![id, status, error, now_secs()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The newest unfinished run with `run_key`, to resume.
    pub fn resumable_eval_run(&self, run_key: &str) -> Result<Option<EvalRunRecord>> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM eval_runs WHERE run_key = ?1 AND status != 'done'
                     ORDER BY id DESC LIMIT 1"
                ),
                [run_key],
                run_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// One run.
    pub fn eval_run(&self, id: EvalRunId) -> Result<Option<EvalRunRecord>> {
        self.conn
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM eval_runs WHERE id = ?1"),
                [id],
                run_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Evaluation runs, newest first.
    pub fn eval_runs(&self, limit: usize) -> Result<Vec<EvalRunRecord>> {
        self.rows(
            &format!("SELECT {RUN_COLUMNS} FROM eval_runs ORDER BY id DESC LIMIT ?1"),
            [limit as i64],
            run_row,
        )
    }

    /// Record a measurement (replacing one with the same kind, config and key).
    pub fn put_eval_item(&self, run: EvalRunId, item: &EvalItem) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO eval_items(run_id, kind, config, key, value, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    run,
                    item.kind,
                    item.config,
                    item.key,
                    item.value,
                    item.detail.to_string()
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every measurement of a run, in a stable order.
    pub fn eval_items(&self, run: EvalRunId) -> Result<Vec<EvalItem>> {
        self.rows(
            "SELECT kind, config, key, value, detail FROM eval_items WHERE run_id = ?1
             ORDER BY kind, config, CAST(key AS INTEGER), key",
            [run],
            |r| {
                Ok(EvalItem {
                    kind: r.get(0)?,
                    config: r.get(1)?,
                    key: r.get(2)?,
                    value: r.get(3)?,
                    detail: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
                })
            },
        )
    }
}
