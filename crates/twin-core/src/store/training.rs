//! Voice-training records: dataset versions and their examples, cached back-translations,
//! training runs (for resume), adapters with their lineage, and which adapter each channel uses.

use super::{now_secs, ExampleKind, Result, RunStatus, Split, Store};
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

/// Row id of an adapter.
pub type AdapterId = i64;
/// Row id of a training run.
pub type RunId = i64;

/// A dataset version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct DatasetRecord {
    /// Content hash of parameters and examples.
    pub id: String,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// sha256 of the model whose chat template and tokenizer it was built for.
    pub base_model: String,
    /// How it was built (JSON).
    pub params: serde_json::Value,
    /// Counts and filter results (JSON).
    pub stats: serde_json::Value,
}

/// One stored example.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExampleRecord {
    /// Position in the dataset.
    pub idx: i64,
    /// `train` or `test`.
    pub split: Split,
    /// `user` (the user's own text as the reply) or `replay` (the base model's own answer).
    pub kind: ExampleKind,
    /// The document the reply comes from (user examples).
    pub document_path: Option<String>,
    /// The chat as `[{role, content}]`; the last message is the reply to learn.
    pub messages: serde_json::Value,
    /// The format of the drafting request the reply answers (user and machine examples);
    /// `None` for replay examples and for datasets stored before schema 8.
    pub format: Option<String>,
    /// The topic of that request.
    pub topic: Option<String>,
}

/// A trained adapter and where it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct AdapterRecord {
    /// Row id (0 before it is stored).
    pub id: AdapterId,
    /// Display name.
    pub name: String,
    /// The GGUF LoRA file.
    pub path: String,
    /// Base model architecture.
    pub architecture: String,
    /// sha256 of the base model file.
    pub base_sha256: String,
    /// Name of the base model.
    pub base_name: String,
    /// Dataset version.
    pub dataset_id: String,
    /// Hyperparameters (JSON).
    pub params: serde_json::Value,
    /// Results (JSON).
    pub metrics: serde_json::Value,
    /// sha256 of the adapter file.
    pub sha256: String,
    /// File size in bytes.
    pub size: u64,
    /// Seconds since the epoch.
    pub created_at: i64,
}

/// One entry of the channels' adapter history: `channel` chose `adapter` (None: the base
/// model alone) at `scale`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Activation {
    /// The channel.
    pub channel: String,
    /// The adapter chosen; `None` for the base model.
    pub adapter: Option<AdapterId>,
    /// Strength.
    pub scale: f32,
    /// Unix time.
    pub at: i64,
}

/// A training run, stored so a killed run can resume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Row id (0 before it is stored).
    pub id: RunId,
    /// Base, dataset and parameters hashed: the same key resumes.
    pub run_key: String,
    /// `running`, `cancelled`, `failed` or `done`.
    pub status: RunStatus,
    /// sha256 of the base model.
    pub base_sha256: String,
    /// Dataset version.
    pub dataset_id: String,
    /// Parameters (JSON).
    pub params: serde_json::Value,
    /// Folder holding its checkpoints.
    pub dir: String,
    /// Optimizer steps done.
    pub step: i64,
    /// Steps planned.
    pub total_steps: i64,
    /// Loss curve (JSON).
    pub history: serde_json::Value,
    /// The adapter it produced.
    pub adapter_id: Option<AdapterId>,
    /// Why it failed.
    pub error: Option<String>,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// Seconds since the epoch.
    pub updated_at: i64,
}

/// Which adapter a channel uses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActiveAdapter {
    /// The adapter (`None`: the base model alone).
    pub adapter: Option<AdapterRecord>,
    /// Strength it is applied at.
    pub scale: f32,
}

const ADAPTER_COLUMNS: &str = "id, name, path, architecture, base_sha256, base_name, dataset_id, params, metrics, sha256, size, created_at";
const RUN_COLUMNS: &str = "id, run_key, status, base_sha256, dataset_id, params, dir, step, total_steps, history, adapter_id, error, created_at, updated_at";

fn json(text: String) -> serde_json::Value {
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

fn adapter_row(r: &rusqlite::Row) -> rusqlite::Result<AdapterRecord> {
    Ok(AdapterRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        path: r.get(2)?,
        architecture: r.get(3)?,
        base_sha256: r.get(4)?,
        base_name: r.get(5)?,
        dataset_id: r.get(6)?,
        params: json(r.get(7)?),
        metrics: json(r.get(8)?),
        sha256: r.get(9)?,
        size: r.get::<_, i64>(10)? as u64,
        created_at: r.get(11)?,
    })
}

fn run_row(r: &rusqlite::Row) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        id: r.get(0)?,
        run_key: r.get(1)?,
        status: r.get(2)?,
        base_sha256: r.get(3)?,
        dataset_id: r.get(4)?,
        params: json(r.get(5)?),
        dir: r.get(6)?,
        step: r.get(7)?,
        total_steps: r.get(8)?,
        history: json(r.get(9)?),
        adapter_id: r.get(10)?,
        error: r.get(11)?,
        created_at: r.get(12)?,
        updated_at: r.get(13)?,
    })
}

