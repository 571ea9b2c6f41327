//! One view of an export, zipped or unpacked: its file names and their bytes.
//!
//! Every read is capped: a zip entry may claim any size and inflate to far more than it
//! claims, so entries are read through a limit, never trusted.

use super::ExportError;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The most bytes one file inside an export may hold. X archives' `tweets.js` for a very
/// active account runs to ~100 MB; text beyond this is not an export's.
pub const PART_CAP: u64 = 512 * 1024 * 1024;
/// Files in an unpacked export folder worth listing (X archives hold media by the thousand).
const FOLDER_ENTRY_CAP: usize = 200_000;

enum Inner {
    Zip(Box<zip::ZipArchive<std::fs::File>>),
    Folder(PathBuf),
}

/// An export's files, by `/`-separated path inside it.
pub struct Archive {
    inner: Inner,
    names: Vec<String>,
    /// What the user gave (for messages).
    origin: PathBuf,
}

impl Archive {
    /// The zip file at `path`.
    pub fn zip(path: &Path) -> Result<Archive, ExportError> {
        let file = std::fs::File::open(path).map_err(|e| ExportError::Archive(e.to_string()))?;
        let zip = zip::ZipArchive::new(file).map_err(|e| {
            ExportError::Archive(format!(
                "not a readable zip archive ({e}); download it again"
            ))
        })?;
        let names = zip
            .file_names()
            .filter(|n| !n.ends_with('/'))
            .map(str::to_string)
            .collect();
        Ok(Archive {
            inner: Inner::Zip(Box::new(zip)),
            names,
            origin: path.to_path_buf(),
        })
    }

    /// The unpacked export folder `dir`.
    pub fn folder(dir: &Path) -> Result<Archive, ExportError> {
        let mut names = Vec::new();
        for entry in walkdir::WalkDir::new(dir)
            .max_depth(6)
            .sort_by_file_name()
            .into_iter()
            .filter_map(Result::ok)
        {
            if !entry.file_type().is_file() {
                continue;
            }
            if let Ok(rel) = entry.path().strip_prefix(dir) {
                let parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                names.push(parts.join("/"));
            }
            if names.len() >= FOLDER_ENTRY_CAP {
                break;
            }
        }
        Ok(Archive {
            inner: Inner::Folder(dir.to_path_buf()),
            names,
            origin: dir.to_path_buf(),
        })
    }

    /// Every file's path inside the export.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// The file named `marker` at the export's root or under one top-level folder (zips are
    /// often wrapped in one), the shallowest if several.
    pub fn find(&self, marker: &str) -> Option<String> {
        self.names
            .iter()
            .filter(|n| {
                n.as_str() == marker
                    || (n.ends_with(marker) && n[..n.len() - marker.len()].ends_with('/'))
            })
            .min_by_key(|n| n.matches('/').count())
            .cloned()
    }

    /// The folder inside the export that `marker` (found by [`Archive::find`]) sits in, as a
    /// prefix ending in `/` (empty at the root).
    pub fn prefix_of(&self, marker: &str) -> Option<String> {
        self.find(marker)
            .map(|n| n[..n.len() - marker.len()].to_string())
    }

    /// The bytes of `name`, at most [`PART_CAP`] of them.
    pub fn read(&mut self, name: &str) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let read = match &mut self.inner {
            Inner::Zip(zip) => {
                let entry = zip.by_name(name).map_err(|e| e.to_string())?;
                entry
                    .take(PART_CAP + 1)
                    .read_to_end(&mut out)
                    .map_err(|e| read_error(&e, "damaged; download the export again"))?
            }
            Inner::Folder(dir) => {
                let file = std::fs::File::open(dir.join(name)).map_err(|e| e.to_string())?;
                file.take(PART_CAP + 1)
                    .read_to_end(&mut out)
                    .map_err(|e| read_error(&e, "cannot be read"))?
            }
        };
        if read as u64 > PART_CAP {
            return Err(format!(
                "over {} MiB once unpacked; not an export file",
                PART_CAP / 1048576
            ));
        }
        Ok(out)
    }

    /// `name` as UTF-8 text (a BOM dropped).
    pub fn read_text(&mut self, name: &str) -> Result<String, String> {
        let bytes = self.read(name)?;
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
        String::from_utf8(bytes.to_vec())
            .map_err(|e| format!("not valid UTF-8 at byte {}", e.utf8_error().valid_up_to()))
    }

    /// What the user gave, for messages.
    pub fn origin(&self) -> &Path {
        &self.origin
    }
}

/// Why a part could not be read. `read_to_end` reserves what the entry claims (up to the cap)
/// with `try_reserve`, so a bomb on a machine short of memory is an error here, never an abort.
fn read_error(e: &std::io::Error, otherwise: &str) -> String {
    if e.kind() == std::io::ErrorKind::OutOfMemory {
        format!(
            "claims more than this computer can hold in memory (up to {} MiB once unpacked: a decompression bomb, or an export too large to read here)",
            PART_CAP / 1048576
        )
    } else {
        format!("{otherwise} ({e})")
    }
}

/// A bare export file's bytes, at most [`PART_CAP`].
pub(super) fn read_capped(path: &Path) -> Result<Vec<u8>, ExportError> {
    let file = std::fs::File::open(path).map_err(|e| ExportError::Archive(e.to_string()))?;
    let mut out = Vec::new();
    file.take(PART_CAP + 1)
        .read_to_end(&mut out)
        .map_err(|e| ExportError::Archive(e.to_string()))?;
    if out.len() as u64 > PART_CAP {
        return Err(ExportError::Archive(format!(
            "over {} MiB; not an export file Twin reads",
            PART_CAP / 1048576
        )));
    }
    Ok(out)
}

/// The first `n` bytes of `path`.
pub(super) fn read_head(path: &Path, n: u64) -> Result<Vec<u8>, ExportError> {
    let file = std::fs::File::open(path).map_err(|e| ExportError::Archive(e.to_string()))?;
    let mut out = Vec::new();
    file.take(n)
        .read_to_end(&mut out)
        .map_err(|e| ExportError::Archive(e.to_string()))?;
    Ok(out)
}
