//! The API's bearer token: made on first start, kept in `<data folder>/api-token`, readable by
//! the user alone, so that another user's process on the same machine cannot call the API.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The token file's name in the data folder.
pub const TOKEN_FILE: &str = "api-token";

/// Why the token could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The token file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The operating system gave no random bytes.
    #[error("no random bytes for the API token: {0}")]
    Random(String),
}

/// The token kept in `data_dir`, made (32 random bytes, hex) on first use. The file is
/// private to the user (mode 0600 on Unix), and made so again if its mode was loosened.
pub fn load_or_create(data_dir: &Path) -> Result<String, TokenError> {
    let path = data_dir.join(TOKEN_FILE);
    let io = |source| TokenError::Io {
        path: path.clone(),
        source,
    };
    if let Ok(text) = std::fs::read_to_string(&path) {
        let token = text.trim();
        if token.len() >= 32 {
            restrict(&path).map_err(io)?;
            return Ok(token.to_string());
        }
    }
    std::fs::create_dir_all(data_dir).map_err(io)?;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
    let token = format!(
        "twin-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    // Written beside and renamed into place: a crash never leaves half a token.
    let partial = data_dir.join(format!("{TOKEN_FILE}.partial"));
    {
        let mut file = private_file(&partial).map_err(io)?;
        file.write_all(token.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    std::fs::rename(&partial, &path).map_err(io)?;
    Ok(token)
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::create(path)
}

#[cfg(unix)]
fn restrict(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode != 0o600 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Whether `given` is `token`, compared in constant time.
pub fn matches(given: &str, token: &str) -> bool {
    use subtle::ConstantTimeEq;
    given.len() == token.len() && bool::from(given.as_bytes().ct_eq(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_made_once_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        assert!(first.starts_with("twin-") && first.len() == 69, "{first}");
        assert_eq!(load_or_create(dir.path()).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.path().join(TOKEN_FILE);
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            load_or_create(dir.path()).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "a loosened token file is made private again");
        }
        assert!(matches(&first, &first));
        assert!(!matches("twin-00", &first));
        let other_dir = tempfile::tempdir().unwrap();
        assert_ne!(load_or_create(other_dir.path()).unwrap(), first);
    }
}
