//! The one error shape the shells receive: `{kind, message, path?}`.
//!
//! Inside twin-core every module keeps its own `thiserror` enum, because each names what it
//! knows (a model file, a dataset, a database). At the boundary the shells need less and need
//! it as data: *what kind* of outcome this is (the app shows a cancelled run differently from a
//! damaged file, and must not guess it from the message's words), the message to show, and the
//! file it concerns when there is one. Every module error implements [`Classify`], and
//! [`TwinError`] is built from any of them; the service ([`crate::service`]) returns nothing
//! else.
//!
//! Cancellation is one outcome: whatever module stopped, and however deep in the chain its
//! `Cancelled` variant sits, the shells see [`ErrorKind::Cancelled`].

use serde::Serialize;
use std::path::{Path, PathBuf};

/// What kind of outcome an error is, for a shell to decide what to show (and the CLI which exit
/// code to return).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[derive(ts_rs::TS)]
#[ts(export)]
pub enum ErrorKind {
    /// The user cancelled; finished work is kept and a re-run resumes.
    Cancelled,
    /// Something must be set up first: a model, some writing, a dataset.
    NeedsSetup,
    /// A named thing (file, model, adapter, run, trace) does not exist.
    NotFound,
    /// The input is unusable: a damaged or unsupported file, a mismatched model, a bad value.
    BadInput,
    /// Reading or writing a file failed.
    Io,
    /// Another run holds what this one needs (a training cycle on the same library); try later.
    Busy,
    /// Anything else: the database, llama.cpp, a computation.
    Failed,
}

/// How a module's error presents itself at the boundary.
pub trait Classify: std::fmt::Display {
    /// The kind of outcome.
    fn kind(&self) -> ErrorKind;

    /// The file or folder the error concerns, when it names one.
    fn path(&self) -> Option<&Path> {
        None
    }
}

/// An error as the shells receive it: serialisable, with its kind as data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
#[derive(ts_rs::TS)]
#[ts(export)]
pub struct TwinError {
    /// What kind of outcome this is.
    pub kind: ErrorKind,
    /// The message to show, naming what it concerns.
    pub message: String,
    /// The file or folder concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

impl TwinError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            path: None,
        }
    }

    /// An error of `kind` about the file or folder `path`: the message names it first
    /// ("<path>: <what>").
    pub fn about(kind: ErrorKind, path: impl Into<PathBuf>, what: impl std::fmt::Display) -> Self {
        let path = path.into();
        Self {
            kind,
            message: format!("{}: {what}", path.display()),
            path: Some(path),
        }
    }

    /// The cancelled outcome.
    pub fn cancelled() -> Self {
        Self::new(ErrorKind::Cancelled, "cancelled")
    }

    /// Whether the user cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.kind == ErrorKind::Cancelled
    }

    /// A failure of Twin itself (a poisoned lock, a worker that died).
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Failed, message)
    }

    /// Bad input from the user (an unknown format, a value out of range).
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadInput, message)
    }
}

impl<E: Classify> From<E> for TwinError {
    fn from(e: E) -> Self {
        Self {
            kind: e.kind(),
            message: e.to_string(),
            path: e.path().map(Path::to_path_buf),
        }
    }
}

/// Implements [`Classify`] for an error enum: `kind:` maps variants to kinds (a wrapped error
/// delegates to its own classification), `path:` names the variants that carry a file.
///
/// ```ignore
/// classify!(DraftError {
///     kind: Self::Cancelled => Cancelled, Self::EmptyLibrary => NeedsSetup;
///     inner: Library, Search, Engine, Store, Model, Prompt;
/// });
/// ```
///
/// Variants not named are [`ErrorKind::Failed`] without a path.
macro_rules! classify {
    ($ty:ty {
        $(kind: $($pat:pat => $kind:ident),* ;)?
        $(inner: $($inner:ident),* ;)?
        $(path: $($ppat:pat => $path:expr),* ;)?
    }) => {
        impl $crate::error::Classify for $ty {
            #[allow(unreachable_patterns, unused_variables)]
            fn kind(&self) -> $crate::error::ErrorKind {
                match self {
                    $($($pat => $crate::error::ErrorKind::$kind,)*)?
                    $($(Self::$inner(e) => $crate::error::Classify::kind(e),)*)?
                    _ => $crate::error::ErrorKind::Failed,
                }
            }

            #[allow(unreachable_patterns, unused_variables)]
            fn path(&self) -> Option<&std::path::Path> {
                match self {
                    $($($ppat => Some($path),)*)?
                    $($(Self::$inner(e) => $crate::error::Classify::path(e),)*)?
                    _ => None,
                }
            }
        }
    };
}
pub(crate) use classify;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Inner {
        #[error("cancelled")]
        Cancelled,
        #[error("{0}: gone")]
        Gone(PathBuf),
    }
    classify!(Inner {
        kind: Self::Cancelled => Cancelled, Self::Gone(_) => NotFound;
        path: Self::Gone(p) => p.as_path();
    });

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error(transparent)]
        Inner(#[from] Inner),
        #[error("boom")]
        Boom,
    }
    classify!(Outer {
        inner: Inner;
    });

    #[test]
    fn a_cancelled_step_deep_in_the_chain_is_one_outcome_at_the_boundary() {
        let e = TwinError::from(Outer::Inner(Inner::Cancelled));
        assert!(e.is_cancelled());
        let gone = TwinError::from(Outer::Inner(Inner::Gone("/x/y.md".into())));
        assert_eq!(gone.kind, ErrorKind::NotFound);
        assert_eq!(gone.path.as_deref(), Some(Path::new("/x/y.md")));
        assert_eq!(
            serde_json::to_value(&gone).unwrap(),
            serde_json::json!({"kind": "not_found", "message": "/x/y.md: gone", "path": "/x/y.md"})
        );
        let boom = TwinError::from(Outer::Boom);
        assert_eq!(boom.kind, ErrorKind::Failed);
        assert_eq!(
            serde_json::to_value(&boom).unwrap()["path"],
            serde_json::Value::Null
        );
    }
}
