//! Fuzz target bodies: each takes arbitrary bytes, runs one reader of untrusted input, and
//! asserts what must hold for every input. `fuzz/` (cargo-fuzz, nightly) drives them with
//! libFuzzer (`scripts/fuzz.sh`); the unit tests below run them over the seed corpus in
//! `fuzz/seeds/` and over mutations of it on every `cargo test`, so a crash found once stays
//! fixed.
//!
//! A body panics only when an invariant fails or a reader panics where it must not.

use crate::library::chunk::{self, ChunkConfig, TokenCounter};
use crate::library::parse::{self, Format};
use crate::library::{clean, export};
use std::path::Path;

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// The fuzz targets, by name (the file names under `fuzz/fuzz_targets/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("parse_markdown", parse_markdown),
    ("parse_text", parse_text),
    ("parse_html", parse_html),
    ("parse_docx", parse_docx),
    ("parse_pdf", parse_pdf),
    ("export", export_archive),
    ("gguf_header", gguf_header),
    ("fts_query", fts_query),
    ("chunking", chunking),
];

/// Our own parsers must not panic at all (the containment in `parse::parse` is a second line).
fn parse_own(format: Format, data: &[u8]) {
    if let Ok(doc) = parse::parse_uncontained(format, data) {
        let blocks = clean::clean_blocks(doc.blocks);
        let body = chunk::render_body(&blocks);
        check_chunks(&body, "t");
    }
}

/// Markdown with front matter.
pub fn parse_markdown(data: &[u8]) {
    parse_own(Format::Markdown, data);
}

/// Plain text.
pub fn parse_text(data: &[u8]) {
    parse_own(Format::Text, data);
}

/// HTML (the depth pre-check and the tree walk).
pub fn parse_html(data: &[u8]) {
    parse_own(Format::Html, data);
}

/// DOCX (zip, bounded reads, XML).
pub fn parse_docx(data: &[u8]) {
    parse_own(Format::Docx, data);
}

/// PDF: pdf-extract's panics are contained by design (and the app runs it in a limited child
/// process), so this target looks for what containment cannot stop: aborts, stack overflows,
/// endless loops and runaway memory.
pub fn parse_pdf(data: &[u8]) {
    let _ = parse::parse(Format::Pdf, data);
}

/// A platform export: zip (LinkedIn, X, Medium, Substack), WordPress XML or Ghost JSON, picked
/// by the first byte, read from a file as the importer does.
pub fn export_archive(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let name = match kind % 3 {
        0 => "export.zip",
        1 => "wordpress.xml",
        _ => "ghost.json",
    };
    with_file(name, rest, |path| {
        if let Ok(Some(export)) = export::read(path) {
            for item in &export.items {
                assert!(!item.id.is_empty(), "an export item without an id");
            }
        }
    });
}

