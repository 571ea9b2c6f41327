//! Key-value settings (the user's choices, the style card).

use super::*;

impl Store {
    /// A setting's value.
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Remove a setting.
    pub fn delete_setting(&self, key: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM settings WHERE key = ?1", [key])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Set a setting's value.
    pub fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO settings(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Every setting, by key.
    pub fn all_settings(&self) -> Result<Vec<(String, String)>> {
        self.rows("SELECT key, value FROM settings ORDER BY key", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
    }

    /// Write a consistent copy of the whole database to `path` (which must not exist), compacted:
    /// SQLite's `VACUUM INTO` reads one snapshot, so imports and drafts may go on meanwhile.
    pub fn snapshot_to(&self, path: &Path) -> Result<()> {
        let target = path.to_string_lossy().to_string();
        self.conn
            .execute("VACUUM INTO ?1", [target])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }
}
