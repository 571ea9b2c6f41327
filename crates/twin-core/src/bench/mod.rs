//! Benchmarks: every `twin bench …` table, each row with its ratio to a bare reference measured
//! in the same run where one exists. Targets live here, never in timed tests. This module (the
//! feature pipeline and search, `twin bench library`) and its children — [`draft`] (first
//! token and decode speed against bare llama.cpp), [`quality`] (drafts judged one by one) and
//! [`train`] (training speed) — sit above every pipeline; no pipeline imports them.

pub mod draft;
pub mod quality;
pub mod train;

use crate::engine::EmbedderConfig;
use crate::library::{chunk, ImportOptions, Library, LibraryError};
use crate::progress::{CancelToken, NoProgress, Progress};
use crate::search::{SearchMode, SearchQuery};
use crate::store::{
    DocumentInfo, NewChunk, NewDocument, SearchFilter, VectorIndex, APPROXIMATE_FROM,
};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One line of a benchmark table.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchRow {
    /// What was measured.
    pub metric: String,
    /// The measurement, with its unit.
    pub value: String,
    /// Context: sizes, goals, caveats.
    pub note: String,
}

/// A table row.
pub fn row(
    metric: impl Into<String>,
    value: impl Into<String>,
    note: impl Into<String>,
) -> BenchRow {
    BenchRow {
        metric: metric.into(),
        value: value.into(),
        note: note.into(),
    }
}

/// What `twin bench library` measures.
#[derive(Clone, Debug)]
pub struct LibraryBench {
    /// A large folder for the parse-only pass (default: the Rust docs tree).
    pub tree: PathBuf,
    /// A smaller folder imported with embedding, and used for the embedding comparison.
    pub subset: PathBuf,
    /// Chunk counts at which to measure search latency (synthetic vectors and text).
    pub search_sizes: Vec<usize>,
    /// Queries per size.
    pub queries: usize,
    /// The GGUF embedding model.
    pub model: PathBuf,
    /// llama.cpp threads.
    pub threads: usize,
    /// Where to put the scratch libraries.
    pub scratch: PathBuf,
    /// Parts to run; empty runs all.
    pub parts: Vec<BenchPart>,
}

/// A part of the library benchmark, to run one alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchPart {
    /// Parse + clean + chunk of the big tree.
    Parse,
    /// The whole pipeline with embedding on the subset.
    Pipeline,
    /// Pipeline embedding against bare llama.cpp embedding.
    Embed,
    /// Search latency on synthetic libraries.
    Search,
    /// Search latency on real text: every chunk of the big tree.
    SearchReal,
}

impl std::str::FromStr for BenchPart {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "parse" => Ok(Self::Parse),
            "pipeline" => Ok(Self::Pipeline),
            "embed" => Ok(Self::Embed),
            "search" => Ok(Self::Search),
            "search-real" => Ok(Self::SearchReal),
            other => Err(format!(
                "unknown part {other:?} (parse, pipeline, embed, search or search-real)"
            )),
        }
    }
}

impl LibraryBench {
    fn runs(&self, part: BenchPart) -> bool {
        self.parts.is_empty() || self.parts.contains(&part)
    }
}

/// Peak resident memory of this process so far, in MiB (Linux; 0 elsewhere).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn fresh_library(dir: &Path, model: &Path, threads: usize) -> Result<Library, LibraryError> {
    let _ = std::fs::remove_dir_all(dir);
    let mut lib = Library::open(
        dir,
        EmbedderConfig {
            threads,
            ..Default::default()
        },
    )?;
    lib.set_embedding_model(model)?;
    Ok(lib)
}

/// Layouts of llama.cpp's encode loop tried for the bare reference: tokens per batch and
/// sequences per batch. Attention is quadratic in the batch's tokens, so small batches usually
/// win on CPU; a GPU wants the big ones.
const BARE_LAYOUTS: [(usize, usize); 5] =
    [(256, 16), (512, 16), (1024, 16), (2048, 64), (4096, 64)];

/// The prototype's figure for the same MiniLM weights (../shared/prototypes/bert-gguf-embed):
/// 2 threads, `n_ubatch` 512, chunks of ~235 tokens.
const PROTOTYPE_TOKENS_PER_SECOND: f64 = 6200.0;

