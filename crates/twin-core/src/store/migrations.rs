//! Versioned schema migrations, applied in order and recorded in `PRAGMA user_version`.
//!
//! Append new migrations; never edit one that has shipped. The vector table is not here: its
//! width depends on the embedding model, so the store creates it when a model is chosen.

/// Each entry upgrades the schema by one version.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the writing library.
    r#"
    CREATE TABLE sources (
        id            INTEGER PRIMARY KEY,
        path          TEXT NOT NULL UNIQUE,
        watched       INTEGER NOT NULL DEFAULT 0,
        added_at      INTEGER NOT NULL,
        last_sync_at  INTEGER
    );
    CREATE TABLE documents (
        id                 INTEGER PRIMARY KEY,
        source_id          INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
        path               TEXT NOT NULL UNIQUE,
        title              TEXT NOT NULL,
        platform           TEXT,
        format             TEXT NOT NULL,
        date               TEXT,            -- YYYY-MM-DD: front matter date, else file mtime
        tags               TEXT NOT NULL DEFAULT '[]',
        content_hash       TEXT NOT NULL,   -- blake3 of the file bytes
        mtime              INTEGER NOT NULL,-- nanoseconds since the epoch
        size               INTEGER NOT NULL,
        body               TEXT NOT NULL,   -- cleaned text; chunk offsets index into it
        simhash            INTEGER,
        duplicate_of       INTEGER REFERENCES documents(id) ON DELETE SET NULL,
        near_duplicate_of  INTEGER REFERENCES documents(id) ON DELETE SET NULL,
        imported_at        INTEGER NOT NULL,
        updated_at         INTEGER NOT NULL
    );
    CREATE INDEX documents_source ON documents(source_id);
    CREATE INDEX documents_hash ON documents(content_hash);
    CREATE TABLE chunks (
        id            INTEGER PRIMARY KEY,
        document_id   INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        ord           INTEGER NOT NULL,
        heading_path  TEXT NOT NULL,
        text          TEXT NOT NULL,
        char_start    INTEGER NOT NULL,     -- offsets in characters into documents.body
        char_end      INTEGER NOT NULL,
        n_tokens      INTEGER NOT NULL,
        embedded      INTEGER NOT NULL DEFAULT 0,
        UNIQUE (document_id, ord)
    );
    CREATE INDEX chunks_pending ON chunks(embedded) WHERE embedded = 0;
    -- Contentless: the text lives in `chunks`; FTS5 keeps only its index.
    CREATE VIRTUAL TABLE chunks_fts USING fts5(
        title, heading, text,
        content = '', contentless_delete = 1,
        tokenize = 'porter unicode61 remove_diacritics 2'
    );
    CREATE TABLE embedding_model (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        name       TEXT NOT NULL,
        hash       TEXT NOT NULL,
        dim        INTEGER NOT NULL,
        path       TEXT NOT NULL,
        set_at     INTEGER NOT NULL
    );
    CREATE TABLE settings (
        key    TEXT PRIMARY KEY,
        value  TEXT NOT NULL
    );
    "#,
    // 2: quantized copies of the vectors for fast search on large libraries (store/vectors.rs).
    r#"
    CREATE TABLE chunk_codes (
        chunk_id  INTEGER PRIMARY KEY,
        bits      BLOB NOT NULL,   -- sign bit per dimension, little-endian u64 words
        code      BLOB NOT NULL    -- int8 per dimension, scaled by the largest magnitude
    );
    -- The column weights (title, heading, text) as the default rank, so an unfiltered search
    -- can let FTS5 keep its own top-k instead of sorting every match through two joins.
    INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('rank', 'bm25(4.0, 2.0, 1.0)');
    "#,
    // 3: the model registry and drafting traces.
    r#"
    CREATE TABLE models (
        id            INTEGER PRIMARY KEY,
        name          TEXT NOT NULL,
        path          TEXT NOT NULL UNIQUE,  -- used in place: Ollama/LM Studio files are not copied
        kind          TEXT NOT NULL,         -- chat | embedding | reranker
        origin        TEXT NOT NULL,         -- added | pulled | ollama | lmstudio
        architecture  TEXT,
        sha256        TEXT NOT NULL,
        size          INTEGER NOT NULL,
        mtime         INTEGER NOT NULL,      -- nanoseconds; a change means the file must be re-hashed
        added_at      INTEGER NOT NULL
    );
    CREATE TABLE traces (
        id            INTEGER PRIMARY KEY,
        created_at    INTEGER NOT NULL,
        kind          TEXT NOT NULL,         -- draft
        status        TEXT NOT NULL,         -- ok | cancelled | error
        topic         TEXT NOT NULL,
        format        TEXT NOT NULL,
        model         TEXT NOT NULL,         -- name@sha256 prefix
        adapter       TEXT,
        output        TEXT NOT NULL,
        detail        TEXT NOT NULL          -- JSON: templates, retrieval, citations, timings
    );
    CREATE INDEX traces_created ON traces(created_at);
    "#,
    // 4: voice training: datasets, training runs, adapters and which adapter each channel uses.
    r#"
    CREATE TABLE datasets (
        id          TEXT PRIMARY KEY,       -- blake3 of parameters and examples (a version)
        created_at  INTEGER NOT NULL,
        base_model  TEXT NOT NULL,          -- sha256 of the model whose template rendered it
        params      TEXT NOT NULL,          -- JSON: how it was built
        stats       TEXT NOT NULL           -- JSON: counts per split and kind, filters applied
    );
    CREATE TABLE dataset_examples (
        dataset_id    TEXT NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
        idx           INTEGER NOT NULL,
        split         TEXT NOT NULL,        -- train | test
        kind          TEXT NOT NULL,        -- user | replay
        document_path TEXT,                 -- no foreign key: a dataset outlives edits
        messages      TEXT NOT NULL,        -- JSON chat; the last message is the target reply
        PRIMARY KEY (dataset_id, idx)
    );
    -- Back-translated instructions, so rebuilding a dataset does not ask the model again.
    CREATE TABLE instruction_cache (
        passage_hash  TEXT NOT NULL,
        model_sha256  TEXT NOT NULL,
        template      TEXT NOT NULL,        -- template name and version
        instruction   TEXT NOT NULL,
        PRIMARY KEY (passage_hash, model_sha256, template)
    );
    CREATE TABLE adapters (
        id           INTEGER PRIMARY KEY,
        name         TEXT NOT NULL,
        path         TEXT NOT NULL UNIQUE,
        architecture TEXT NOT NULL,
        base_sha256  TEXT NOT NULL,         -- an adapter only serves the exact base it was trained on
        base_name    TEXT NOT NULL,
        dataset_id   TEXT NOT NULL,
        params       TEXT NOT NULL,         -- JSON hyperparameters
        metrics      TEXT NOT NULL,         -- JSON: held-out loss before/after, steps, timings
        sha256       TEXT NOT NULL,
        size         INTEGER NOT NULL,
        created_at   INTEGER NOT NULL
    );
    CREATE TABLE train_runs (
        id           INTEGER PRIMARY KEY,
        run_key      TEXT NOT NULL,         -- base + dataset + parameters: the same key resumes
        status       TEXT NOT NULL,         -- running | cancelled | failed | done
        base_sha256  TEXT NOT NULL,
        dataset_id   TEXT NOT NULL,
        params       TEXT NOT NULL,
        dir          TEXT NOT NULL,         -- checkpoints
        step         INTEGER NOT NULL DEFAULT 0,
        total_steps  INTEGER NOT NULL,
        history      TEXT NOT NULL DEFAULT '[]',  -- JSON loss curve
        adapter_id   INTEGER REFERENCES adapters(id) ON DELETE SET NULL,
        error        TEXT,
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL
    );
    CREATE INDEX train_runs_key ON train_runs(run_key);
    -- Every activation, newest last; the active adapter of a channel is its newest row
    -- (adapter_id NULL = none), and rollback removes that row.
    CREATE TABLE adapter_history (
        id          INTEGER PRIMARY KEY,
        channel     TEXT NOT NULL,          -- default | linkedin | x | blog | newsletter
        adapter_id  INTEGER REFERENCES adapters(id) ON DELETE CASCADE,
        scale       REAL NOT NULL,
        at          INTEGER NOT NULL
    );
    "#,
    // 5: evaluation runs. A run stores raw measurements only (per-example NLL, draft texts,
    // ranks, judge scores); every number in a report is computed from these rows when it is
    // shown, so a report can always be re-derived and two runs compared.
    r#"
    CREATE TABLE eval_runs (
        id          INTEGER PRIMARY KEY,
        run_key     TEXT NOT NULL,          -- dataset + base + adapters + parameters: the same key resumes
        status      TEXT NOT NULL,          -- running | cancelled | failed | done
        dataset_id  TEXT NOT NULL,
        base_sha256 TEXT NOT NULL,
        params      TEXT NOT NULL,          -- JSON
        error       TEXT,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE INDEX eval_runs_key ON eval_runs(run_key);
    CREATE TABLE eval_items (
        run_id  INTEGER NOT NULL REFERENCES eval_runs(id) ON DELETE CASCADE,
        kind    TEXT NOT NULL,              -- nll | draft | judge | retrieval | heldout
        config  TEXT NOT NULL,              -- base | adapter:<id> | hybrid | …
        key     TEXT NOT NULL,              -- example or query index
        value   REAL NOT NULL,
        detail  TEXT NOT NULL,              -- JSON
        PRIMARY KEY (run_id, kind, config, key)
    );
    "#,
    // 6: a counter that every change to the documents' text moves, so what is derived from the
    // whole library (the style card) can tell it is stale without counting tables on every draft.
    r#"
    CREATE TABLE library_generation (
        id  INTEGER PRIMARY KEY CHECK (id = 1),
        n   INTEGER NOT NULL
    );
    INSERT INTO library_generation (id, n) VALUES (1, 0);
    CREATE TRIGGER documents_generation_insert AFTER INSERT ON documents
    BEGIN UPDATE library_generation SET n = n + 1; END;
    CREATE TRIGGER documents_generation_delete AFTER DELETE ON documents
    BEGIN UPDATE library_generation SET n = n + 1; END;
    CREATE TRIGGER documents_generation_update
    AFTER UPDATE OF body, date, duplicate_of ON documents
    BEGIN UPDATE library_generation SET n = n + 1; END;
    "#,
    // 7: documents from platform exports (wave 2). Their `path` is `<platform>:<platform id>`,
    // not a file, so a newer export of the same account updates them in place; `kind` says
    // what the writing is (post, article, newsletter, thread, reply, comment, page).
    r#"
    ALTER TABLE documents ADD COLUMN kind TEXT;
    ALTER TABLE documents ADD COLUMN url TEXT;
    CREATE INDEX documents_platform_kind ON documents(platform, kind);
    "#,
    // 8: a dataset example keeps the request it answers as data (format and topic), so
    // evaluation never parses it back out of prompt text a customised template may change.
    r#"
    ALTER TABLE dataset_examples ADD COLUMN format TEXT;
    ALTER TABLE dataset_examples ADD COLUMN topic TEXT;
    "#,
    // 9: one set of run statuses (`store::RunStatus`: running, done, cancelled, failed) for
    // traces, training and evaluation runs; traces used to say `ok` and `error`.
    r#"
    UPDATE traces SET status = 'done' WHERE status = 'ok';
    UPDATE traces SET status = 'failed' WHERE status = 'error';
    "#,
    // 10: what the user made of a draft (issue 21, learning from edits): the model's text and
    // the user's final text for a trace, kept for preference training. One row per draft: a
    // later final (copied, then edited again, then exported) replaces the earlier one.
    r#"
    CREATE TABLE draft_edits (
        id          INTEGER PRIMARY KEY,
        trace_id    INTEGER NOT NULL UNIQUE REFERENCES traces(id) ON DELETE CASCADE,
        created_at  INTEGER NOT NULL,
        topic       TEXT NOT NULL,
        format      TEXT NOT NULL,
        model       TEXT NOT NULL,
        adapter     TEXT,
        draft       TEXT NOT NULL,
        final       TEXT NOT NULL,
        changed     REAL NOT NULL           -- share of the draft's words the user changed
    );
    "#,
    // 11: automatic retraining (issue 21): each cycle with its trigger, the candidate adapter
    // it trained, the scores the promotion gate compared and its verdict; and the writing the
    // last cycle's dataset already covered, by content hash, so the next one knows what is new.
    r#"
    CREATE TABLE autotrain_cycles (
        id              INTEGER PRIMARY KEY,
        status          TEXT NOT NULL,      -- running | done | cancelled | failed
        trigger         TEXT NOT NULL,      -- threshold | platform | schedule | manual
        phase           TEXT NOT NULL,      -- dataset | train | evaluate | decided
        started_at      INTEGER NOT NULL,
        finished_at     INTEGER,
        change          TEXT NOT NULL,      -- JSON: the new writing that woke it
        params          TEXT NOT NULL,      -- JSON: fixed at the start, so a resume trains the same run
        dataset_id      TEXT,
        incumbent_id    INTEGER REFERENCES adapters(id) ON DELETE SET NULL,
        incumbent_name  TEXT NOT NULL,      -- what it competed against (the base model when no adapter was in use)
        candidate_id    INTEGER REFERENCES adapters(id) ON DELETE SET NULL,
        candidate_name  TEXT,
        eval_run_id     INTEGER REFERENCES eval_runs(id) ON DELETE SET NULL,
        scores          TEXT NOT NULL DEFAULT '{}',  -- JSON: both sides' scores, timings, memory
        promoted        INTEGER NOT NULL DEFAULT 0,
        reason          TEXT,
        error           TEXT
    );
    CREATE TABLE autotrain_seen (
        content_hash  TEXT PRIMARY KEY,
        platform      TEXT
    );
    "#,
    // 12: how a post was received, where the export says (X: likes + reposts; Substack: email
    // opens), for the ideas that name the user's best-received themes.
    r#"
    ALTER TABLE documents ADD COLUMN engagement INTEGER;
    "#,
];
