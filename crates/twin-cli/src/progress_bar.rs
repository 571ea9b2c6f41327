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