/// Pipeline embedding (`embed_pending`: read from SQLite, tokenise, embed, write) against the
/// best layout of llama.cpp's bare encode loop on the same chunks and threads.
fn embedding_against_bare(
    b: &LibraryBench,
    lib: &mut Library,
    inputs: &[String],
) -> Result<Vec<BenchRow>, LibraryError> {
    let cancel = CancelToken::new();
    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    // The library's own embedder lends its weights to every layout: one load, one file hash.
    let embedder = lib.embedder()?;
    let mut rows = Vec::new();
    let mut best: Option<(f64, usize, usize)> = None;
    for (batch_tokens, max_sequences) in BARE_LAYOUTS {
        let config = EmbedderConfig {
            threads: b.threads,
            batch_tokens,
            max_sequences,
            ..Default::default()
        };
        let bare = crate::engine::embed::bare_embed(&embedder, &refs, &config, 2)?;
        let rate = bare.tokens as f64 / bare.seconds;
        rows.push(row(
            format!("llama.cpp alone, batch {batch_tokens} tokens"),
            format!("{rate:.0} tok/s"),
            format!(
                "{} chunks, {} tokens, ≤ {max_sequences} sequences per batch, {} threads, best of 2",
                inputs.len(),
                bare.tokens,
                b.threads
            ),
        ));
        if best.is_none_or(|(r, _, _)| rate > r) {
            best = Some((rate, batch_tokens, bare.tokens));
        }
    }
    let Some((best_rate, best_batch, tokens)) = best else {
        return Ok(rows);
    };
    rows.push(row(
        "llama.cpp alone, best layout",
        format!("{best_rate:.0} tok/s"),
        format!(
            "batch {best_batch} tokens; the prototype measured {PROTOTYPE_TOKENS_PER_SECOND:.0} tok/s \
             (2 threads, batch 512, ~235-token chunks; here {:.0} tokens per chunk)",
            tokens as f64 / inputs.len().max(1) as f64
        ),
    ));
    let (e, pipeline) = timed(|| lib.embed_pending(64, &NoProgress, &cancel))?;
    let rate = e.tokens as f64 / pipeline;
    rows.push(row(
        "pipeline embedding",
        format!("{rate:.0} tok/s"),
        format!(
            "{} chunks read from and written to SQLite, batch {} tokens",
            e.chunks,
            EmbedderConfig::default().batch_tokens
        ),
    ));
    rows.push(row(
        "pipeline / best llama.cpp",
        format!("{:.0}%", 100.0 * rate / best_rate),
        "goal ≥ 90%",
    ));
    Ok(rows)
}

fn percentile(sorted_ms: &[f64], p: f64) -> f64 {
    if sorted_ms.is_empty() {
        return 0.0;
    }
    sorted_ms[((sorted_ms.len() - 1) as f64 * p).round() as usize]
}

/// A small xorshift generator: reproducible synthetic data without another dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn vector(&mut self, dim: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..dim).map(|_| self.unit()).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }
}

fn timed<T>(f: impl FnOnce() -> Result<T, LibraryError>) -> Result<(T, f64), LibraryError> {
    let t = Instant::now();
    let v = f()?;
    Ok((v, t.elapsed().as_secs_f64()))
}

