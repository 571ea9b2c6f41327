//! Evaluated prompts kept on disk, so a fresh process does not evaluate again what an earlier
//! one already did.
//!
//! A grounded draft's prompt starts with what is the same for every draft in a format (the
//! twin's instructions, the style card, the user's exemplar posts) and ends with what is not
//! (the sources for this topic, the request). On two CPU cores the model reads ~450 prompt
//! tokens a second, so that stable head costs a second or more of every cold draft. After a
//! request that asks for it (`GenerateRequest::cache_prompt`) and evaluated most of its prompt,
//! the worker saves the KV cells of its sequence with llama.cpp's state API, with the tokens
//! they hold; a later request in a fresh context loads the file that shares the longest token
//! prefix with its prompt and evaluates only the rest.
//!
//! Nothing needs invalidating: a file is used only for the tokens it shares exactly with the
//! new prompt, so a changed style card or exemplar simply shares fewer. Files are keyed by the
//! model and adapter files (path, size, modification time) and the adapter's strength, since
//! the cached keys and values depend on all of them; a file llama.cpp cannot read (another
//! version, a torn write) is deleted and the prompt evaluated as usual.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::token::LlamaToken;
use std::path::{Path, PathBuf};

/// Files kept in a cache folder at most; the least recently used go first.
const MAX_FILES: usize = 8;

/// A cached prefix is loaded only when it saves at least this many tokens over what the
/// context already holds.
pub(super) const MIN_GAIN: usize = 64;

/// Prompts shorter than this are not kept: they take a fraction of a second to evaluate.
pub(super) const MIN_SAVE: usize = 256;

/// One model's (and adapter's) prompt files in a folder.
pub(super) struct PromptCache {
    dir: PathBuf,
    key: String,
}

fn file_identity(hasher: &mut blake3::Hasher, path: &Path) {
    hasher.update(path.to_string_lossy().as_bytes());
    if let Ok(meta) = std::fs::metadata(path) {
        hasher.update(&meta.len().to_le_bytes());
        if let Ok(modified) = meta.modified() {
            let since = modified
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            hasher.update(&since.as_nanos().to_le_bytes());
        }
    }
}

impl PromptCache {
    /// The cache in `dir` for `model` with `adapter` (created on first save).
    pub(super) fn new(dir: &Path, model: &Path, adapter: Option<&Path>) -> Self {
        let mut hasher = blake3::Hasher::new();
        // The state layout is llama.cpp's; a new pin may read old files differently.
        hasher.update(b"twin prompt cache 1; llama-cpp-sys-2 0.1.161");
        file_identity(&mut hasher, model);
        if let Some(a) = adapter {
            file_identity(&mut hasher, a);
        }
        Self {
            dir: dir.to_path_buf(),
            key: hasher.finalize().to_hex()[..16].to_string(),
        }
    }

    fn prefix(&self, scale: f32) -> String {
        format!("{}-{:08x}-", self.key, scale.to_bits())
    }

    /// This model's files at `scale`: each state file with the tokens it holds.
    fn entries(&self, scale: f32) -> Vec<(PathBuf, Vec<LlamaToken>)> {
        let prefix = self.prefix(scale);
        let Ok(read) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        read.filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|e| e == "tokens")
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
            })
            .filter_map(|p| {
                let bytes = std::fs::read(&p).ok()?;
                let tokens = bytes
                    .chunks_exact(4)
                    .map(|b| LlamaToken(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                    .collect();
                Some((p.with_extension("kv"), tokens))
            })
            .collect()
    }

    /// The file sharing the longest prefix with `prompt` at `scale`, and how many tokens.
    pub(super) fn best(&self, prompt: &[LlamaToken], scale: f32) -> Option<(PathBuf, usize)> {
        self.entries(scale)
            .into_iter()
            .map(|(path, tokens)| {
                let shared = tokens
                    .iter()
                    .zip(prompt)
                    .take_while(|(a, b)| a == b)
                    .count();
                (path, shared)
            })
            .max_by_key(|(_, shared)| *shared)
    }

    /// Load `file` into sequence 0 of `ctx` (emptied first); the tokens it now holds. On
    /// failure the files are removed and the sequence left empty.
    pub(super) fn load(&self, ctx: &mut LlamaContext<'_>, file: &Path) -> Option<Vec<LlamaToken>> {
        ctx.clear_kv_cache();
        let max = ctx.n_ctx() as usize;
        match ctx.state_seq_load_file(file, 0, max) {
            Ok((tokens, _)) => {
                // Most recently used: kept longest.
                let _ = std::fs::File::options()
                    .write(true)
                    .open(file)
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                Some(tokens)
            }
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "unreadable prompt cache file; removed");
                ctx.clear_kv_cache();
                let _ = std::fs::remove_file(file);
                let _ = std::fs::remove_file(file.with_extension("tokens"));
                None
            }
        }
    }

    /// Save sequence 0 of `ctx`, which holds `tokens`, at `scale`; then drop the oldest files
    /// beyond [`MAX_FILES`]. Failures only cost the next cold start its head start.
    pub(super) fn save(&self, ctx: &LlamaContext<'_>, tokens: &[LlamaToken], scale: f32) {
        if let Err(e) = self.try_save(ctx, tokens, scale) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not save the prompt cache");
        }
    }

    fn try_save(
        &self,
        ctx: &LlamaContext<'_>,
        tokens: &[LlamaToken],
        scale: f32,
    ) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
        let mut hasher = blake3::Hasher::new();
        for t in tokens {
            hasher.update(&t.0.to_le_bytes());
        }
        let name = format!(
            "{}{}",
            self.prefix(scale),
            &hasher.finalize().to_hex()[..16]
        );
        let kv = self.dir.join(format!("{name}.kv"));
        let partial = self.dir.join(format!("{name}.kv.part"));
        ctx.state_seq_save_file(&partial, 0, tokens)
            .map_err(|e| e.to_string())?;
        // The token list is what marks a file usable, so it is written last, after the state
        // is complete under its final name.
        std::fs::rename(&partial, &kv).map_err(|e| e.to_string())?;
        let bytes: Vec<u8> = tokens.iter().flat_map(|t| t.0.to_le_bytes()).collect();
        std::fs::write(kv.with_extension("tokens"), bytes).map_err(|e| e.to_string())?;
        self.prune();
        Ok(())
    }

    fn prune(&self) {
        let Ok(read) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = read
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "kv"))
            .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
            .collect();
        files.sort_by_key(|f| std::cmp::Reverse(f.0));
        for (_, old) in files.into_iter().skip(MAX_FILES) {
            let _ = std::fs::remove_file(old.with_extension("tokens"));
            let _ = std::fs::remove_file(&old);
        }
    }
}
