//! The Rust Book (462 HTML pages) as a real, messy folder: an import killed with SIGKILL midway
//! leaves a sound database and resumes to completion; then hybrid search finds the right page
//! for known questions, and recall@5 and MRR are reported for bm25, vector and hybrid.

mod common;

use std::time::{Duration, Instant};
use twin_core::engine::EmbedderConfig;
use twin_core::store::Store;
use twin_core::{Library, SearchMode, SearchQuery};

/// Questions a reader would ask, and the page of the book that answers each.
const QUERIES: &[(&str, &str)] = &[
    (
        "who owns a value and when is it dropped",
        "ch04-01-what-is-ownership.html",
    ),
    (
        "can I have two mutable references to the same data at once",
        "ch04-02-references-and-borrowing.html",
    ),
    (
        "string slices and the first_word example",
        "ch04-03-slices.html",
    ),
    (
        "field init shorthand and struct update syntax",
        "ch05-01-defining-structs.html",
    ),
    (
        "methods that take &self on a struct, associated functions",
        "ch05-03-method-syntax.html",
    ),
    (
        "Option<T> instead of null values",
        "ch06-01-defining-an-enum.html",
    ),
    (
        "matching on an enum must be exhaustive",
        "ch06-02-match.html",
    ),
    (
        "if let as a concise alternative to match",
        "ch06-03-if-let.html",
    ),
    (
        "binary crate versus library crate in a package",
        "ch07-01-packages-and-crates.html",
    ),
    (
        "bring a path into scope with the use keyword",
        "ch07-04-bringing-paths-into-scope-with-the-use-keyword.html",
    ),
    (
        "push elements onto a Vec and read them by index",
        "ch08-01-vectors.html",
    ),
    (
        "why can't I index into a String to get a character",
        "ch08-02-strings.html",
    ),
    (
        "count words with a HashMap entry API",
        "ch08-03-hash-maps.html",
    ),
    (
        "unwinding the stack or aborting in response to a panic",
        "ch09-01-unrecoverable-errors-with-panic.html",
    ),
    (
        "propagating errors with the question mark operator",
        "ch09-02-recoverable-errors-with-result.html",
    ),
    (
        "generic functions to find the largest item in a list",
        "ch10-01-syntax.html",
    ),
    (
        "trait bounds and default implementations of trait methods",
        "ch10-02-traits.html",
    ),
    (
        "dangling references and lifetime annotations",
        "ch10-03-lifetime-syntax.html",
    ),
    (
        "the assert_eq! macro and should_panic attribute in tests",
        "ch11-01-writing-tests.html",
    ),
    (
        "integration tests in the tests directory",
        "ch11-03-test-organization.html",
    ),
    (
        "reading command line arguments with std::env::args",
        "ch12-01-accepting-command-line-arguments.html",
    ),
    (
        "closures capturing values from their environment, Fn traits",
        "ch13-01-closures.html",
    ),
    (
        "the Iterator trait and the next method, map and collect",
        "ch13-02-iterators.html",
    ),
    (
        "release profiles opt-level in Cargo.toml",
        "ch14-01-release-profiles.html",
    ),
    (
        "recursive types like a cons list need Box",
        "ch15-01-box.html",
    ),
    (
        "reference counting to share ownership with multiple owners",
        "ch15-04-rc.html",
    ),
    (
        "interior mutability: mutate data even with immutable references",
        "ch15-05-interior-mutability.html",
    ),
    (
        "spawn a thread and wait for it with join handles",
        "ch16-01-threads.html",
    ),
    (
        "sending messages between threads over a channel",
        "ch16-02-message-passing.html",
    ),
    (
        "sharing a Mutex between threads with Arc",
        "ch16-03-shared-state.html",
    ),
];

fn is_right(path: &std::path::Path, page: &str) -> bool {
    path.file_name().is_some_and(|n| n == page)
        && path
            .parent()
            .and_then(|p| p.file_name())
            .is_some_and(|d| d == "book")
}

#[test]
fn crash_safe_import_then_retrieval_quality() {
    let book = common::rust_book();
    let data = common::library_with_model();
    let db = data.path().join("library.sqlite3");

    // 1. Start an import and kill it with SIGKILL once embedding is under way.
    let mut child = common::twin(data.path())
        .arg("import")
        .arg(&book)
        .arg("--json")
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut embedded_at_kill = 0;
    while started.elapsed() < Duration::from_secs(600) {
        std::thread::sleep(Duration::from_millis(300));
        if let Ok(store) = Store::open(&db) {
            if let Ok(stats) = store.stats() {
                if stats.embedded_chunks >= 200 {
                    embedded_at_kill = stats.embedded_chunks;
                    break;
                }
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import finished before it could be killed"
        );
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(embedded_at_kill >= 200, "embedding never got under way");

    // 2. The killed library is sound, partly embedded.
    let store = Store::open(&db).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let partial = store.stats().unwrap();
    println!(
        "killed after {:?}: {} chunks, {} embedded",
        started.elapsed(),
        partial.chunks,
        partial.embedded_chunks
    );
    assert!(partial.embedded_chunks < partial.chunks);
    drop(store);

    // 3. Re-running completes it, embedding only what was missing.
    let out = common::run_ok(
        common::twin(data.path())
            .arg("import")
            .arg(&book)
            .arg("--json"),
    );
    let report = common::json(&out);
    let store = Store::open(&db).unwrap();
    let stats = store.stats().unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    assert_eq!(stats.embedded_chunks, stats.chunks, "{report}");
    assert_eq!(stats.vectors, stats.chunks);
    assert_eq!(store.fts_count().unwrap(), stats.chunks);
    assert_eq!(
        report["chunks_embedded"].as_u64().unwrap() + partial.embedded_chunks,
        stats.chunks
    );
    assert!(stats.documents >= 390, "{stats:?}");
    println!(
        "resumed: {} documents, {} chunks",
        stats.documents, stats.chunks
    );
    drop(store);

    // 4. Retrieval quality.
    let mut library = Library::open(data.path(), EmbedderConfig::default()).unwrap();
    println!("\n| mode | recall@5 | MRR@10 | queries |\n|---|---|---|---|");
    let mut hybrid_hits = 0;
    for mode in [SearchMode::Bm25, SearchMode::Vector, SearchMode::Hybrid] {
        let (mut hits, mut rr) = (0usize, 0.0f64);
        let mut missed = Vec::new();
        for (q, page) in QUERIES {
            let mut query = SearchQuery::new(*q, 10);
            query.mode = mode;
            let results = library.search(&query).unwrap();
            let rank = results.iter().position(|r| is_right(&r.hit.path, page));
            if let Some(r) = rank {
                rr += 1.0 / (r as f64 + 1.0);
                if r < 5 {
                    hits += 1;
                }
            }
            if rank.is_none_or(|r| r >= 5) {
                missed.push(format!("{q:?} → {page} (rank {rank:?})"));
            }
        }
        println!(
            "| {mode:?} | {:.2} | {:.3} | {} |",
            hits as f64 / QUERIES.len() as f64,
            rr / QUERIES.len() as f64,
            QUERIES.len()
        );
        if !missed.is_empty() {
            println!("  {mode:?} missed: {}", missed.join("; "));
        }
        if mode == SearchMode::Hybrid {
            hybrid_hits = hits;
        }
    }
    assert!(
        hybrid_hits >= 20,
        "hybrid found only {hybrid_hits} of {} right pages in the top 5",
        QUERIES.len()
    );
}