/// Run the library benchmark; `progress` shows the long passes.
pub fn library(b: &LibraryBench, progress: &dyn Progress) -> Result<Vec<BenchRow>, LibraryError> {
    let mut rows = Vec::new();
    let cancel = CancelToken::new();
    let parse_only = ImportOptions {
        embed: false,
        ..Default::default()
    };

    // 1. Parse + clean + chunk alone, on the big tree.
    if b.runs(BenchPart::Parse) {
        let mut lib = fresh_library(&b.scratch.join("tree"), &b.model, b.threads)?;
        let (r, secs) = timed(|| {
            lib.import(
                std::slice::from_ref(&b.tree),
                &parse_only,
                progress,
                &cancel,
            )
        })?;
        rows.push(row(
            "parse+clean+chunk files/s",
            format!("{:.0}", r.scanned as f64 / secs),
            format!(
                "{} files in {:.1} s ({})",
                r.scanned,
                secs,
                b.tree.display()
            ),
        ));
        rows.push(row(
            "parse+clean+chunk chunks/s",
            format!("{:.0}", r.chunks_written as f64 / secs),
            format!(
                "{} chunks; {} skipped, {} failed",
                r.chunks_written,
                r.skipped.len(),
                r.failed.len()
            ),
        ));
        rows.push(row(
            "peak RSS after the tree",
            format!("{:.0} MiB", peak_rss_mib()),
            "whole process, VmHWM",
        ));
        let db_bytes = lib.store().stats()?.database_bytes;
        rows.push(row(
            "database size (no vectors)",
            format!("{:.0} MiB", db_bytes as f64 / 1048576.0),
            "",
        ));
        drop(lib);
    }

    // 2. The whole pipeline with embedding, on the subset.
    if b.runs(BenchPart::Pipeline) {
        let mut lib = fresh_library(&b.scratch.join("subset"), &b.model, b.threads)?;
        let (r, secs) = timed(|| {
            lib.import(
                std::slice::from_ref(&b.subset),
                &ImportOptions::default(),
                progress,
                &cancel,
            )
        })?;
        rows.push(row(
            "full pipeline files/s",
            format!("{:.1}", r.scanned as f64 / secs),
            format!(
                "{} files, {} chunks in {:.1} s ({})",
                r.scanned,
                r.chunks_written,
                secs,
                b.subset.display()
            ),
        ));
        rows.push(row(
            "full pipeline chunks/s",
            format!("{:.1}", r.chunks_written as f64 / secs),
            "parse + embed + store",
        ));
        drop(lib);
    }

    // 3. Embedding inside the pipeline vs llama.cpp embedding alone, same chunks and threads.
    let mut lib = fresh_library(&b.scratch.join("embed"), &b.model, b.threads)?;
    lib.import(
        std::slice::from_ref(&b.subset),
        &parse_only,
        &NoProgress,
        &cancel,
    )?;
    let pending = lib.store().pending_chunks(usize::MAX >> 1)?;
    let inputs: Vec<String> = pending
        .iter()
        .map(|c| chunk::embedding_input(&c.title, &c.heading_path, &c.text))
        .collect();
    if b.runs(BenchPart::Embed) {
        rows.extend(embedding_against_bare(b, &mut lib, &inputs)?);
    }
    drop(lib);

    // 4. Search latency on synthetic libraries.
    let vocab: Vec<String> = inputs
        .iter()
        .flat_map(|t| {
            t.split_whitespace().map(|w| {
                w.trim_matches(|c: char| !c.is_alphanumeric())
                    .to_lowercase()
            })
        })
        .filter(|w| w.len() > 3)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for &size in &b.search_sizes {
        if !b.runs(BenchPart::Search) {
            break;
        }
        rows.extend(search_latency(b, size, &vocab, progress)?);
    }
    // 5. Search latency on real text: the big tree's own chunks (Zipfian words, long posting
    // lists for "the" and "fn", real titles), which uniform synthetic words do not have.
    if b.runs(BenchPart::SearchReal) {
        rows.extend(search_latency_real(b, progress)?);
    }
    rows.push(row(
        "peak RSS",
        format!("{:.0} MiB", peak_rss_mib()),
        "whole benchmark process",
    ));
    Ok(rows)
}