/// Run `f` on `data` written to a scratch file named `name` (readers that take paths), then
/// remove it. Each call gets its own folder: targets may run on several threads.
fn with_file(name: &str, data: &[u8], f: impl FnOnce(&Path)) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "twin-fuzz-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    if std::fs::create_dir_all(&dir).is_ok() {
        let path = dir.join(name);
        if std::fs::write(&path, data).is_ok() {
            f(&path);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The GGUF header reader (models and adapters from anywhere).
pub fn gguf_header(data: &[u8]) {
    with_file("model.gguf", data, |path| {
        let _ = crate::gguf::read_header(path);
    });
}

/// Any user text becomes an FTS5 query SQLite accepts (no syntax injection), and a snippet
/// of any text around its terms is made of the text's own words.
pub fn fts_query(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (query, doc) = text.split_once('\u{1}').unwrap_or((&text, "a b c"));
    let fts = crate::search::fts_query(query);
    if !fts.is_empty() {
        let db = rusqlite::Connection::open_in_memory().expect("an in-memory database");
        db.execute_batch(
            "CREATE VIRTUAL TABLE t USING fts5(text, tokenize = 'porter unicode61 remove_diacritics 2');
             INSERT INTO t(text) VALUES ('the quick brown fox');",
        )
        .expect("an FTS5 table");
        let ran = db
            .prepare("SELECT count(*) FROM t WHERE t MATCH ?1")
            .and_then(|mut s| s.query_row([&fts], |r| r.get::<_, i64>(0)));
        assert!(
            ran.is_ok(),
            "FTS5 rejected {fts:?} built from {query:?}: {ran:?}"
        );
    }
    let terms = crate::search::query_terms(query);
    let snippet = crate::search::snippet(doc, &terms, 80);
    let words: std::collections::HashSet<&str> = doc.split_whitespace().collect();
    for w in snippet.trim_matches('…').split_whitespace() {
        assert!(
            doc.contains(w) || words.contains(w),
            "snippet word {w:?} not in the text"
        );
    }
}

/// Chunking: every chunk is exactly `body[char_start..char_end]`, in order, within budget
/// unless one word alone is over it.
pub fn chunking(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let doc = parse::parse_uncontained(Format::Markdown, text.as_bytes());
    let Ok(doc) = doc else { return };
    let blocks = clean::clean_blocks(doc.blocks);
    let body = chunk::render_body(&blocks);
    check_chunks(&body, "A title");
}

/// Tokens as whitespace-separated words (the real counter needs a model; the invariants do
/// not depend on how tokens are counted).
struct Words;
impl TokenCounter for Words {
    fn count_tokens(&self, text: &str) -> usize {
        text.split_whitespace().count()
    }
}

fn check_chunks(body: &chunk::Body, title: &str) {
    let config = ChunkConfig {
        max_tokens: 48,
        overlap_tokens: 8,
    };
    let chunks = chunk::chunk(body, title, &config, &Words);
    let chars: Vec<char> = body.text.chars().collect();
    let mut last_start = 0;
    for c in &chunks {
        assert!(c.char_start <= c.char_end && c.char_end <= chars.len());
        let slice: String = chars[c.char_start..c.char_end].iter().collect();
        assert_eq!(
            c.text, slice,
            "chunk text is not body[char_start..char_end]"
        );
        assert!(c.char_start >= last_start, "chunks out of order");
        last_start = c.char_start;
        assert!(!c.text.trim().is_empty(), "an empty chunk");
    }
}

/// The seed files of `target` under `dir` (`fuzz/seeds/<target>/`).
pub fn seeds(dir: &Path, target: &str) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir.join(target)) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| std::fs::read(p).ok())
        .collect()
}

/// A PDF file from raw object bodies (object 1 is the catalog), with its cross-reference
/// table computed, for seeds and tests. `broken_xref` writes wrong offsets on purpose;
/// `trailer_extra` is added to the trailer dictionary (an `/Encrypt`, say).
pub fn pdf_file<B: AsRef<[u8]>>(objects: &[B], broken_xref: bool, trailer_extra: &str) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend(body.as_ref());
        out.extend(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        let offset = if broken_xref { offset * 7 + 3 } else { offset };
        out.extend(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R {trailer_extra}>>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic mutations of a seed: bit flips, truncations, duplicated and deleted
    /// spans, the mutations libFuzzer starts from.
    fn mutations(seed: &[u8], n: usize) -> Vec<Vec<u8>> {
        let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ seed.len() as u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..n)
            .map(|_| {
                let mut m = seed.to_vec();
                if m.is_empty() {
                    return vec![(next() % 256) as u8; (next() % 64) as usize];
                }
                match next() % 4 {
                    0 => {
                        for _ in 0..1 + next() % 8 {
                            let at = (next() as usize) % m.len();
                            m[at] ^= 1 << (next() % 8);
                        }
                    }
                    1 => m.truncate((next() as usize) % m.len()),
                    2 => {
                        let at = (next() as usize) % m.len();
                        let len = ((next() as usize) % 64).min(m.len() - at);
                        let span = m[at..at + len].to_vec();
                        m.splice(at..at, span);
                    }
                    _ => {
                        let at = (next() as usize) % m.len();
                        let len = ((next() as usize) % 64).min(m.len() - at);
                        m.drain(at..at + len);
                    }
                }
                m
            })
            .collect()
    }

    #[test]
    fn every_fuzz_target_holds_on_its_seeds_and_their_mutations() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds");
        for (name, target) in TARGETS {
            let seeds = seeds(&dir, name);
            assert!(!seeds.is_empty(), "fuzz/seeds/{name} has no seeds");
            // Fewer mutations for the targets that go through files or zip archives.
            let per_seed = if matches!(*name, "export" | "gguf_header" | "parse_pdf") {
                20
            } else {
                100
            };
            for seed in &seeds {
                target(seed);
                for m in mutations(seed, per_seed) {
                    target(&m);
                }
            }
        }
    }
}
