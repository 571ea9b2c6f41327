//! Automatic retraining's records: the cycles (see `crate::autotrain`) and the writing the last
//! cycle's dataset covered.

use super::{now_secs, Result, RunStatus, Store};
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One automatic retraining cycle (see `crate::autotrain`): its trigger, the candidate it
/// trained, the scores the promotion gate compared, and the verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct CycleRecord {
    /// Row id (0 before it is stored).
    pub id: i64,
    /// Where it stands; a `running` cycle found at start was interrupted and resumes.
    pub status: RunStatus,
    /// What woke it: `threshold`, `platform`, `schedule` or `manual`.
    pub trigger: String,
    /// The step it reached: `dataset`, `train`, `evaluate` or `decided`.
    pub phase: String,
    /// Seconds since the epoch.
    pub started_at: i64,
    /// Seconds since the epoch, once it ended.
    pub finished_at: Option<i64>,
    /// The new writing that woke it.
    pub change: Change,
    /// Training and evaluation settings, fixed at the start (None: unreadable).
    pub params: Option<CycleParams>,
    /// The dataset it built.
    pub dataset_id: Option<String>,
    /// The adapter in use when it started (None: the base model, or the adapter was removed).
    pub incumbent_id: Option<i64>,
    /// What the candidate competed against, for people.
    pub incumbent_name: String,
    /// The adapter it trained.
    pub candidate_id: Option<i64>,
    /// Its name.
    pub candidate_name: Option<String>,
    /// The evaluation run that compared them.
    pub eval_run_id: Option<i64>,
    /// Both sides' scores, timings and memory.
    pub scores: CycleScores,
    /// Whether the candidate was put to use.
    pub promoted: bool,
    /// Why it was or was not.
    pub reason: Option<String>,
    /// What stopped a failed cycle.
    pub error: Option<String>,
}

/// The user's writing that no cycle has trained on yet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct Change {
    /// New or edited documents.
    pub documents: usize,
    /// Their words.
    pub words: usize,
    /// Platforms no cycle had seen (empty before the first cycle).
    pub new_platforms: Vec<String>,
}

/// The settings one cycle runs with, fixed at its start so that a resumed cycle trains the
/// same run (and finds its checkpoints).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct CycleParams {
    /// Optimizer steps at most (None: the training defaults).
    pub max_steps: Option<usize>,
    /// Learning rate (None: the training default).
    pub learning_rate: Option<f64>,
    /// Drafts on held-out topics per side.
    pub drafts: usize,
    /// The held-out loss improvement a candidate needs (0.02: 2% lower).
    pub margin: f64,
    /// Whether the candidate trains with the preference term (LN-DPO by default) beside the
    /// usual loss.
    #[serde(default)]
    pub preference: bool,
}

/// One side's scores on the held-out split.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct SideScores {
    /// The adapter's name, or the base model's.
    pub name: String,
    /// Mean held-out negative log-likelihood per token (nats; lower is better).
    pub nll: Option<f64>,
    /// Style distance of its drafts to the held-out writing, relative to other writers'
    /// (1 = as far as other people; lower is better).
    pub style: Option<f64>,
    /// Mean "sounds like you" probability of its drafts.
    pub sounds_like_you: Option<f64>,
    /// Drafts measured.
    pub drafts: usize,
}

/// One side of the comparison, and what the cycle cost.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct CycleScores {
    /// The candidate's scores.
    pub candidate: Option<SideScores>,
    /// The scores of the adapter in use (or the base model).
    pub incumbent: Option<SideScores>,
    /// Seconds spent per phase (`dataset`, `train`, `evaluate`), over every resume.
    pub seconds: BTreeMap<String, f64>,
    /// The training step the run resumed from after an interruption (0: none).
    pub resumed_from_step: usize,
    /// Steps trained.
    pub steps: usize,
    /// Peak resident memory of the process that finished the cycle, bytes (Linux).
    pub peak_memory_bytes: Option<u64>,
}

const CYCLE_COLUMNS: &str = "id, status, trigger, phase, started_at, finished_at, change, params, \
     dataset_id, incumbent_id, incumbent_name, candidate_id, candidate_name, eval_run_id, scores, \
     promoted, reason, error";

