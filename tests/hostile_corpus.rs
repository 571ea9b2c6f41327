//! Hostile input (issue 19): a generator of ≥ 200 malformed, oversized and adversarial files —
//! invalid UTF-8 at many offsets, UTF-16, 20 MiB lines, YAML alias bombs, HTML nested up to a
//! million deep, DOCX deflate bombs of 1 and 20 GiB, lying zip sizes, encrypted entries, XML
//! entity expansion, truncated and bit-flipped PDFs and DOCX, PDF Flate bombs, circular page
//! trees, broken xref tables, a FIFO, symlinks to /dev/zero and /, a chmod-000 folder, files
//! that grow or vanish while they are read, a non-UTF-8 name, and hostile platform exports —
//! imported beside good files by `twin import` under a 1 GiB address-space limit.
//!
//! Must hold: the import finishes (no crash, no hang), every file meant to be refused is
//! reported with its path and a reason, every good file is imported, and what was stored before
//! is unchanged. `TWIN_HOSTILE_OUT=DIR` also writes the corpus to DIR (fuzzing seeds, manual
//! tries); `TWIN_HOSTILE_EACH=1` imports every bad file alone and prints the worst time and
//! memory per file (slow: run by hand, figures in the notes).

mod common;

use common::{docx, open_to_all, pdf, twin_as_user};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What must happen to a hostile file.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Reported, with a reason containing this text.
    Refused(&'static str),
    /// Reported, with any reason.
    Reported,
    /// Imported (hostile-looking but readable: UTF-16 with a mark, a non-UTF-8 name).
    Imported,
    /// Either imported or reported; what matters is that the import goes on.
    Either,
}

struct Corpus {
    dir: PathBuf,
    files: Vec<(PathBuf, Expect)>,
}

impl Corpus {
    fn put(&mut self, name: &str, bytes: impl AsRef<[u8]>, expect: Expect) {
        let path = self.dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, bytes).unwrap();
        self.files.push((path, expect));
    }

    fn note(&mut self, path: PathBuf, expect: Expect) {
        self.files.push((path, expect));
    }
}

/// Prose of at least `len` ASCII bytes.
fn prose(len: usize) -> Vec<u8> {
    let sentence = b"The jointer hums while the oak rests on the bench and waits for a plane. ";
    sentence.iter().copied().cycle().take(len.max(80)).collect()
}

/// A deflate stream that inflates to `mib` MiB of `byte`, built from one independently
/// compressed MiB repeated (full flushes make each copy self-contained), so a 20 GiB bomb is
/// written in milliseconds. Returns the stream and its CRC-32 (of the inflated bytes).
fn deflate_bomb(prefix: &[u8], byte: u8, mib: u64, suffix: &[u8]) -> (Vec<u8>, u32, u64) {
    use flate2::{write::DeflateEncoder, Compression, FlushCompress};
    let block = vec![byte; 1 << 20];
    let one = |data: &[u8], flush: FlushCompress| {
        let mut c = flate2::Compress::new(Compression::best(), false);
        let mut out = Vec::with_capacity(data.len() / 500 + 1024);
        c.compress_vec(data, &mut out, flush).unwrap();
        out
    };
    let head = one(prefix, FlushCompress::Full);
    let body = one(&block, FlushCompress::Full);
    let mut tail = DeflateEncoder::new(Vec::new(), Compression::best());
    tail.write_all(suffix).unwrap();
    let tail = tail.finish().unwrap();
    let mut stream = head;
    for _ in 0..mib {
        stream.extend_from_slice(&body);
    }
    stream.extend_from_slice(&tail);
    // The CRC is computed only for sizes that are cheap to hash; a bomb's CRC may as well lie.
    let crc = if mib <= 64 {
        let mut h = crc32fast::Hasher::new();
        h.update(prefix);
        for _ in 0..mib {
            h.update(&block);
        }
        h.update(suffix);
        h.finalize()
    } else {
        0
    };
    let size = prefix.len() as u64 + (mib << 20) + suffix.len() as u64;
    (stream, crc, size)
}

/// One zip entry, written by hand so sizes, flags and CRCs can lie.
struct RawEntry {
    name: Vec<u8>,
    data: Vec<u8>,
    method: u16,
    crc: u32,
    declared_size: u32,
    flags: u16,
}

