//! Which files the page may name.
//!
//! The web page is the least trusted part of the app: a bug in it, or script that got in,
//! must not be able to make Twin read, watch, register or overwrite an arbitrary file. So the
//! commands that take a path accept only paths the *user* chose through the shell itself:
//! picked in a native dialog that this process opened ([`crate::commands::pick_paths`]),
//! dropped onto the window (the window's drag-and-drop event, seen here before the page), named
//! on the command line that started Twin ("Open with"), or found by Twin's own model discovery.
//! Anything else is refused with a message that says why.
//!
//! Grants live for the session. Paths already in the library (watched folders, registered
//! models) are Twin's own records and need no grant.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use twin_core::TwinError;

/// The paths the user handed to Twin in this session, canonical.
#[derive(Default)]
pub struct PathGrants {
    /// Files and folders the user chose to be read (a folder covers what is inside it).
    read: Mutex<HashSet<PathBuf>>,
    /// Files the user chose in a save dialog: exactly these may be written.
    write: Mutex<HashSet<PathBuf>>,
}

/// Why a path is refused, in the words the UI shows.
fn refused(path: &str) -> TwinError {
    TwinError::about(
        twin_core::ErrorKind::BadInput,
        path,
        "not a file or folder you picked or dropped onto Twin; refused",
    )
}

impl PathGrants {
    /// Let the page name these paths (and what is inside them) for reading.
    pub fn grant_read<I, P>(&self, paths: I)
    where
        I: IntoIterator<Item = P>,
        P: AsRef<Path>,
    {
        let canonical: Vec<PathBuf> = paths
            .into_iter()
            .filter_map(|p| p.as_ref().canonicalize().ok())
            .collect();
        if let Ok(mut read) = self.read.lock() {
            read.extend(canonical);
        }
    }

    /// Let the page write this one file (the save dialog's answer; it may not exist yet).
    pub fn grant_write(&self, path: &Path) {
        if let (Some(p), Ok(mut write)) = (normalized_target(path), self.write.lock()) {
            write.insert(p);
        }
    }

    /// The path to read, if the user granted it or a folder above it.
    pub fn readable(&self, path: &str) -> Result<PathBuf, TwinError> {
        let canonical = Path::new(path).canonicalize().map_err(|_| refused(path))?;
        let read = self.read.lock().map_err(|_| refused(path))?;
        if canonical.ancestors().any(|a| read.contains(a)) {
            Ok(canonical)
        } else {
            Err(refused(path))
        }
    }

    /// The path to write, if the user chose exactly this file in a save dialog.
    pub fn writable(&self, path: &str) -> Result<PathBuf, TwinError> {
        let target = normalized_target(Path::new(path)).ok_or_else(|| refused(path))?;
        let write = self.write.lock().map_err(|_| refused(path))?;
        if write.contains(&target) {
            Ok(target)
        } else {
            Err(refused(path))
        }
    }
}

/// A file that may not exist yet: its folder made canonical, its name kept.
fn normalized_target(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Some(parent.canonicalize().ok()?.join(name))
}

/// Paths named on the command line that started the app ("Open with Twin", `twin-app FILE…`):
/// the ones that exist. Flags (anything starting with `-`) are not paths.
pub fn launch_paths() -> Vec<PathBuf> {
    std::env::args_os()
        .skip(1)
        .map(PathBuf::from)
        .filter(|p| !p.to_string_lossy().starts_with('-') && p.exists())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_granted_paths_and_what_is_inside_granted_folders_are_readable() {
        let dir = tempfile::tempdir().unwrap();
        let picked = dir.path().join("picked");
        std::fs::create_dir_all(picked.join("inner")).unwrap();
        std::fs::write(picked.join("inner/a.md"), "a").unwrap();
        std::fs::write(dir.path().join("other.md"), "b").unwrap();
        let grants = PathGrants::default();
        grants.grant_read([&picked]);
        let inside = picked.join("inner/a.md");
        assert!(grants.readable(inside.to_str().unwrap()).is_ok());
        let other = dir.path().join("other.md");
        let err = grants.readable(other.to_str().unwrap()).unwrap_err();
        assert!(
            err.message.contains("not a file or folder you picked"),
            "{err}"
        );
        assert_eq!(err.kind, twin_core::ErrorKind::BadInput);
        // `..` cannot climb out of a granted folder.
        let climb = picked.join("../other.md");
        assert!(grants.readable(climb.to_str().unwrap()).is_err());
        // A symlink inside a granted folder to a file outside it is refused.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&other, picked.join("link.md")).unwrap();
            let link = picked.join("link.md");
            assert!(grants.readable(link.to_str().unwrap()).is_err());
        }
    }

    #[test]
    fn only_the_file_chosen_in_the_save_dialog_is_writable() {
        let dir = tempfile::tempdir().unwrap();
        let chosen = dir.path().join("draft.md");
        let grants = PathGrants::default();
        grants.grant_write(&chosen);
        assert!(grants.writable(chosen.to_str().unwrap()).is_ok());
        let beside = dir.path().join("beside.md");
        assert!(grants.writable(beside.to_str().unwrap()).is_err());
        // Reading was never granted by a save dialog.
        assert!(grants.readable(dir.path().to_str().unwrap()).is_err());
    }
}