impl Store {
    /// Store a dataset version with its examples (one transaction; an existing id is replaced).
    pub fn put_dataset(
        &mut self,
        dataset: &DatasetRecord,
        examples: &[ExampleRecord],
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM datasets WHERE id = ?1", [&dataset.id])?;
            tx.execute(
                "INSERT INTO datasets(id, created_at, base_model, params, stats) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    dataset.id,
                    if dataset.created_at == 0 { now_secs() } else { dataset.created_at },
                    dataset.base_model,
                    dataset.params.to_string(),
                    dataset.stats.to_string(),
                ],
            )?;
            {
                let mut insert = tx
                    .prepare(
                        "INSERT INTO dataset_examples(dataset_id, idx, split, kind, document_path, messages, format, topic)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )?;
                for e in examples {
                    insert
                        .execute(params![
                            dataset.id,
                            e.idx,
                            e.split,
                            e.kind,
                            e.document_path,
                            e.messages.to_string(),
                            e.format,
                            e.topic
                        ])?;
                }
            }
            Ok(())
        })
    }

    /// Dataset versions, newest first.
    pub fn datasets(&self) -> Result<Vec<DatasetRecord>> {
        self.rows(
            "SELECT id, created_at, base_model, params, stats FROM datasets ORDER BY created_at DESC, rowid DESC",
            [],
            |r| {
                Ok(DatasetRecord {
                    id: r.get(0)?,
                    created_at: r.get(1)?,
                    base_model: r.get(2)?,
                    params: json(r.get(3)?),
                    stats: json(r.get(4)?),
                })
            },
        )
    }

    /// The examples of dataset `id`, in order.
    pub fn dataset_examples(&self, id: &str) -> Result<Vec<ExampleRecord>> {
        self.rows(
            "SELECT idx, split, kind, document_path, messages, format, topic FROM dataset_examples
             WHERE dataset_id = ?1 ORDER BY idx",
            [id],
            |r| {
                Ok(ExampleRecord {
                    idx: r.get(0)?,
                    split: r.get(1)?,
                    kind: r.get(2)?,
                    document_path: r.get(3)?,
                    messages: json(r.get(4)?),
                    format: r.get(5)?,
                    topic: r.get(6)?,
                })
            },
        )
    }

    /// A back-translated instruction cached for this passage, model and template.
    pub fn cached_instruction(
        &self,
        passage_hash: &str,
        model_sha256: &str,
        template: &str,
    ) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT instruction FROM instruction_cache
                 WHERE passage_hash = ?1 AND model_sha256 = ?2 AND template = ?3",
                [passage_hash, model_sha256, template],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Remember a back-translated instruction.
    pub fn cache_instruction(
        &self,
        passage_hash: &str,
        model_sha256: &str,
        template: &str,
        instruction: &str,
    ) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO instruction_cache(passage_hash, model_sha256, template, instruction)
                 VALUES (?1, ?2, ?3, ?4)",
                [passage_hash, model_sha256, template, instruction],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Register a trained adapter; returns its id.
    pub fn put_adapter(&self, a: &AdapterRecord) -> Result<AdapterId> {
        self.conn
            .query_row(
                "INSERT INTO adapters(name, path, architecture, base_sha256, base_name, dataset_id,
                    params, metrics, sha256, size, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) RETURNING id",
                params![
                    a.name,
                    a.path,
                    a.architecture,
                    a.base_sha256,
                    a.base_name,
                    a.dataset_id,
                    a.params.to_string(),
                    a.metrics.to_string(),
                    a.sha256,
                    a.size as i64,
                    if a.created_at == 0 {
                        now_secs()
                    } else {
                        a.created_at
                    },
                ],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Point adapter `id` at `path`, with `params` (an imported twin's adapters move with their
    /// lineage).
    pub fn relocate_adapter(
        &self,
        id: AdapterId,
        path: &str,
        params: &serde_json::Value,
    ) -> Result<()> {
        self.conn
            .execute(
                "UPDATE adapters SET path = ?2, params = ?3 WHERE id = ?1",
                params![id, path, params.to_string()],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Every adapter, newest first.
    pub fn adapters(&self) -> Result<Vec<AdapterRecord>> {
        self.rows(
            &format!("SELECT {ADAPTER_COLUMNS} FROM adapters ORDER BY id DESC"),
            [],
            adapter_row,
        )
    }

    /// One adapter by id.
    pub fn adapter(&self, id: AdapterId) -> Result<Option<AdapterRecord>> {
        self.conn
            .query_row(
                &format!("SELECT {ADAPTER_COLUMNS} FROM adapters WHERE id = ?1"),
                [id],
                adapter_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Forget an adapter (its activations go with it).
    pub fn remove_adapter(&self, id: AdapterId) -> Result<bool> {
        self.conn
            .execute("DELETE FROM adapters WHERE id = ?1", [id])
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// Make `adapter` (None: no adapter) the one `channel` uses, at `scale`.
    pub fn activate_adapter(
        &self,
        channel: &str,
        adapter: Option<AdapterId>,
        scale: f32,
    ) -> Result<()> {
        self.put_activation(&Activation {
            channel: channel.to_string(),
            adapter,
            scale,
            at: now_secs(),
        })
    }

    /// Append `activation` to the channels' history as it is (a twin bundle's history, replayed).
    pub fn put_activation(&self, activation: &Activation) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO adapter_history(channel, adapter_id, scale, at) VALUES (?1, ?2, ?3, ?4)",
                params![
                    activation.channel,
                    activation.adapter,
                    f64::from(activation.scale),
                    activation.at
                ],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Every channel's activations, oldest first (what rollback walks back through).
    pub fn activations(&self) -> Result<Vec<Activation>> {
        self.rows(
            "SELECT channel, adapter_id, scale, at FROM adapter_history ORDER BY id",
            [],
            |r| {
                Ok(Activation {
                    channel: r.get(0)?,
                    adapter: r.get(1)?,
                    scale: r.get::<_, f64>(2)? as f32,
                    at: r.get(3)?,
                })
            },
        )
    }

    /// The adapter `channel` uses now, if it ever chose one.
    pub fn active_adapter(&self, channel: &str) -> Result<Option<ActiveAdapter>> {
        let row: Option<(Option<AdapterId>, f64)> = self
            .conn
            .query_row(
                "SELECT adapter_id, scale FROM adapter_history WHERE channel = ?1 ORDER BY id DESC LIMIT 1",
                [channel],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((id, scale)) = row else {
            return Ok(None);
        };
        let adapter = match id {
            Some(id) => self.adapter(id)?,
            None => None,
        };
        Ok(Some(ActiveAdapter {
            adapter,
            scale: scale as f32,
        }))
    }

    /// Undo the newest activation of `channel`; returns whether there was one.
    pub fn rollback_adapter(&self, channel: &str) -> Result<bool> {
        self.conn
            .execute(
                "DELETE FROM adapter_history WHERE id =
                    (SELECT id FROM adapter_history WHERE channel = ?1 ORDER BY id DESC LIMIT 1)",
                [channel],
            )
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// Store a new training run; returns its id.
    pub fn put_run(&self, run: &RunRecord) -> Result<RunId> {
        let now = now_secs();
        self.conn
            .query_row(
                "INSERT INTO train_runs(run_key, status, base_sha256, dataset_id, params, dir, step,
                    total_steps, history, adapter_id, error, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12) RETURNING id",
                params![
                    run.run_key,
                    run.status,
                    run.base_sha256,
                    run.dataset_id,
                    run.params.to_string(),
                    run.dir,
                    run.step,
                    run.total_steps,
                    run.history.to_string(),
                    run.adapter_id,
                    run.error,
                    now,
                ],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Register a finished run's adapter, make it `channel`'s (when one is given), and mark the
    /// run done with it, in one transaction: a kill between those steps (which once registered
    /// the adapter twice, the resumed run registering it again) leaves either all of it or none.
    pub fn finish_run(
        &self,
        adapter: &AdapterRecord,
        run: &RunRecord,
        channel: Option<&str>,
    ) -> Result<AdapterId> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.err(e))?;
        let done = (|| {
            let id = self.put_adapter(adapter)?;
            if let Some(channel) = channel {
                self.activate_adapter(channel, Some(id), 1.0)?;
            }
            self.update_run(&RunRecord {
                adapter_id: Some(id),
                status: RunStatus::Done,
                ..run.clone()
            })?;
            Ok(id)
        })();
        let end = if done.is_ok() { "COMMIT" } else { "ROLLBACK" };
        self.conn.execute_batch(end).map_err(|e| self.err(e))?;
        done
    }

    /// Record a run's progress or outcome.
    pub fn update_run(&self, run: &RunRecord) -> Result<()> {
        self.conn
            .execute(
                "UPDATE train_runs SET status = ?2, step = ?3, history = ?4, adapter_id = ?5,
                    error = ?6, updated_at = ?7 WHERE id = ?1",
                params![
                    run.id,
                    run.status,
                    run.step,
                    run.history.to_string(),
                    run.adapter_id,
                    run.error,
                    now_secs()
                ],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The newest unfinished run with `run_key`, which a new `twin train` resumes.
    pub fn resumable_run(&self, run_key: &str) -> Result<Option<RunRecord>> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM train_runs WHERE run_key = ?1 AND status != 'done'
                     ORDER BY id DESC LIMIT 1"
                ),
                [run_key],
                run_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Training runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        self.rows(
            &format!("SELECT {RUN_COLUMNS} FROM train_runs ORDER BY id DESC LIMIT ?1"),
            [limit as i64],
            run_row,
        )
    }
}