fn raw_zip(entries: &[RawEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let offset = out.len() as u32;
        let header = |sig: u32, central: bool| {
            let mut h = Vec::new();
            h.extend(sig.to_le_bytes());
            if central {
                h.extend(20u16.to_le_bytes()); // made by
            }
            h.extend(20u16.to_le_bytes()); // needed
            h.extend(e.flags.to_le_bytes());
            h.extend(e.method.to_le_bytes());
            h.extend(0u32.to_le_bytes()); // time, date
            h.extend(e.crc.to_le_bytes());
            h.extend((e.data.len() as u32).to_le_bytes());
            h.extend(e.declared_size.to_le_bytes());
            h.extend((e.name.len() as u16).to_le_bytes());
            h.extend(0u16.to_le_bytes()); // extra
            if central {
                h.extend([0u8; 6]); // comment length, disk, internal attributes
                h.extend(0u32.to_le_bytes()); // external attributes
                h.extend(offset.to_le_bytes());
            }
            h.extend(&e.name);
            h
        };
        out.extend(header(0x0403_4b50, false));
        out.extend(&e.data);
        central.extend(header(0x0201_4b50, true));
    }
    let cd_offset = out.len() as u32;
    out.extend(&central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

const DOC_HEAD: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>"#;
const DOC_TAIL: &[u8] = b"</w:t></w:r></w:p></w:body></w:document>";

/// A .docx whose document.xml inflates to `mib` MiB, its size declared as `declared` (None:
/// honest where it fits).
fn docx_bomb(mib: u64, declared: Option<u32>, flags: u16) -> Vec<u8> {
    let (data, crc, size) = deflate_bomb(DOC_HEAD, b'a', mib, DOC_TAIL);
    raw_zip(&[RawEntry {
        name: b"word/document.xml".to_vec(),
        data,
        method: 8,
        crc,
        declared_size: declared.unwrap_or(size.min(u32::MAX as u64) as u32),
        flags,
    }])
}

/// A stored (uncompressed) zip of `files`.
fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        for (name, bytes) in files {
            z.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(bytes).unwrap();
        }
        z.finish().unwrap();
    }
    buf.into_inner()
}

/// A PDF from raw object bodies (1-based), its xref computed unless `broken_xref`.
fn pdf_objects(objects: &[Vec<u8>], broken_xref: bool, trailer_extra: &str) -> Vec<u8> {
    twin_core::fuzzing::pdf_file(objects, broken_xref, trailer_extra)
}

fn page_objects(pages_body: &str, contents: Vec<u8>, length: Option<usize>) -> Vec<Vec<u8>> {
    let mut stream = format!(
        "<< /Length {} /Filter /FlateDecode >>\nstream\n",
        length.unwrap_or(contents.len())
    )
    .into_bytes();
    stream.extend(&contents);
    stream.extend(b"\nendstream");
    vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        pages_body.as_bytes().to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_vec(),
        stream,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
    ]
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A zlib stream inflating to `mib` MiB of spaces after a line of text.
fn zlib_bomb(mib: u64) -> Vec<u8> {
    let (deflate, _, _) = deflate_bomb(b"BT /F1 12 Tf 72 720 Td (Bomb) Tj ET\n", b' ', mib, b"");
    let mut out = vec![0x78, 0xDA];
    out.extend(deflate);
    out.extend(0u32.to_be_bytes()); // adler32, wrong on purpose
    out
}

/// XML whose `&l9;` expands to 10⁹ "lol"s (entity expansion), with `body` as the document.
fn billion_laughs(root: &str, body: &str) -> String {
    let mut x = format!("<?xml version=\"1.0\"?><!DOCTYPE {root} [<!ENTITY l0 \"lol\">");
    for i in 1..10 {
        x.push_str(&format!(
            "<!ENTITY l{i} \"{}\">",
            format!("&l{};", i - 1).repeat(10)
        ));
    }
    x.push_str("]>");
    x.push_str(body);
    x
}

/// Tiny deterministic generator for byte flips (no dependency, same corpus every run).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

