//! Terminal progress: one indicatif bar that follows the stages of twin-core's progress events.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::Mutex;
use twin_core::{ProgressEvent, Stage};

/// Renders progress events as a bar on stderr (hidden when `--json` or stderr is not a terminal).
pub struct Bar {
    bar: ProgressBar,
    stage: Mutex<Option<Stage>>,
}

impl Bar {
    pub fn new(visible: bool) -> Self {
        let bar = ProgressBar::with_draw_target(
            None,
            if visible {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        Self {
            bar,
            stage: Mutex::new(None),
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// Show `label` and the share done (0 to 1) of work measured as a whole (a training cycle).
    pub fn fraction(&self, label: &str, share: f64) {
        if let Ok(mut stage) = self.stage.lock() {
            // A counted stage after this one sets its own style again.
            *stage = None;
        }
        self.bar.set_style(
            ProgressStyle::with_template("{prefix:10} [{bar:30}] {percent:>3}% {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        self.bar.set_prefix(label.to_string());
        self.bar.set_length(1000);
        self.bar
            .set_position((share.clamp(0.0, 1.0) * 1000.0) as u64);
        self.bar.set_message("");
    }

    /// A note beside the bar.
    pub fn message(&self, text: &str) {
        self.bar.set_message(text.to_string());
    }
}

fn counted(label: &str, unit: &str) -> String {
    format!("{label} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}}) {{wide_msg}}")
}

impl twin_core::Progress for Bar {
    fn report(&self, e: ProgressEvent) {
        let Ok(mut stage) = self.stage.lock() else {
            return;
        };
        if *stage != Some(e.stage) {
            *stage = Some(e.stage);
            let template = match e.stage {
                Stage::Scan => counted("scanning", "files"),
                Stage::Parse => counted("parsing ", "files"),
                Stage::Embed => counted("embedding", "chunks"),
                Stage::Dataset => counted("dataset ", "passages"),
                Stage::Evaluate => counted("evaluating", "measurements"),
                Stage::Download => "downloading [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {wide_msg}".to_string(),
                Stage::Bundle => "bundling [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {wide_msg}".to_string(),
            };
            self.bar.set_style(
                ProgressStyle::with_template(&template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            self.bar.reset();
        }
        self.bar.set_length(e.total);
        self.bar.set_position(e.done);
        if let Some(item) = e.item {
            let short: String = item
                .chars()
                .rev()
                .take(60)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            self.bar.set_message(short);
        }
    }
}

/// A spinner with the elapsed time for a drafting step whose text is not shown yet: on a CPU
/// the first writing step spends seconds reading the retrieved writing before its first token.
pub struct StepSpinner {
    bar: Option<ProgressBar>,
    visible: bool,
}

impl StepSpinner {
    pub fn new(visible: bool) -> Self {
        Self { bar: None, visible }
    }

    /// Show `message` until [`StepSpinner::clear`] or the next call.
    pub fn start(&mut self, message: &str) {
        self.clear();
        if !self.visible {
            return;
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message.to_string());
        // Slow ticks: each wake-up takes a core from llama.cpp's threads for a moment.
        bar.enable_steady_tick(std::time::Duration::from_millis(250));
        self.bar = Some(bar);
    }

    /// Remove the spinner's line.
    pub fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
