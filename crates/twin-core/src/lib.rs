//! Twin's engine: everything the desktop app and the command line share.
//!
//! The feature pipeline lives in [`library`] (sources → parse → clean → chunk → embed → store),
//! the single SQLite store in [`store`], llama.cpp in [`engine`], hybrid retrieval in [`search`],
//! the drafting chain in [`draft`], voice training in [`train`], the model registry in [`models`].
//! Both shells drive it through one service, [`Twin`] ([`service`]), and receive one error shape,
//! [`TwinError`] ([`error`]).
//! This crate knows nothing about Tauri or terminals: progress and cancellation go through
//! [`progress`], and errors are typed per module.

#![warn(missing_docs)]

pub mod autotrain;
pub mod bench;
pub mod bundle;
pub mod draft;
pub mod engine;
pub mod error;
pub mod eval;
pub mod first_run;
#[doc(hidden)]
pub mod fuzzing;
pub mod gguf;
pub mod library;
pub mod models;
pub mod progress;
pub mod prompt;
pub mod search;
pub mod service;
pub mod store;
pub mod train;

pub use error::{ErrorKind, TwinError};
pub use library::{ImportOptions, ImportReport, Library, LibraryError};
pub use progress::{CancelToken, Progress, ProgressEvent, Stage};
pub use search::{SearchMode, SearchQuery, SearchResult};
pub use service::{Twin, TwinOptions};
