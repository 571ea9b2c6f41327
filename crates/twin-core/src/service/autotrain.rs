//! Automatic retraining through the service (see [`crate::autotrain`]): its settings, status
//! and history, a cycle run on request, and the follower thread that starts cycles by itself
//! and yields to the user.

use super::{lock, Twin};
use crate::autotrain::{
    self, AutotrainEvent, AutotrainSettings, AutotrainStatus, Cycle, CycleContext, CycleParams,
    Trigger,
};
use crate::error::{ErrorKind, TwinError};
use crate::library::Library;
use crate::progress::CancelToken;
use crate::store::Store;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Overrides for one cycle run on request (`twin autotrain run --steps … --learning-rate …`).
#[derive(Clone, Debug, Default, serde::Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct CycleOverrides {
    /// Optimizer steps at most, over the setting.
    pub max_steps: Option<usize>,
    /// Learning rate, over the training default.
    pub learning_rate: Option<f64>,
    /// Drafts on held-out topics per side, over the setting.
    pub drafts: Option<usize>,
}

/// Whether the user is at work: drafting, importing, building a dataset, training or
/// evaluating, in this process or another one on the same data folder. Automatic training
/// waits while they are. Across processes it is an advisory file lock: each piece of user work
/// holds `activity.lock` shared; the follower only tests whether it could take it exclusively.
/// The operating system drops the lock of a process that dies, so a crash never leaves the
/// twin paused.
pub struct Activity {
    here: AtomicUsize,
    lock_path: PathBuf,
}

/// Held while the user's work runs (see [`Activity`]).
pub struct ActiveGuard {
    activity: Arc<Activity>,
    _lock: Option<File>,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.activity.here.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Activity {
    pub(super) fn new(data_dir: &std::path::Path) -> Self {
        Self {
            here: AtomicUsize::new(0),
            lock_path: data_dir.join("activity.lock"),
        }
    }

    fn open_lock(&self) -> Option<File> {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_path)
            .ok()
    }

    /// Mark the user at work until the guard drops.
    pub fn begin(self: &Arc<Self>) -> ActiveGuard {
        self.here.fetch_add(1, Ordering::SeqCst);
        // No data folder yet (a first import creates it) or no lock support: this process
        // still knows, and a second process is only a nicety.
        let lock = self.open_lock().filter(|f| f.lock_shared().is_ok());
        ActiveGuard {
            activity: Arc::clone(self),
            _lock: lock,
        }
    }

    /// Whether the user is at work in this process or another.
    pub fn user_active(&self) -> bool {
        if self.here.load(Ordering::SeqCst) > 0 {
            return true;
        }
        match self.open_lock() {
            Some(f) => match f.try_lock() {
                Ok(()) => {
                    let _ = f.unlock();
                    false
                }
                Err(_) => true,
            },
            None => false,
        }
    }
}

/// The follower thread and the token that stops it.
pub(super) struct Follower {
    cancel: CancelToken,
    thread: JoinHandle<()>,
}

/// How often the follower looks at the library (a counter read; the change itself is only
/// measured when the library's generation moved, or every few minutes for the schedule).
const POLL: Duration = Duration::from_millis(500);
const SCHEDULE_CHECK: Duration = Duration::from_secs(300);

impl Twin {
    /// Mark the user at work until the guard drops; automatic training pauses meanwhile.
    pub fn user_activity(&self) -> ActiveGuard {
        self.activity.begin()
    }

    /// The automatic retraining settings.
    pub fn autotrain_settings(&self) -> Result<AutotrainSettings, TwinError> {
        self.with_library(|lib| Ok(AutotrainSettings::load(lib.store())?))
    }

    /// Keep `settings`. Turning automation off stops the cycle a follower runs, in this
    /// process or another, at its next step after at most a few seconds; it resumes when
    /// automation is turned on again.
    pub fn save_autotrain_settings(&self, settings: &AutotrainSettings) -> Result<(), TwinError> {
        self.with_library(|lib| Ok(settings.save(lib.store())?))
    }

    /// Where automation stands: settings, writing waiting, the cycle running, the last one.
    pub fn autotrain_status(&self) -> Result<AutotrainStatus, TwinError> {
        self.with_library(|lib| Ok(autotrain::status(lib.store(), crate::store::now_secs())?))
    }

    /// Every cycle, newest first, at most `limit`.
    pub fn autotrain_history(&self, limit: usize) -> Result<Vec<Cycle>, TwinError> {
        self.with_library(|lib| Ok(lib.store().cycles(limit)?))
    }

