//! Twin's local OpenAI-compatible API: a third shell over twin-core beside the CLI and the
//! desktop app, so that other tools on the machine (an editor, a notes app, a scheduler) can
//! write with the twin.
//!
//! - It listens on 127.0.0.1 only, on a port of the caller's choice or one the system picks.
//! - Every request carries the bearer token kept in `<data folder>/api-token` ([`token`]),
//!   private to the user; requests without it get 401.
//! - `GET /v1/models`, `POST /v1/chat/completions` (plain or streamed as server-sent events;
//!   `+library` after the model id, or `"grounded": true`, grounds the answer in the user's
//!   writing and adds its `citations`), `POST /v1/embeddings`.
//! - Errors come in OpenAI's JSON shape ([`openai::ApiError`]).
//! - Generation runs on the chat model's one worker thread, so concurrent requests are served
//!   in the order they arrive; a client that disconnects cancels its generation.

pub mod bench;
pub mod openai;
mod routes;
mod server;
pub mod token;

pub use server::{ServeError, Server};
