//! The handle to a model's worker thread (the thread that owns its llama.cpp context): a job
//! channel, and a join on drop.
//!
//! The join is why this exists: dropping a model closes the channel, and the worker then frees
//! its context and its share of the weights. Without waiting for it, a process that finishes
//! right after (every CLI command) can reach exit while the worker is still freeing GPU buffers,
//! and CUDA aborts ("CUDA error") once its runtime has been torn down under them.

use super::EngineError;
use std::sync::{mpsc, Mutex};
use std::thread::JoinHandle;

/// Sends jobs of type `J` to a worker thread; joins it when dropped.
pub(crate) struct Worker<J> {
    jobs: Mutex<Option<mpsc::Sender<J>>>,
    thread: Option<JoinHandle<()>>,
}

impl<J> Worker<J> {
    /// Start `body` on a thread named `name`; it receives the jobs and reports readiness (or
    /// the error that stopped it from starting) through the function's second argument.
    pub(crate) fn spawn(
        name: &str,
        body: impl FnOnce(mpsc::Receiver<J>, mpsc::Sender<Result<(), EngineError>>) + Send + 'static,
    ) -> Result<Self, EngineError>
    where
        J: Send + 'static,
    {
        let (jobs, inbox) = mpsc::channel::<J>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || body(inbox, ready_tx))
            .map_err(|e| EngineError::Runtime(format!("starting the {name} worker: {e}")))?;
        let worker = Self {
            jobs: Mutex::new(Some(jobs)),
            thread: Some(thread),
        };
        ready_rx.recv().map_err(|_| EngineError::WorkerGone)??;
        Ok(worker)
    }

    /// Queue `job`.
    pub(crate) fn send(&self, job: J) -> Result<(), EngineError> {
        self.jobs
            .lock()
            .map_err(|_| EngineError::WorkerGone)?
            .as_ref()
            .ok_or(EngineError::WorkerGone)?
            .send(job)
            .map_err(|_| EngineError::WorkerGone)
    }
}

impl<J> Drop for Worker<J> {
    fn drop(&mut self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