    /// Run a cycle now, in the foreground: an interrupted one resumes; otherwise a new one
    /// starts on the library as it is, whatever the threshold (`overrides` apply to it).
    pub fn autotrain_run(
        &self,
        overrides: &CycleOverrides,
        on_event: &(dyn Fn(AutotrainEvent) + Sync),
        cancel: &CancelToken,
    ) -> Result<Cycle, TwinError> {
        let mut lib = self.open_library()?;
        let pending = lib.store().unfinished_cycle()?;
        let record = match pending {
            Some(c) => c,
            None => {
                let settings = AutotrainSettings::load(lib.store())?;
                let change = autotrain::pending_change(lib.store())?;
                let mut params = cycle_params(&settings);
                params.max_steps = overrides.max_steps.or(params.max_steps);
                params.learning_rate = overrides.learning_rate;
                params.drafts = overrides.drafts.unwrap_or(params.drafts);
                let base = crate::models::resolve_chat_model(lib.store(), None)?;
                autotrain::start_cycle(lib.store(), &base, Trigger::Manual, &change, &params)?
            }
        };
        let activity = Arc::clone(&self.activity);
        let yield_to_user = move |cycle: i64| wait_for_user(&activity, cycle, on_event, cancel);
        self.run_cycle(&mut lib, record, &yield_to_user, on_event, cancel)
    }

    fn run_cycle(
        &self,
        lib: &mut Library,
        record: crate::store::CycleRecord,
        yield_to_user: &(dyn Fn(i64) + Sync),
        on_event: &(dyn Fn(AutotrainEvent) + Sync),
        cancel: &CancelToken,
    ) -> Result<Cycle, TwinError> {
        // One cycle at a time per data folder, whichever process runs it: two would train the
        // same run into the same checkpoints. The lock dies with its process.
        let lock_path = self.data_dir.join("autotrain.lock");
        let cycle_lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| TwinError::about(ErrorKind::Io, &lock_path, e))?;
        if cycle_lock.try_lock().is_err() {
            return Err(TwinError::new(
                ErrorKind::Busy,
                "another Twin process is running a training cycle on this library",
            ));
        }
        let settings = self.stored_settings()?;
        let mut model_config = settings.chat_config();
        model_config.threads = background_threads();
        let mut ctx = CycleContext {
            library: lib,
            author: settings.author.clone(),
            model_config,
            yield_to_user,
            on_event,
            cancel,
        };
        Ok(autotrain::run_cycle(&mut ctx, record)?)
    }

    /// Start cycles by themselves from now on, on a thread of its own at low priority with
    /// its own library connection: an interrupted cycle resumes first, then a new one starts
    /// whenever one is due ([`autotrain::due`]). `on_event` hears each cycle's progress. A
    /// second call replaces the first follower.
    pub fn follow_autotrain(
        self: &Arc<Self>,
        on_event: impl Fn(AutotrainEvent) + Send + Sync + 'static,
    ) {
        self.stop_autotrain();
        let cancel = CancelToken::new();
        let twin = Arc::clone(self);
        let token = cancel.clone();
        let thread = std::thread::spawn(move || {
            lower_priority();
            if let Err(e) = twin.follow(&on_event, &token) {
                tracing::warn!("automatic training stopped: {e}");
            }
        });
        *lock(&self.follower) = Some(Follower { cancel, thread });
    }

    /// Stop the follower, letting a running cycle record that it was interrupted (it resumes
    /// on the next start).
    pub fn stop_autotrain(&self) {
        if let Some(f) = lock(&self.follower).take() {
            f.cancel.cancel();
            let _ = f.thread.join();
        }
    }

    fn follow(
        &self,
        on_event: &(dyn Fn(AutotrainEvent) + Sync),
        cancel: &CancelToken,
    ) -> Result<(), TwinError> {
        let mut lib = self.open_library()?;
        let mut seen_generation = None;
        let mut checked_at = Instant::now();
        // After a cycle that could not start (no chat model yet, say), wait for the library to
        // change rather than retrying every poll.
        let mut blocked_at_generation = None;
        while !cancel.is_cancelled() {
            std::thread::sleep(POLL);
            let store = lib.store();
            let settings = AutotrainSettings::load(store)?;
            if !settings.enabled || self.activity.user_active() {
                continue;
            }
            let generation = store.library_generation()?;
            let record = match store.unfinished_cycle()? {
                Some(c) => Some(c),
                None if blocked_at_generation == Some(generation) => None,
                None if seen_generation != Some(generation)
                    || checked_at.elapsed() >= SCHEDULE_CHECK =>
                {
                    seen_generation = Some(generation);
                    checked_at = Instant::now();
                    let change = autotrain::pending_change(store)?;
                    let last = store.cycles(1)?;
                    match autotrain::due(&settings, &change, last.first(), crate::store::now_secs())
                    {
                        Some(trigger) => match crate::models::resolve_chat_model(store, None) {
                            Ok(base) => Some(autotrain::start_cycle(
                                store,
                                &base,
                                trigger,
                                &change,
                                &cycle_params(&settings),
                            )?),
                            Err(e) => {
                                tracing::info!("a cycle is due but cannot start: {e}");
                                blocked_at_generation = Some(generation);
                                None
                            }
                        },
                        None => None,
                    }
                }
                None => None,
            };
            let Some(record) = record else { continue };
            // Stopped by the follower's token, or by automation being turned off (here, or in
            // another process).
            let cycle_cancel = CancelToken::new();
            let settings_path = lib.store().path().to_path_buf();
            let activity = Arc::clone(&self.activity);
            let off = OffSwitch::new(settings_path);
            let yield_to_user = |cycle: i64| {
                if cancel.is_cancelled() || off.turned_off() {
                    cycle_cancel.cancel();
                }
                wait_for_user(&activity, cycle, on_event, &cycle_cancel);
            };
            let result = self.run_cycle(&mut lib, record, &yield_to_user, on_event, &cycle_cancel);
            match result {
                Ok(_) => {}
                Err(e) if e.kind == ErrorKind::Cancelled => {}
                // Another process runs it (or ran it and will record it).
                Err(e) if e.kind == ErrorKind::Busy => {}
                Err(e) => {
                    tracing::warn!("an automatic training cycle failed: {e}");
                    blocked_at_generation = Some(lib.store().library_generation()?);
                }
            }
        }
        Ok(())
    }
}

