//! A per-epoch progress bar on stderr.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar for one epoch, showing loss, accuracy, samples/s and ETA.
///
/// It draws on stderr, and not at all when stderr is not a terminal (logs
/// and CI stay clean) or when disabled.
pub struct EpochProgress {
    bar: ProgressBar,
    started: Instant,
}

impl EpochProgress {
    /// A bar for `samples` samples of epoch `epoch` (1-based) of `epochs`.
    pub fn new(samples: usize, epoch: usize, epochs: usize, enabled: bool) -> EpochProgress {
        let target = if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(samples as u64), target);
        let style =
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos:>6}/{len:6} {msg} eta {eta}")
                .expect("the template is valid")
                .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(format!("epoch {epoch:>3}/{epochs}"));
        EpochProgress {
            bar,
            started: Instant::now(),
        }
    }

    /// Records that `samples_done` samples are through, with the running
    /// loss and accuracy.
    pub fn update(&self, samples_done: usize, loss: f64, accuracy: f64) {
        let rate = samples_done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        self.bar.set_position(samples_done as u64);
        self.bar.set_message(format!(
            "loss {loss:.4} acc {:.2}% {rate:>8.0} samples/s",
            100.0 * accuracy
        ));
    }

    /// Removes the bar (the caller prints the epoch's summary line).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