fn search_latency(
    b: &LibraryBench,
    size: usize,
    vocab: &[String],
    progress: &dyn Progress,
) -> Result<Vec<BenchRow>, LibraryError> {
    let dir = b.scratch.join(format!("search-{size}"));
    let mut lib = fresh_library(&dir, &b.model, b.threads)?;
    let dim = lib.embedder()?.identity().dim;
    let hash = lib.embedder()?.identity().hash.clone();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ size as u64);
    let source = lib.store().add_source(&dir, false)?;
    let per_doc = 100;
    let t = Instant::now();
    let mut written = 0;
    while written < size {
        let n = per_doc.min(size - written);
        let words = |rng: &mut Rng, k: usize| -> String {
            (0..k)
                .map(|_| vocab[(rng.next() % vocab.len() as u64) as usize].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let chunks: Vec<NewChunk> = (0..n)
            .map(|_| {
                let text = words(&mut rng, 40);
                NewChunk {
                    heading_path: String::new(),
                    char_start: 0,
                    char_end: text.chars().count(),
                    text,
                    n_tokens: 50,
                }
            })
            .collect();
        let doc = NewDocument {
            info: DocumentInfo {
                source_id: source.id,
                path: dir.join(format!("doc-{written}.md")),
                title: words(&mut rng, 4),
                platform: Some(["blog", "linkedin", "x"][(rng.next() % 3) as usize].into()),
                format: "markdown".into(),
                date: Some(format!(
                    "202{}-0{}-1{}",
                    rng.next() % 5,
                    1 + rng.next() % 9,
                    rng.next() % 10
                )),
                tags: Vec::new(),
                body: String::new(),
                duplicate_of: None,
                near_duplicate_of: None,
                kind: None,
                url: None,
            },
            content_hash: format!("synthetic-{written}"),
            mtime: 0,
            size: 0,
            simhash: None,
        };
        lib_store_put(&mut lib, &doc, &chunks, &hash, dim, &mut rng)?;
        written += n;
        progress.report(crate::progress::ProgressEvent {
            stage: crate::progress::Stage::Embed,
            done: written as u64,
            total: size as u64,
            item: Some(format!("synthetic library of {size} chunks")),
        });
    }
    let build = t.elapsed().as_secs_f64();
    let queries: Vec<(String, Vec<f32>)> = (0..b.queries)
        .map(|_| {
            let q = (0..3)
                .map(|_| vocab[(rng.next() % vocab.len() as u64) as usize].clone())
                .collect::<Vec<_>>()
                .join(" ");
            (q, rng.vector(dim))
        })
        .collect();
    let mut rows = vec![row(
        format!("build synthetic {size}"),
        format!("{build:.1} s"),
        "insert chunks, FTS rows and vectors",
    )];
    rows.extend(search_rows(
        b,
        &lib,
        &dir,
        &size.to_string(),
        size,
        &queries,
        "random vectors: worst case",
    )?);
    Ok(rows)
}

/// Chunks of the real-text library whose vectors are real embeddings; every other chunk takes
/// one of theirs, jittered. Embedding all of the tree (~20M tokens) would take hours on 2
/// cores, and an exact or quantized scan costs the same whatever the vectors hold.
const REAL_TEXT_EMBEDDED_SAMPLE: usize = 512;

/// Search latency over every chunk of the big tree (`b.tree`, parsed by the parse part or here),
/// with real queries: page titles from the tree, embedded by the library's model.
fn search_latency_real(
    b: &LibraryBench,
    progress: &dyn Progress,
) -> Result<Vec<BenchRow>, LibraryError> {
    let dir = b.scratch.join("tree");
    let mut rows = Vec::new();
    let mut lib = if b.runs(BenchPart::Parse) {
        // The parse part just filled it.
        Library::open(
            &dir,
            EmbedderConfig {
                threads: b.threads,
                ..Default::default()
            },
        )?
    } else {
        let mut lib = fresh_library(&dir, &b.model, b.threads)?;
        let options = ImportOptions {
            embed: false,
            ..Default::default()
        };
        let (r, secs) = timed(|| {
            lib.import(
                std::slice::from_ref(&b.tree),
                &options,
                progress,
                &CancelToken::new(),
            )
        })?;
        rows.push(row(
            "real text: parse the tree",
            format!("{secs:.1} s"),
            format!("{} files, {} chunks", r.scanned, r.chunks_written),
        ));
        lib
    };
    let embedder = lib.embedder()?;
    let (dim, hash) = (embedder.identity().dim, embedder.identity().hash.clone());
    let chunks = lib.store().pending_chunks(usize::MAX >> 1)?;
    let size = chunks.len();
    if size == 0 {
        return Ok(rows);
    }
    let t = Instant::now();
    let stride = (size / REAL_TEXT_EMBEDDED_SAMPLE).max(1);
    let sample: Vec<String> = chunks
        .iter()
        .step_by(stride)
        .map(|c| chunk::embedding_input(&c.title, &c.heading_path, &c.text))
        .collect();
    let mut sample_vectors = Vec::with_capacity(sample.len());
    for batch in sample.chunks(64) {
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        sample_vectors.extend(embedder.embed(&refs)?);
    }
    let embed_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for (written, batch) in chunks.chunks(5_000).enumerate() {
        let vectors: Vec<(i64, Vec<f32>)> = batch
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let nearest =
                    &sample_vectors[((written * 5_000 + i) / stride).min(sample_vectors.len() - 1)];
                let noise = rng.vector(dim);
                let v: Vec<f32> = nearest
                    .iter()
                    .zip(&noise)
                    .map(|(a, n)| a + 0.05 * n)
                    .collect();
                let norm = v
                    .iter()
                    .map(|x| x * x)
                    .sum::<f32>()
                    .sqrt()
                    .max(f32::EPSILON);
                (c.id, v.into_iter().map(|x| x / norm).collect())
            })
            .collect();
        lib.store_mut().put_vectors(&hash, &vectors)?;
        progress.report(crate::progress::ProgressEvent {
            stage: crate::progress::Stage::Embed,
            done: (written * 5_000 + batch.len()) as u64,
            total: size as u64,
            item: Some(format!("real-text library of {size} chunks")),
        });
    }
    rows.push(row(
        format!("real text: vectors for {size}"),
        format!("{:.1} s", t.elapsed().as_secs_f64()),
        format!(
            "{} chunks embedded ({embed_secs:.1} s); each of the others takes the vector of the \
             sampled chunk nearest it in the tree, jittered",
            sample_vectors.len()
        ),
    ));
    // Questions a reader of the tree would type: its page titles ("HashMap in std::collections").
    let mut titles: Vec<String> = chunks
        .iter()
        .step_by((size / b.queries.max(1)).max(1))
        .map(|c| c.title.trim_end_matches(" - Rust").trim().to_string())
        .filter(|t| !t.is_empty())
        .take(b.queries)
        .collect();
    titles.dedup();
    let refs: Vec<&str> = titles.iter().map(String::as_str).collect();
    let queries: Vec<(String, Vec<f32>)> =
        titles.iter().cloned().zip(embedder.embed(&refs)?).collect();
    drop(chunks);
    rows.extend(search_rows(
        b,
        &lib,
        &dir,
        &format!("{size} real"),
        size,
        &queries,
        "each real vector is shared, jittered, by hundreds of chunks: the exact top 10 among \
         near-clones is arbitrary, so this overlap says little here",
    )?);
    Ok(rows)
}