/// Notices, from inside a cycle, that the user turned automation off, in this process or
/// another (read from the store at most every few seconds, on a connection of its own).
struct OffSwitch {
    store: Mutex<Option<Store>>,
    path: PathBuf,
    checked: Mutex<Instant>,
}

impl OffSwitch {
    fn new(path: PathBuf) -> Self {
        Self {
            store: Mutex::new(None),
            path,
            checked: Mutex::new(Instant::now()),
        }
    }

    fn turned_off(&self) -> bool {
        let mut checked = lock(&self.checked);
        if checked.elapsed() < Duration::from_secs(3) {
            return false;
        }
        *checked = Instant::now();
        let mut store = lock(&self.store);
        if store.is_none() {
            *store = Store::open(&self.path).ok();
        }
        store
            .as_ref()
            .and_then(|s| AutotrainSettings::load(s).ok())
            .is_some_and(|s| !s.enabled)
    }
}

/// Block while the user is at work (telling `on_event` once), until `cancel` is set.
fn wait_for_user(
    activity: &Activity,
    cycle: i64,
    on_event: &(dyn Fn(AutotrainEvent) + Sync),
    cancel: &CancelToken,
) {
    let mut told = false;
    while !cancel.is_cancelled() && activity.user_active() {
        if !told {
            on_event(AutotrainEvent::Paused { cycle });
            told = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn cycle_params(settings: &AutotrainSettings) -> CycleParams {
    CycleParams {
        max_steps: settings.max_steps,
        learning_rate: None,
        drafts: settings.drafts,
        margin: settings.margin,
        preference: settings.preference,
    }
}

/// llama.cpp threads for background work: half the cores, at least one.
fn background_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// Lower this thread's priority (Linux: `nice` 10 for this thread; the threads it starts
/// inherit it), and that of the training pool's threads, which candle starts once per
/// process. Elsewhere a no-op: `setpriority` there would lower the whole app.
pub(super) fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        fn nice_this_thread() {
            // SAFETY: setpriority with PRIO_PROCESS and a thread id changes only that
            // thread's nice value on Linux; it reads no memory of ours.
            #[allow(unsafe_code)]
            unsafe {
                let tid = libc::gettid();
                libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
            }
        }
        nice_this_thread();
        candle_core::Device::Cpu.with_context(|| {
            rayon::broadcast(|_| nice_this_thread());
        });
    }
}