/// A JSON column read back; a value an older or damaged row cannot give reads as the default.
fn json<T: serde::de::DeserializeOwned + Default>(text: String) -> T {
    serde_json::from_str(&text).unwrap_or_default()
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn cycle_row(r: &rusqlite::Row) -> rusqlite::Result<CycleRecord> {
    Ok(CycleRecord {
        id: r.get(0)?,
        status: r.get(1)?,
        trigger: r.get(2)?,
        phase: r.get(3)?,
        started_at: r.get(4)?,
        finished_at: r.get(5)?,
        change: json(r.get(6)?),
        params: serde_json::from_str(&r.get::<_, String>(7)?).ok(),
        dataset_id: r.get(8)?,
        incumbent_id: r.get(9)?,
        incumbent_name: r.get(10)?,
        candidate_id: r.get(11)?,
        candidate_name: r.get(12)?,
        eval_run_id: r.get(13)?,
        scores: json(r.get(14)?),
        promoted: r.get(15)?,
        reason: r.get(16)?,
        error: r.get(17)?,
    })
}

/// The user's writing no cycle has covered yet, on one platform.
#[derive(Clone, Debug, PartialEq)]
pub struct UnseenWriting {
    /// The platform, if known.
    pub platform: Option<String>,
    /// New or edited documents.
    pub documents: usize,
    /// Their words, approximately: spaces and line breaks plus one per document (blank lines
    /// count a little; exact enough for a threshold, and counted without reading bodies out).
    pub words: usize,
}

impl Store {
    /// Start a cycle; its id.
    pub fn put_cycle(&self, c: &CycleRecord) -> Result<i64> {
        self.conn
            .query_row(
                "INSERT INTO autotrain_cycles(status, trigger, phase, started_at, change, params,
                     incumbent_id, incumbent_name)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
                params![
                    c.status,
                    c.trigger,
                    c.phase,
                    now_secs(),
                    to_json(&c.change),
                    to_json(&c.params),
                    c.incumbent_id,
                    c.incumbent_name
                ],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Record a cycle's progress or outcome (everything but its start).
    pub fn update_cycle(&self, c: &CycleRecord) -> Result<()> {
        self.conn
            .execute(
                "UPDATE autotrain_cycles SET status = ?2, phase = ?3, finished_at = ?4,
                     dataset_id = ?5, candidate_id = ?6, candidate_name = ?7, eval_run_id = ?8,
                     scores = ?9, promoted = ?10, reason = ?11, error = ?12
                 WHERE id = ?1",
                params![
                    c.id,
                    c.status,
                    c.phase,
                    c.finished_at,
                    c.dataset_id,
                    c.candidate_id,
                    c.candidate_name,
                    c.eval_run_id,
                    to_json(&c.scores),
                    c.promoted,
                    c.reason,
                    c.error
                ],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The newest cycles first, at most `limit`.
    pub fn cycles(&self, limit: usize) -> Result<Vec<CycleRecord>> {
        self.rows(
            &format!("SELECT {CYCLE_COLUMNS} FROM autotrain_cycles ORDER BY id DESC LIMIT ?1"),
            [limit as i64],
            cycle_row,
        )
    }

    /// The cycle left running or cancelled by an earlier process (a crash, a quit, a reboot),
    /// if one is: it resumes before a new one starts.
    pub fn unfinished_cycle(&self) -> Result<Option<CycleRecord>> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {CYCLE_COLUMNS} FROM autotrain_cycles
                     WHERE status IN ('running', 'cancelled') ORDER BY id DESC LIMIT 1"
                ),
                [],
                cycle_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The user's original documents (no duplicates) that the last cycle's dataset did not
    /// cover, new ones and edited ones (their content changed), counted per platform in SQL:
    /// the follower asks after every sync, and the bodies never leave the database.
    pub fn unseen_writing(&self) -> Result<Vec<UnseenWriting>> {
        self.rows(
            "SELECT platform, COUNT(*),
                    SUM(CASE WHEN length(trim(b)) = 0 THEN 0 ELSE
                        length(trim(b)) - length(replace(replace(trim(b), ' ', ''), char(10), '')) + 1
                    END)
             FROM (SELECT platform, replace(replace(body, char(13), ''), char(9), ' ') AS b
                   FROM documents d
                   WHERE duplicate_of IS NULL AND near_duplicate_of IS NULL
                     AND NOT EXISTS (SELECT 1 FROM autotrain_seen s
                                     WHERE s.content_hash = d.content_hash))
             GROUP BY platform ORDER BY platform",
            [],
            |r| {
                Ok(UnseenWriting {
                    platform: r.get(0)?,
                    documents: r.get::<_, i64>(1)? as usize,
                    words: r.get::<_, Option<i64>>(2)?.unwrap_or(0).max(0) as usize,
                })
            },
        )
    }

    /// The platforms of the writing the last cycle covered (empty before the first cycle).
    pub fn seen_platforms(&self) -> Result<Vec<Option<String>>> {
        self.rows(
            "SELECT DISTINCT platform FROM autotrain_seen ORDER BY platform",
            [],
            |r| r.get(0),
        )
    }

    /// Remember the user's writing as it is now as covered (a cycle built its dataset from it).
    pub fn mark_writing_seen(&mut self) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM autotrain_seen", [])?;
            tx.execute(
                "INSERT OR IGNORE INTO autotrain_seen(content_hash, platform)
                 SELECT content_hash, platform FROM documents
                 WHERE duplicate_of IS NULL AND near_duplicate_of IS NULL",
                [],
            )?;
            Ok(())
        })
    }
}