/// Latency rows of one library of `size` chunks (named `label` in the rows): BM25, exact and
/// quantized KNN, and a hybrid search end to end as the shells run it, over `queries` (text and
/// vector); `vectors` says what the vectors are, for the overlap note.
fn search_rows(
    b: &LibraryBench,
    lib: &Library,
    dir: &Path,
    label: &str,
    size: usize,
    queries: &[(String, Vec<f32>)],
    vectors: &str,
) -> Result<Vec<BenchRow>, LibraryError> {
    let dim = queries.first().map_or(0, |q| q.1.len());
    let filter = SearchFilter::default();
    let measure = |f: &mut QueryFn| -> Result<(f64, f64), LibraryError> {
        f(&queries[0])?; // warm the page cache
        let mut ms: Vec<f64> = Vec::new();
        for q in queries {
            let t = Instant::now();
            f(q)?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(f64::total_cmp);
        Ok((percentile(&ms, 0.5), percentile(&ms, 0.95)))
    };
    let store = lib.store();
    let every_term = measure(&mut |q| {
        store
            .search_bm25(&crate::search::fts_query(&q.0), &filter, 50)
            .map(|_| ())
            .map_err(Into::into)
    })?;
    let bm25 = measure(&mut |q| {
        store
            .search_bm25(&crate::search::bm25_query(store, &q.0)?, &filter, 50)
            .map(|_| ())
            .map_err(Into::into)
    })?;
    // How much of the every-term top 10 the search without common terms keeps, and how often
    // each finds the page a real-text query was made from (its title) in its top 10.
    let mut bm25_overlap = 0usize;
    let mut found = [0usize; 2];
    for q in queries {
        let top = |fts: &str| -> Result<Vec<i64>, LibraryError> {
            Ok(store
                .search_bm25(fts, &filter, 10)?
                .into_iter()
                .map(|r| r.0)
                .collect())
        };
        let all = top(&crate::search::fts_query(&q.0))?;
        let pruned = top(&crate::search::bm25_query(store, &q.0)?)?;
        bm25_overlap += pruned.iter().filter(|id| all.contains(id)).count();
        for (n, ids) in found.iter_mut().zip([&all, &pruned]) {
            let page = store
                .chunk_hits(ids)?
                .iter()
                .any(|h| h.title.trim_end_matches(" - Rust").trim() == q.0);
            *n += usize::from(page);
        }
    }
    let found_note = if found[0] > 0 {
        format!(
            "; the query's page in the top 10: {:.0}% (every term {:.0}%)",
            found[1] as f64 * 100.0 / queries.len().max(1) as f64,
            found[0] as f64 * 100.0 / queries.len().max(1) as f64
        )
    } else {
        String::new()
    };
    let float = measure(&mut |q| {
        store
            .search_vector_with(VectorIndex::Exact, &q.1, &filter, 50)
            .map(|_| ())
            .map_err(Into::into)
    })?;
    let bits = measure(&mut |q| {
        store
            .search_vector_with(VectorIndex::Approximate, &q.1, &filter, 50)
            .map(|_| ())
            .map_err(Into::into)
    })?;
    // How much of the exact top 10 the binary index keeps (random vectors are a hard case).
    let mut overlap = 0usize;
    for q in queries.iter().take(20) {
        let exact: Vec<i64> = store
            .search_vector_with(VectorIndex::Exact, &q.1, &filter, 10)?
            .into_iter()
            .map(|r| r.0)
            .collect();
        let approx: Vec<i64> = store
            .search_vector_with(VectorIndex::Approximate, &q.1, &filter, 10)?
            .into_iter()
            .map(|r| r.0)
            .collect();
        overlap += approx.iter().filter(|id| exact.contains(id)).count();
    }
    let hybrid = measure(&mut |q| lib_search(dir, &b.model, b.threads, &q.0))?;
    let note = format!("{size} chunks, {dim}-d, {} queries", queries.len());
    Ok(vec![
        row(
            format!("bm25, every term p50/p95 @ {label}"),
            format!("{:.1} / {:.1} ms", every_term.0, every_term.1),
            format!("{note}; the reference: FTS5 scores every chunk any term matches"),
        ),
        row(
            format!("bm25 p50/p95 @ {label}"),
            format!("{:.1} / {:.1} ms", bm25.0, bm25.1),
            format!(
                "as searched: terms in ≥ 10% of chunks dropped from 20k chunks up; \
                 ×{:.2} of every-term; top-10 overlap with it {:.0}%{found_note}",
                bm25.0 / every_term.0.max(1e-9),
                bm25_overlap as f64 * 100.0 / (10 * queries.len()).max(1) as f64
            ),
        ),
        row(
            format!("vector float p50/p95 @ {label}"),
            format!("{:.1} / {:.1} ms", float.0, float.1),
            "sqlite-vec brute force, cosine",
        ),
        row(
            format!("vector bit+int8 rescore p50/p95 @ {label}"),
            format!("{:.1} / {:.1} ms", bits.0, bits.1),
            format!(
                "Hamming ×10 oversample, int8 re-score; top-10 overlap with exact {:.0}% ({vectors})",
                overlap as f64 * 100.0 / (10 * queries.len().min(20)).max(1) as f64
            ),
        ),
        row(
            format!("hybrid end-to-end p50/p95 @ {label}"),
            format!("{:.1} / {:.1} ms", hybrid.0, hybrid.1),
            format!(
                "query embedding + bm25 + {} KNN + RRF + snippets; goal p50 < 20 ms at 100k",
                if size as u64 >= APPROXIMATE_FROM { "quantized" } else { "exact" }
            ),
        ),
    ])
}

/// One timed search over a synthetic query (text, vector).
type QueryFn<'a> = dyn FnMut(&(String, Vec<f32>)) -> Result<(), LibraryError> + 'a;

thread_local! {
    static SEARCH_LIB: std::cell::RefCell<Option<(PathBuf, Library)>> = const { std::cell::RefCell::new(None) };
}

/// A full hybrid search through a (cached) library handle, as the shells run it.
fn lib_search(dir: &Path, model: &Path, threads: usize, text: &str) -> Result<(), LibraryError> {
    let _ = model;
    SEARCH_LIB.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.as_ref().is_none_or(|(d, _)| d != dir) {
            *cell = Some((
                dir.to_path_buf(),
                Library::open(
                    dir,
                    EmbedderConfig {
                        threads,
                        ..Default::default()
                    },
                )?,
            ));
        }
        let (_, lib) = cell.as_mut().ok_or(LibraryError::NoEmbeddingModel)?;
        let mut q = SearchQuery::new(text, 10);
        q.mode = SearchMode::Hybrid;
        lib.search(&q).map(|_| ())
    })
}

fn lib_store_put(
    lib: &mut Library,
    doc: &NewDocument,
    chunks: &[NewChunk],
    hash: &str,
    dim: usize,
    rng: &mut Rng,
) -> Result<(), LibraryError> {
    let store = lib.store_mut();
    let put = store.put_document(doc, chunks)?;
    let ids: Vec<i64> = store.chunks_of(put.id)?.into_iter().map(|c| c.id).collect();
    let vectors: Vec<(i64, Vec<f32>)> = ids.into_iter().map(|id| (id, rng.vector(dim))).collect();
    store.put_vectors(hash, &vectors)?;
    Ok(())
}
