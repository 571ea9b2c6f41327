//! Incremental sync on a real SQLite file with the real embedding model: a no-op re-import
//! embeds nothing, an edit re-embeds only that file's changed chunks, a delete leaves both
//! indexes, a rename keeps the chunks, watch mode follows an edit within seconds, and switching
//! the embedding model re-embeds everything instead of mixing vectors.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use twin_core::engine::EmbedderConfig;
use twin_core::library::watch::{self, WatchEvent};
use twin_core::progress::NoProgress;
use twin_core::store::{SearchFilter, VectorIndex};
use twin_core::{CancelToken, ImportOptions, Library, SearchMode, SearchQuery};

fn library(dir: &Path) -> Library {
    let mut lib = Library::open(dir, EmbedderConfig::default()).unwrap();
    lib.set_embedding_model(&common::minilm_gguf()).unwrap();
    lib
}

fn copy_samples(to: &Path) {
    for entry in walkdir::WalkDir::new(common::sample_writing())
        .into_iter()
        .flatten()
    {
        let rel = entry.path().strip_prefix(common::sample_writing()).unwrap();
        let dest = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

fn import(lib: &mut Library, path: &Path) -> twin_core::ImportReport {
    lib.import(
        &[path.to_path_buf()],
        &ImportOptions::default(),
        &NoProgress,
        &CancelToken::new(),
    )
    .unwrap()
}

fn hits_for(lib: &mut Library, text: &str, mode: SearchMode) -> Vec<PathBuf> {
    let mut q = SearchQuery::new(text, 5);
    q.mode = mode;
    lib.search(&q)
        .unwrap()
        .into_iter()
        .map(|r| r.hit.path)
        .collect()
}

#[test]
fn incremental_sync_touches_only_what_changed() {
    let data = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    copy_samples(src.path());
    let mut lib = library(data.path());

    let first = import(&mut lib, src.path());
    assert_eq!(first.added, 31, "{first:#?}");
    assert!(first.failed.is_empty(), "{:?}", first.failed);
    assert_eq!(first.chunks_embedded, first.chunks_written);
    let stats = lib.store().stats().unwrap();
    assert_eq!(stats.vectors, stats.chunks);
    assert_eq!(lib.store().fts_count().unwrap(), stats.chunks);
    let generation = |lib: &Library| lib.store().library_generation().unwrap();
    let card_stats = |lib: &Library| {
        serde_json::to_string(&twin_core::draft::style::card(lib.store()).unwrap().stats).unwrap()
    };
    let (imported, card_imported) = (generation(&lib), card_stats(&lib));
    assert!(imported >= 31, "{imported}");

    // A no-op re-import embeds 0 chunks.
    let again = import(&mut lib, src.path());
    assert_eq!(
        (
            again.added,
            again.updated,
            again.chunks_written,
            again.chunks_embedded
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(again.unchanged, 31);

    // Touching a file without changing it: hashed, found identical, nothing re-embedded.
    let post = src
        .path()
        .join("blog/2024-09-23-maintenance-is-the-product.md");
    let text = std::fs::read_to_string(&post).unwrap();
    std::fs::write(&post, &text).unwrap();
    let touched = import(&mut lib, src.path());
    assert_eq!((touched.updated, touched.chunks_embedded), (0, 0));
    // Nothing the style card reads changed: it is not measured again.
    assert_eq!(generation(&lib), imported);

    // Editing one file re-embeds only its chunks — only the changed ones, in fact.
    let doc_id = lib
        .store()
        .document_id_by_path(&post.canonicalize().unwrap())
        .unwrap()
        .unwrap();
    let chunks_before = lib.store().chunks_of(doc_id).unwrap().len();
    let edited = text.replace(
        "most beautiful thing I have ever repaired",
        "most beautiful thing I have ever repaired, a walnut heirloom with zebra stripes",
    );
    std::fs::write(&post, edited).unwrap();
    let after_edit = import(&mut lib, src.path());
    assert_eq!(after_edit.updated, 1);
    assert_eq!(after_edit.added, 0);
    // Other text, whether or not the counts of documents and chunks moved: measured again.
    let edited_generation = generation(&lib);
    assert!(edited_generation > imported);
    assert_ne!(card_stats(&lib), card_imported);
    assert!(
        after_edit.chunks_embedded >= 1 && after_edit.chunks_embedded <= chunks_before,
        "{after_edit:#?}"
    );
    assert_eq!(
        after_edit.chunks_embedded + after_edit.vectors_reused,
        after_edit.chunks_written
    );
    assert!(
        hits_for(&mut lib, "walnut heirloom zebra stripes", SearchMode::Bm25)
            .iter()
            .any(|p| p.ends_with("2024-09-23-maintenance-is-the-product.md"))
    );

    // Renaming keeps the document and its chunks.
    let chunk_ids: Vec<i64> = lib
        .store()
        .chunks_of(doc_id)
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    let renamed = src.path().join("blog/maintenance.md");
    std::fs::rename(&post, &renamed).unwrap();
    let after_rename = import(&mut lib, src.path());
    assert_eq!(
        (
            after_rename.renamed,
            after_rename.deleted,
            after_rename.chunks_embedded
        ),
        (1, 0, 0),
        "{after_rename:#?}"
    );
    let moved = lib
        .store()
        .document_id_by_path(&renamed.canonicalize().unwrap())
        .unwrap();
    assert_eq!(moved, Some(doc_id));
    assert_eq!(
        lib.store()
            .chunks_of(doc_id)
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        chunk_ids
    );
    assert_eq!(
        generation(&lib),
        edited_generation,
        "a rename changes no text"
    );

    // Deleting a file removes its chunks from both indexes.
    let before = lib.store().stats().unwrap();
    std::fs::remove_file(&renamed).unwrap();
    let after_delete = import(&mut lib, src.path());
    assert_eq!(after_delete.deleted, 1);
    assert!(generation(&lib) > edited_generation);
    let after = lib.store().stats().unwrap();
    assert_eq!(after.chunks, before.chunks - chunk_ids.len() as u64);
    assert_eq!(after.vectors, after.chunks);
    assert_eq!(lib.store().fts_count().unwrap(), after.chunks);
    assert!(
        hits_for(&mut lib, "walnut heirloom zebra stripes", SearchMode::Bm25)
            .iter()
            .all(|p| !p.ends_with("maintenance.md"))
    );
    assert_eq!(lib.store().integrity_check().unwrap(), "ok");
}

#[test]
fn duplicates_are_caught_and_near_duplicates_flagged() {
    let data = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let original = common::sample_writing().join("blog/2024-06-17-estimates-without-lying.md");
    let text = std::fs::read_to_string(&original).unwrap();
    std::fs::write(src.path().join("a.md"), &text).unwrap();
    std::fs::write(src.path().join("copy-of-a.md"), &text).unwrap();
    std::fs::write(
        src.path().join("a-draft.md"),
        text.replace("That afternoon.", "The same afternoon, ideally."),
    )
    .unwrap();
    let mut lib = library(data.path());
    let report = import(&mut lib, src.path());
    assert_eq!(report.duplicates, 1, "{report:#?}");
    assert_eq!(report.near_duplicates, 1, "{report:#?}");
    let stats = lib.store().stats().unwrap();
    assert_eq!((stats.duplicates, stats.near_duplicates), (1, 1));
    // The byte-identical copy is not chunked twice.
    let a = lib
        .store()
        .document_id_by_path(&src.path().join("a.md").canonicalize().unwrap())
        .unwrap()
        .unwrap();
    let copy = lib
        .store()
        .document_id_by_path(&src.path().join("copy-of-a.md").canonicalize().unwrap())
        .unwrap()
        .unwrap();
    let (a_chunks, copy_chunks) = (
        lib.store().chunks_of(a).unwrap().len(),
        lib.store().chunks_of(copy).unwrap().len(),
    );
    assert!(a_chunks > 0 && copy_chunks == 0 || copy_chunks > 0 && a_chunks == 0);
    // Deleting the chunked one promotes the copy.
    let chunked = if a_chunks > 0 { "a.md" } else { "copy-of-a.md" };
    std::fs::remove_file(src.path().join(chunked)).unwrap();
    import(&mut lib, src.path());
    let left = if chunked == "a.md" { copy } else { a };
    assert!(!lib.store().chunks_of(left).unwrap().is_empty());
}

#[test]
fn watch_reflects_an_edit_within_five_seconds() {
    let data = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(
        src.path().join("note.md"),
        "# Note\n\nA plain note about planing oak.",
    )
    .unwrap();
    let mut lib = library(data.path());
    import(&mut lib, src.path());
    let sources = lib.sources().unwrap();
    let cancel = CancelToken::new();
    let watcher_cancel = cancel.clone();
    let note = src.path().join("note.md");
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        watch::watch(
            &mut lib,
            &sources,
            &ImportOptions::default(),
            &watcher_cancel,
            |e| {
                let _ = tx.send(e);
            },
        )
        .unwrap();
        lib
    });
    assert!(matches!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        WatchEvent::Started(_)
    ));
    std::thread::sleep(Duration::from_millis(200));
    let edited_at = Instant::now();
    std::fs::write(
        &note,
        "# Note\n\nA plain note about planing oak, now with a marquetry flamingo.",
    )
    .unwrap();
    let mut synced = None;
    while edited_at.elapsed() < Duration::from_secs(10) {
        if let Ok(WatchEvent::Synced(r)) = rx.recv_timeout(Duration::from_millis(100)) {
            if r.updated == 1 {
                synced = Some(edited_at.elapsed());
                break;
            }
        }
    }
    cancel.cancel();
    let mut lib = handle.join().unwrap();
    let took = synced.expect("watch never synced the edit");
    println!("watch: edit reflected after {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(
        hits_for(&mut lib, "marquetry flamingo", SearchMode::Hybrid).len(),
        1
    );
    assert!(
        lib.sources().unwrap().iter().all(|s| s.watched),
        "watched sources are remembered"
    );
}

#[test]
fn switching_the_embedding_model_reembeds_instead_of_mixing() {
    let data = tempfile::tempdir().unwrap();
    let mut lib = library(data.path());
    let report = import(&mut lib, &common::sample_writing().join("x"));
    assert!(report.chunks_embedded > 0);
    // The same weights stored as F32 are a different file, hence a different model identity.
    let other = data.path().join("minilm-f32.gguf");
    twin_core::models::convert_sentence_transformer(
        &common::minilm_dir(),
        &other,
        &twin_core::models::ConvertOptions { f16: false },
    )
    .unwrap();
    assert!(
        lib.set_embedding_model(&other).unwrap(),
        "switching must reset vectors"
    );
    let stats = lib.store().stats().unwrap();
    assert_eq!((stats.vectors, stats.embedded_chunks), (0, 0));
    let again = import(&mut lib, &common::sample_writing().join("x"));
    assert_eq!(again.chunks_embedded as u64, stats.chunks);
    assert_eq!(
        lib.store().embedding_model().unwrap().unwrap().path,
        other.to_string_lossy()
    );
}

#[test]
fn filters_restrict_search_by_platform_date_and_source() {
    let data = tempfile::tempdir().unwrap();
    let mut lib = library(data.path());
    import(&mut lib, &common::sample_writing());
    let mut q = SearchQuery::new("pricing the whole shop", 10);
    q.filter.platform = Some("x".into());
    let results = lib.search(&q).unwrap();
    assert!(!results.is_empty());
    assert!(results
        .iter()
        .all(|r| r.hit.platform.as_deref() == Some("x")));
    q.filter.platform = None;
    q.filter.date_from = Some("2025-01-01".into());
    let results = lib.search(&q).unwrap();
    assert!(!results.is_empty());
    assert!(
        results
            .iter()
            .all(|r| r.hit.date.as_deref().unwrap_or("") >= "2025-01-01"),
        "{results:#?}"
    );
    for mode in [SearchMode::Bm25, SearchMode::Vector] {
        q.mode = mode;
        assert!(lib
            .search(&q)
            .unwrap()
            .iter()
            .all(|r| r.hit.date.as_deref().unwrap_or("") >= "2025-01-01"));
    }
}

/// The quantized index that large libraries use agrees with the exact one on real embeddings,
/// applies the same filters, and follows edits to the library.
#[test]
fn quantized_vector_search_agrees_with_exact() {
    let data = tempfile::tempdir().unwrap();
    let mut lib = library(data.path());
    import(&mut lib, &common::sample_writing());
    let queries = [
        "pricing the whole shop",
        "why I stopped chasing followers",
        "shipping small tools for tiny teams",
        "what a newsletter taught me about writing",
    ];
    let mut overlap = 0;
    for text in queries {
        let v = lib.embedder().unwrap().embed(&[text]).unwrap().remove(0);
        for filter in [
            SearchFilter::default(),
            SearchFilter {
                platform: Some("linkedin".into()),
                ..Default::default()
            },
        ] {
            let store = lib.store();
            let exact = store
                .search_vector_with(VectorIndex::Exact, &v, &filter, 5)
                .unwrap();
            let approx = store
                .search_vector_with(VectorIndex::Approximate, &v, &filter, 5)
                .unwrap();
            assert_eq!(exact[0].0, approx[0].0, "{text}: top hit differs");
            assert!((exact[0].1 - approx[0].1).abs() < 0.02);
            overlap += approx
                .iter()
                .filter(|(id, _)| exact.iter().any(|(e, _)| e == id))
                .count();
            if filter.platform.is_some() {
                for (id, _) in &approx {
                    let hit = store.chunk_hits(&[*id]).unwrap().remove(0);
                    assert_eq!(hit.platform.as_deref(), Some("linkedin"));
                }
            }
        }
    }
    assert!(overlap >= 34, "top-5 overlap {overlap}/40");
    // A deleted document leaves the quantized index too.
    let v = lib
        .embedder()
        .unwrap()
        .embed(&["pricing the whole shop"])
        .unwrap()
        .remove(0);
    let top = lib
        .store()
        .search_vector_with(VectorIndex::Approximate, &v, &SearchFilter::default(), 1)
        .unwrap()[0]
        .0;
    let doc = lib.store().chunk_hits(&[top]).unwrap()[0].document_id;
    lib.store_mut().delete_document(doc).unwrap();
    let after = lib
        .store()
        .search_vector_with(VectorIndex::Approximate, &v, &SearchFilter::default(), 5)
        .unwrap();
    assert!(after.iter().all(|(id, _)| *id != top));
}