fn flipped(good: &[u8], seed: u64) -> Vec<u8> {
    let mut rng = Lcg(seed);
    let mut bytes = good.to_vec();
    for _ in 0..8 {
        let at = (rng.next() as usize) % bytes.len();
        bytes[at] ^= 1 << (rng.next() % 8);
    }
    bytes
}

/// Write the hostile corpus into `dir`; the files and what must happen to each.
fn generate(dir: &Path) -> Corpus {
    let mut c = Corpus {
        dir: dir.to_path_buf(),
        files: Vec::new(),
    };

    // Invalid UTF-8 at 30 offsets, in three text formats (90 files).
    let offsets = [
        0usize, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597, 2584, 4181, 6765,
        8191, 8192, 8193, 10946, 17711, 28657, 46368, 75025, 121393, 196418,
    ];
    for &at in &offsets {
        for ext in ["md", "txt", "html"] {
            let mut bytes = prose(at + 64);
            // A lone continuation byte, a truncated 3-byte sequence, an overlong encoding.
            let bad: &[u8] = match ext {
                "md" => b"\x80",
                "txt" => b"\xE2\x82",
                _ => b"\xC0\xAF",
            };
            bytes.splice(at..at + bad.len(), bad.iter().copied());
            c.put(
                &format!("utf8/at-{at}.{ext}"),
                bytes,
                Expect::Refused("UTF-8"),
            );
        }
    }

    // UTF-16: with a byte-order mark it is read; without one, odd-length or with a lone
    // surrogate it is refused with the reason.
    let utf16 = |text: &str, little: bool, bom: bool| -> Vec<u8> {
        let mut out = match (bom, little) {
            (false, _) => vec![],
            (true, true) => vec![0xFF, 0xFE],
            (true, false) => vec![0xFE, 0xFF],
        };
        for u in text.encode_utf16() {
            out.extend(if little {
                u.to_le_bytes()
            } else {
                u.to_be_bytes()
            });
        }
        out
    };
    let note = "# Notepad\n\nSaved as Unicode from an old laptop: notes on hide glue and clamps.";
    c.put("utf16/le.md", utf16(note, true, true), Expect::Imported);
    c.put("utf16/be.txt", utf16(note, false, true), Expect::Imported);
    c.put(
        "utf16/le.html",
        utf16(
            "<html><body><p>Hide glue sets slowly in a cold shop.</p></body></html>",
            true,
            true,
        ),
        Expect::Imported,
    );
    c.put(
        "utf16/no-bom.md",
        utf16(note, true, false),
        Expect::Refused("NUL"),
    );
    let mut odd = utf16(note, true, true);
    odd.push(b'x');
    c.put("utf16/odd.txt", odd, Expect::Refused("odd number"));
    let mut lone = utf16("Before ", true, true);
    lone.extend([0x00, 0xD8]);
    lone.extend(utf16(" after.", true, false));
    c.put(
        "utf16/lone-surrogate.md",
        lone,
        Expect::Refused("surrogate"),
    );

    // Huge lines: over the size cap; a 19 MiB run without a space; a data URI beside text.
    let mut line = prose(20 * 1024 * 1024 + 1);
    line.retain(|b| *b != b'\n');
    c.put("lines/20mib-line.md", line, Expect::Refused("size limit"));
    c.put(
        "lines/19mib-run.md",
        vec![b'Q'; 19 * 1024 * 1024],
        Expect::Reported,
    );
    let mut uri =
        b"Planing end grain needs a sharp iron.\n\n![photo](data:image/png;base64,".to_vec();
    uri.extend(std::iter::repeat_n(b'A', 5 * 1024 * 1024));
    uri.extend(b")\n\nThen a light pass.\n");
    c.put("lines/data-uri.md", uri, Expect::Either);
    c.put(
        "lines/10k-empty-lines.txt",
        "\n".repeat(10_000) + "end",
        Expect::Either,
    );

    // YAML front matter bombs.
    let mut laughs = String::from(
        "---\na: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (i, prev) in ('b'..='j').zip('a'..='i') {
        laughs.push_str(&format!(
            "{i}: &{i} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
    }
    laughs.push_str("title: *j\n---\nThe body of a post with a bomb for a title.\n");
    c.put("yaml/billion-laughs.md", laughs, Expect::Either);
    c.put(
        "yaml/deep.md",
        format!("---\ntitle: {}\n---\nBody text.\n", "[".repeat(100_000)),
        Expect::Either,
    );
    c.put(
        "yaml/self-alias.md",
        "---\ntitle: &a [*a]\n---\nBody text.\n",
        Expect::Either,
    );
    c.put(
        "yaml/huge-key.md",
        format!("---\n{}: 1\n---\nBody text.\n", "k".repeat(1 << 20)),
        Expect::Either,
    );

    // HTML nested from a thousand to a million deep, and tags never closed.
    for depth in [1_000usize, 1_025, 2_000, 10_000, 100_000, 1_000_000] {
        let expect = if depth <= 1_024 {
            Expect::Either
        } else {
            Expect::Refused("nested")
        };
        c.put(
            &format!("html/div-{depth}.html"),
            format!("{}deep{}", "<div>".repeat(depth), "</div>".repeat(depth)),
            expect,
        );
    }
    c.put(
        "html/span-1m-unclosed.html",
        "<span>".repeat(1_000_000),
        Expect::Refused("nested"),
    );
    c.put(
        "html/table-100k.html",
        "<table><tr><td>".repeat(100_000),
        Expect::Refused("nested"),
    );
    c.put("html/b-100k.html", "<b>x".repeat(100_000), Expect::Reported);
    c.put("html/p-20k.html", "<p>para ".repeat(20_000), Expect::Either);
    c.put(
        "html/li-20k.html",
        "<li>item ".repeat(20_000),
        Expect::Either,
    );
    c.put(
        "html/attributes-100k.html",
        format!(
            "<p {}>Text.</p>",
            (0..100_000).map(|i| format!("a{i}=x ")).collect::<String>()
        ),
        Expect::Either,
    );
    c.put(
        "html/comment-unclosed.html",
        format!("<p>Before.</p><!--{}", "x".repeat(5 << 20)),
        Expect::Either,
    );

    // DOCX: deflate bombs of 1 and 20 GiB, a lying size, an encrypted entry, entity expansion,
    // a missing or garbage document, truncations and bit flips.
    c.put(
        "docx/bomb-1gib.docx",
        docx_bomb(1024, None, 0),
        Expect::Refused("inflates past"),
    );
    c.put(
        "docx/bomb-20gib.docx",
        docx_bomb(20 * 1024, None, 0),
        Expect::Reported,
    );
    c.put(
        "docx/lying-size.docx",
        docx_bomb(1024, Some(100), 0),
        Expect::Reported,
    );
    c.put(
        "docx/encrypted.docx",
        docx_bomb(1, None, 1),
        Expect::Reported,
    );
    let entity_bomb = billion_laughs(
        "w",
        "<w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body><w:p><w:r><w:t>&l9;</w:t></w:r></w:p></w:body></w:document>",
    );
    c.put(
        "docx/entity-bomb.docx",
        zip_of(&[("word/document.xml", entity_bomb.as_bytes())]),
        Expect::Either,
    );
    c.put(
        "docx/no-document.docx",
        zip_of(&[("word/other.xml", b"<x/>")]),
        Expect::Reported,
    );
    c.put(
        "docx/garbage-document.docx",
        zip_of(&[("word/document.xml", &[0xFFu8; 4096])]),
        Expect::Either,
    );
    c.put(
        "docx/zip-slip.docx",
        zip_of(&[
            ("../../../../tmp/twin-zip-slip", b"owned"),
            ("word/document.xml", DOC_HEAD),
        ]),
        Expect::Either,
    );
    c.put(
        "docx/deep-xml.docx",
        zip_of(&[("word/document.xml", "<w:p>".repeat(1_000_000).as_bytes())]),
        Expect::Either,
    );
    let good_docx = docx(
        "Sharpening",
        "A strop with green compound finishes the edge in a minute.",
    );
    for i in 1..=10 {
        let cut = good_docx.len() * i / 11;
        c.put(
            &format!("docx/truncated-{i}.docx"),
            &good_docx[..cut],
            Expect::Reported,
        );
    }
    for seed in 0..20 {
        c.put(
            &format!("docx/flipped-{seed}.docx"),
            flipped(&good_docx, seed),
            Expect::Either,
        );
    }

    // PDF: truncations, Flate bombs, a circular page tree, broken xref tables, lying lengths,
    // deep nesting, an encryption dictionary, bit flips.
    let text =
        zlib(b"BT /F1 12 Tf 72 720 Td (Cabinet scrapers leave a surface no sandpaper can.) Tj ET");
    let pages = "<< /Type /Pages /Kids [3 0 R] /Count 1 >>";
    let good_pdf = pdf_objects(&page_objects(pages, text.clone(), None), false, "");
    for i in 1..=10 {
        let cut = good_pdf.len() * i / 11;
        c.put(
            &format!("pdf/truncated-{i}.pdf"),
            &good_pdf[..cut],
            Expect::Either,
        );
    }
    c.put(
        "pdf/flate-bomb-1gib.pdf",
        pdf_objects(&page_objects(pages, zlib_bomb(1024), None), false, ""),
        Expect::Reported,
    );
    c.put(
        "pdf/flate-bomb-20gib.pdf",
        pdf_objects(&page_objects(pages, zlib_bomb(20 * 1024), None), false, ""),
        Expect::Reported,
    );
    c.put(
        "pdf/circular-pages.pdf",
        pdf_objects(
            &page_objects(
                "<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 /Parent 2 0 R >>",
                text.clone(),
                None,
            ),
            false,
            "",
        ),
        Expect::Either,
    );
    // A page that is its own parent and inherits its media box: pdf-extract's lookup of
    // inherited attributes would recurse forever (found by fuzzing).
    let mut self_parent = page_objects(pages, text.clone(), None);
    self_parent[2] = b"<< /Type /Page /Parent 3 0 R /Contents 4 0 R >>".to_vec();
    c.put(
        "pdf/page-is-its-own-parent.pdf",
        pdf_objects(&self_parent, false, ""),
        Expect::Reported,
    );
    c.put(
        "pdf/broken-xref.pdf",
        pdf_objects(&page_objects(pages, text.clone(), None), true, ""),
        Expect::Either,
    );
    let mut past_end = good_pdf.clone();
    let at = past_end.len() - 20;
    past_end.truncate(at);
    past_end.extend(b"\nstartxref\n999999999\n%%EOF\n");
    c.put("pdf/startxref-past-end.pdf", past_end, Expect::Either);
    c.put(
        "pdf/lying-length.pdf",
        pdf_objects(
            &page_objects(pages, text.clone(), Some(999_999_999)),
            false,
            "",
        ),
        Expect::Either,
    );
    let mut deep = page_objects(pages, text.clone(), None);
    deep[4] = format!(
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Widths {}{} >>",
        "[".repeat(100_000),
        "]".repeat(100_000)
    )
    .into_bytes();
    c.put(
        "pdf/deep-arrays.pdf",
        pdf_objects(&deep, false, ""),
        Expect::Either,
    );
    c.put(
        "pdf/encrypted.pdf",
        pdf_objects(
            &page_objects(pages, text.clone(), None),
            false,
            "/Encrypt << /Filter /Standard /V 1 /R 2 /O (x) /U (y) /P -4 >> ",
        ),
        Expect::Either,
    );
    let mut self_ref = page_objects(pages, text.clone(), None);
    self_ref[3] = b"4 0 R".to_vec();
    c.put(
        "pdf/self-reference.pdf",
        pdf_objects(&self_ref, false, ""),
        Expect::Either,
    );
    c.put("pdf/header-only.pdf", b"%PDF-1.7\n", Expect::Reported);
    for seed in 0..20 {
        c.put(
            &format!("pdf/flipped-{seed}.pdf"),
            flipped(&good_pdf, 100 + seed),
            Expect::Either,
        );
    }

    // Hostile platform exports.
    let (shares, _, _) = deflate_bomb(b"Date,ShareLink,ShareCommentary\n", b'a', 1024, b"\n");
    c.put(
        "exports/Basic_LinkedInDataExport_bomb.zip",
        raw_zip(&[RawEntry {
            name: b"Shares.csv".to_vec(),
            data: shares,
            method: 8,
            crc: 0,
            declared_size: u32::MAX,
            flags: 0,
        }]),
        Expect::Reported,
    );
    let deep_tweets = format!(
        "window.YTD.tweets.part0 = {}{}",
        "[".repeat(1_000_000),
        "]".repeat(1_000_000)
    );
    c.put(
        "exports/twitter-deep.zip",
        zip_of(&[
            ("data/tweets.js", deep_tweets.as_bytes()),
            ("data/account.js", b"window.YTD.account.part0 = []"),
        ]),
        Expect::Reported,
    );
    let wxr = billion_laughs(
        "rss",
        "<rss xmlns:wp=\"http://wordpress.org/export/1.2/\" xmlns:content=\"http://purl.org/rss/1.0/modules/content/\"><channel><wp:wxr_version>1.2</wp:wxr_version><item><title>&l9;</title><wp:post_type>post</wp:post_type><wp:status>publish</wp:status><content:encoded>&l9;</content:encoded></item></channel></rss>",
    );
    c.put("exports/wordpress-entities.xml", wxr, Expect::Either);
    c.put(
        "exports/ghost-deep.json",
        format!(
            "{{\"db\":[{{\"meta\":{{}},\"data\":{{\"posts\":{}{}}}}}]}}",
            "[".repeat(1_000_000),
            "]".repeat(1_000_000)
        ),
        Expect::Either,
    );
    c.put(
        "exports/substack-slip.zip",
        zip_of(&[
            (
                "posts.csv",
                b"post_id,post_date,is_published,email_sent_at,inbox_sent_at,type,audience,title,subtitle,podcast_url\n../../../../etc/passwd,2024-01-01T00:00:00.000Z,true,,,newsletter,everyone,Slip,,\n",
            ),
            ("posts/../../../../etc/passwd.html", b"<p>not here</p>"),
        ]),
        Expect::Either,
    );
    let linkedin = zip_of(&[(
        "Shares.csv",
        b"Date,ShareLink,ShareCommentary,SharedUrl,MediaUrl,Visibility\n2024-03-05 09:15:00,https://www.linkedin.com/feed/update/urn%3Ali%3Ashare%3A9,\"A post.\",,,PUBLIC\n",
    )]);
    for i in 1..=5 {
        c.put(
            &format!("exports/Basic_LinkedInDataExport_cut{i}.zip"),
            &linkedin[..linkedin.len() * i / 6],
            Expect::Reported,
        );
    }

    // The file system: a FIFO, links to a device, to / and to nothing, a folder no one may
    // read, a name that is not UTF-8, files that vanish or grow while the import reads.
    let fifo = dir.join("fs/pipe.md");
    std::fs::create_dir_all(fifo.parent().unwrap()).unwrap();
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    c.note(fifo, Expect::Refused("not a regular file"));
    let zero = dir.join("fs/zero.md");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    c.note(zero, Expect::Refused("not a regular file"));
    let root = dir.join("fs/root");
    std::os::unix::fs::symlink("/", &root).unwrap();
    c.note(root, Expect::Reported);
    let dangling = dir.join("fs/dangling.md");
    std::os::unix::fs::symlink(dir.join("fs/nothing-here.md"), &dangling).unwrap();
    c.note(dangling, Expect::Reported);
    {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"fs/caf\xe9-latin1-name.md");
        let path = dir.join(name);
        std::fs::write(&path, "Notes on a cafe table built from walnut offcuts.").unwrap();
        c.note(path, Expect::Imported);
    }
    for i in 0..20 {
        c.put(
            &format!("fs/vanishing-{i}.md"),
            format!("Short-lived note {i} about winding sticks."),
            Expect::Either,
        );
    }
    c.put(
        "fs/growing.md",
        "A log that keeps growing while Twin reads it.\n",
        Expect::Either,
    );
    c.put(
        "fs/locked/inside.md",
        "Nobody may read this folder.",
        Expect::Either,
    );
    c.note(dir.join("fs/locked"), Expect::Either);
    c
}

/// While the import runs: delete the vanishing files one by one and append to the growing one.
fn disturb(dir: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            if i < 20 {
                let _ = std::fs::remove_file(dir.join(format!("fs/vanishing-{i}.md")));
                i += 1;
            }
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .append(true)
                .open(dir.join("fs/growing.md"))
            {
                let _ = f.write_all(&prose(1024));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}

/// Search results for `phrase` as (path, text) pairs: what "unchanged" is measured by.
fn stored(data: &Path, phrase: &str) -> Vec<(String, String)> {
    let out =
        common::run_ok(common::twin(data).args(["search", phrase, "--mode", "bm25", "--json"]));
    common::json(&out)
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap_or_default().to_string(),
                r["text"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

const ADDRESS_SPACE: u64 = 1 << 30;

#[test]
fn a_hostile_corpus_cannot_crash_hang_or_lose_anything() {
    let data = common::library_with_model();
    let src = tempfile::tempdir().unwrap();
    let dir = src.path();

    // Good files first, stored before the corpus arrives.
    let good: [(&str, Vec<u8>, &str); 5] = [
        (
            "good/lathe.md",
            b"# Lathe\n\nThe lathe hums in the corner of the workshop all winter.".to_vec(),
            "lathe hums corner workshop",
        ),
        (
            "good/planes.txt",
            b"Plain text about hand planes and their irons.\n\nSecond paragraph.".to_vec(),
            "hand planes irons",
        ),
        (
            "good/finish.html",
            b"<html><body><main><h1>Finishes</h1><p>Shellac dries fast in summer.</p></main></body></html>".to_vec(),
            "shellac dries summer",
        ),
        (
            "good/joinery.docx",
            docx("Joinery", "Dovetails lock the drawer front to its sides."),
            "dovetails drawer front",
        ),
        (
            "good/oak.pdf",
            pdf("Quarter-sawn oak resists cupping."),
            "quarter sawn oak cupping",
        ),
    ];
    for (name, bytes, _) in &good {
        std::fs::create_dir_all(dir.join(name).parent().unwrap()).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    open_to_all(data.path());
    open_to_all(dir);
    let first = common::json(&common::run_ok(
        twin_as_user(data.path())
            .arg("import")
            .arg(dir)
            .arg("--json"),
    ));
    assert_eq!(first["added"], 5, "{first:#}");
    let before: Vec<_> = good
        .iter()
        .map(|(_, _, q)| stored(data.path(), q))
        .collect();
    for (found, (name, _, _)) in before.iter().zip(&good) {
        assert!(
            found.iter().any(|(p, _)| p.ends_with(name)),
            "{name} stored: {found:?}"
        );
    }

    let generated = Instant::now();
    let corpus = generate(&dir.join("hostile"));
    eprintln!(
        "{} hostile inputs written in {:.1} s",
        corpus.files.len(),
        generated.elapsed().as_secs_f64()
    );
    assert!(corpus.files.len() >= 200, "{}", corpus.files.len());
    std::fs::write(
        dir.join("good/new.md"),
        "# New\n\nA new note about sharpening chisels on a coarse stone.",
    )
    .unwrap();
    if let Some(out) = std::env::var_os("TWIN_HOSTILE_OUT") {
        let _ = generate(Path::new(&out));
    }
    open_to_all(dir);
    std::fs::set_permissions(
        dir.join("hostile/fs/locked"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();

    // The import, as an unprivileged user (so chmod 000 means something) under a 1 GiB
    // address-space limit, while files vanish and grow.
    let stop = Arc::new(AtomicBool::new(false));
    let disturber = disturb(dir.join("hostile"), Arc::clone(&stop));
    let import = twin_as_user(data.path());
    let program = import.get_program().to_owned();
    let args: Vec<_> = import.get_args().map(|a| a.to_owned()).collect();
    let mut limited = Command::new("prlimit");
    limited
        .arg(format!("--as={ADDRESS_SPACE}"))
        .arg("--")
        .arg(program)
        .args(args)
        .args(["import", "--json"])
        .arg(dir)
        .env("TWIN_DATA_DIR", data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let out = limited.output().unwrap();
    let took = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    disturber.join().unwrap();
    std::fs::set_permissions(
        dir.join("hostile/fs/locked"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "a partial import exits 3, not a crash ({:?}): {stderr}",
        out.status
    );
    let report = common::json(&out);
    let issues = common::import_issues(&report);
    eprintln!(
        "import of {} hostile inputs beside good files: {:.1} s, {} reported",
        corpus.files.len(),
        took.as_secs_f64(),
        issues.len()
    );
    assert!(
        took < Duration::from_secs(240),
        "the corpus took {took:?} (each bad file must be refused quickly)"
    );

    // Every file meant to be refused is reported with its path and a reason.
    let mut imported_expected = Vec::new();
    for (path, expect) in &corpus.files {
        let shown = path.to_string_lossy();
        let reason = issues
            .iter()
            .find(|(p, _)| *p == shown || Path::new(p) == path)
            .map(|(_, r)| r.as_str());
        match (expect, reason) {
            (Expect::Refused(needle), Some(r)) => assert!(
                r.contains(needle),
                "{shown}: {r:?} should mention {needle:?}"
            ),
            (Expect::Refused(_) | Expect::Reported, None) => {
                panic!("{shown} was not reported; issues: {issues:#?}")
            }
            (Expect::Reported | Expect::Either, Some(r)) => {
                assert!(!r.trim().is_empty(), "{shown}: an empty reason")
            }
            (Expect::Imported, Some(r)) => panic!("{shown} should be imported, not {r:?}"),
            (Expect::Imported, None) => imported_expected.push(path.clone()),
            (Expect::Either, None) => {}
        }
    }
    for (_, reason) in &issues {
        assert!(!reason.trim().is_empty());
    }
    assert!(
        !Path::new("/tmp/twin-zip-slip").exists(),
        "nothing is ever unpacked to disk"
    );

    // The good files: what was stored is unchanged, the new one is imported, and the hostile
    // files Twin can read (UTF-16 with a mark, a Latin-1 name) are searchable.
    let after: Vec<_> = good
        .iter()
        .map(|(_, _, q)| stored(data.path(), q))
        .collect();
    for ((b, a), (name, _, _)) in before.iter().zip(&after).zip(&good) {
        let keep = |v: &Vec<(String, String)>| -> Vec<(String, String)> {
            v.iter()
                .filter(|(p, _)| p.ends_with(name))
                .cloned()
                .collect()
        };
        assert_eq!(keep(b), keep(a), "{name} changed");
    }
    assert!(
        stored(data.path(), "sharpening chisels coarse stone")
            .iter()
            .any(|(p, _)| p.ends_with("good/new.md")),
        "the new good file is imported beside the corpus"
    );
    for (query, file) in [
        ("hide glue clamps", "utf16/le.md"),
        ("hide glue cold shop", "utf16/le.html"),
        ("walnut offcuts", "latin1-name.md"),
    ] {
        assert!(
            stored(data.path(), query)
                .iter()
                .any(|(p, _)| p.ends_with(file)),
            "{file} is imported"
        );
    }
    assert_eq!(imported_expected.len(), 4);

    // The library is sound.
    let status = common::json(&common::run_ok(
        common::twin(data.path()).args(["status", "--json"]),
    ));
    assert_eq!(
        status["library"]["chunks"], status["library"]["vectors"],
        "every stored chunk has one vector: {status:#}"
    );

    if std::env::var_os("TWIN_HOSTILE_EACH").is_some() {
        each_alone(&corpus);
    }
}

/// Import every hostile file alone under the same limits; print the slowest and the largest.
fn each_alone(corpus: &Corpus) {
    let mut rows = Vec::new();
    for (path, _) in &corpus.files {
        if !path.exists() && !path.is_symlink() {
            continue;
        }
        let data = common::library_with_model();
        let out = Command::new("/usr/bin/time")
            .args(["-f", "%e %M"])
            .arg("prlimit")
            .arg(format!("--as={ADDRESS_SPACE}"))
            .arg("--")
            .arg(common::twin_bin())
            .args(["import", "--json"])
            .arg(path)
            .env("TWIN_DATA_DIR", data.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or_default().to_string();
        let mut it = last.split_whitespace();
        let secs: f64 = it.next().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN);
        let kib: f64 = it.next().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN);
        rows.push((secs, kib / 1024.0, path.clone(), out.status.code()));
    }
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    eprintln!("slowest (s, MiB peak RSS of twin, exit, file):");
    for (s, m, p, code) in rows.iter().take(10) {
        eprintln!("{s:6.2} {m:7.0} {code:?} {}", p.display());
    }
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    eprintln!("largest:");
    for (s, m, p, code) in rows.iter().take(5) {
        eprintln!("{s:6.2} {m:7.0} {code:?} {}", p.display());
    }
}
