//! What the examples print and write: the line per epoch, the CSV, the
//! plot, the progress of an epoch, and the final summary (text or JSON).

use std::path::{Path, PathBuf};
use std::time::Duration;

use ember::layers::data::Evaluation;
use ember::layers::metrics::{correct, RunningMean};
use ember::layers::Module;
use ember::report::{plot_curves, Curve, EpochProgress, MetricsCsv, Panel};
use ember::tensor::Tensor;
use serde_json::{Map, Value};

/// One epoch's figures.
#[derive(Clone, Copy, Debug)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Training accuracy over the epoch (with dropout active).
    pub train_accuracy: f64,
    /// Test loss.
    pub test_loss: f64,
    /// Test accuracy.
    pub test_accuracy: f64,
    /// Training samples seen.
    pub samples: usize,
    /// Seconds spent in training steps.
    pub train_seconds: f64,
    /// Training samples per second.
    pub samples_per_second: f64,
}

/// The per-epoch outputs: the line on stdout, the CSV row, the plot.
pub struct Reporter {
    csv: Option<MetricsCsv>,
    plot: Option<PathBuf>,
    quiet: bool,
    history: Vec<EpochRecord>,
}

impl Reporter {
    /// Opens the CSV (if asked for).
    pub fn new(args: &super::CommonArgs) -> Result<Reporter, String> {
        let header = [
            "epoch",
            "train_loss",
            "train_accuracy",
            "test_loss",
            "test_accuracy",
            "train_seconds",
            "samples_per_second",
        ];
        let csv = match &args.metrics {
            Some(path) => Some(
                MetricsCsv::create(path, &header)
                    .map_err(|e| format!("{}: {e}", path.display()))?,
            ),
            None => None,
        };
        Ok(Reporter {
            csv,
            plot: args.plot.clone(),
            quiet: args.quiet,
            history: Vec::new(),
        })
    }

    /// Prints and records one epoch.
    pub fn epoch(&mut self, r: EpochRecord, epochs: usize) -> Result<(), String> {
        if !self.quiet {
            println!(
                "epoch {:>3}/{epochs}  train loss {:.4} acc {:.2}%  test loss {:.4} acc {:.2}%  {:.1} s ({:.0} samples/s)",
                r.epoch,
                r.train_loss,
                100.0 * r.train_accuracy,
                r.test_loss,
                100.0 * r.test_accuracy,
                r.train_seconds,
                r.samples_per_second
            );
        }
        if let Some(csv) = &mut self.csv {
            csv.row(&[
                r.epoch as f64,
                r.train_loss,
                r.train_accuracy,
                r.test_loss,
                r.test_accuracy,
                r.train_seconds,
                r.samples_per_second,
            ])
            .map_err(|e| e.to_string())?;
        }
        self.history.push(r);
        if let Some(path) = &self.plot {
            self.write_plot(path)?;
        }
        Ok(())
    }

    fn write_plot(&self, path: &Path) -> Result<(), String> {
        let series = |name: &str, f: fn(&EpochRecord) -> f64| Curve {
            name: name.to_string(),
            points: self
                .history
                .iter()
                .map(|r| (r.epoch as f64, f(r)))
                .collect(),
        };
        let panels = [
            Panel {
                title: "Loss".into(),
                x_label: "epoch".into(),
                y_label: "cross-entropy (nats)".into(),
                curves: vec![
                    series("train", |r| r.train_loss),
                    series("test", |r| r.test_loss),
                ],
            },
            Panel {
                title: "Accuracy".into(),
                x_label: "epoch".into(),
                y_label: "accuracy (%)".into(),
                curves: vec![
                    series("train", |r| 100.0 * r.train_accuracy),
                    series("test", |r| 100.0 * r.test_accuracy),
                ],
            },
        ];
        plot_curves(path, &panels)
    }

    /// The epochs recorded so far.
    pub fn history(&self) -> &[EpochRecord] {
        &self.history
    }
}

/// The final JSON line; `extra` fields (JSON values as text) are added, or
/// replace the field of the same name. Numbers are rounded as before: the
/// figures to 6 decimals, seconds to 3, samples/s to 1.
pub fn summary_json(
    epochs: usize,
    test: &Evaluation,
    train_seconds: f64,
    samples: usize,
    seed: u64,
    threads: usize,
    extra: &[(String, String)],
) -> String {
    let rounded = |x: f64, decimals: i32| {
        let scale = 10f64.powi(decimals);
        Value::from((x * scale).round() / scale)
    };
    let mut fields = Map::new();
    fields.insert("epochs".into(), epochs.into());
    fields.insert("test_accuracy".into(), rounded(test.accuracy, 6));
    fields.insert("test_loss".into(), rounded(test.loss, 6));
    fields.insert("train_seconds".into(), rounded(train_seconds, 3));
    fields.insert(
        "samples_per_second".into(),
        rounded(samples as f64 / train_seconds.max(1e-9), 1),
    );
    fields.insert("seed".into(), seed.into());
    fields.insert("threads".into(), threads.into());
    fields.insert(
        "peak_tensor_bytes".into(),
        ember::tensor::memory::peak_bytes().into(),
    );
    for (name, value) in extra {
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::from(value.as_str()));
        fields.insert(name.clone(), value);
    }
    Value::Object(fields).to_string()
}

/// One training epoch's running figures: loss, accuracy, the time spent in
/// training steps, the progress bar; and the divergence check.
pub struct EpochTracker {
    epoch: usize,
    lr: f32,
    progress: EpochProgress,
    loss: RunningMean,
    right: usize,
    seen: usize,
    seconds: f64,
}

impl EpochTracker {
    /// Starts epoch `epoch` (0-based) of `epochs`, over `samples` samples.
    pub fn new(
        samples: usize,
        epoch: usize,
        epochs: usize,
        lr: f32,
        args: &super::CommonArgs,
    ) -> Self {
        EpochTracker {
            epoch,
            lr,
            progress: EpochProgress::new(samples, epoch + 1, epochs, !args.quiet),
            loss: RunningMean::default(),
            right: 0,
            seen: 0,
            seconds: 0.0,
        }
    }

    /// Records training step `step`, which took `elapsed`.
    ///
    /// # Errors
    /// If the loss is not finite: training has diverged.
    pub fn record(
        &mut self,
        loss: f32,
        logits: &Tensor,
        labels: &[usize],
        elapsed: Duration,
        step: u64,
    ) -> Result<(), String> {
        if !loss.is_finite() {
            self.progress.finish();
            return Err(format!(
                "the loss became {loss} at step {step} (epoch {}); try a lower learning rate than {} \
                 (the last good checkpoint, if any, is kept)",
                self.epoch + 1,
                self.lr
            ));
        }
        self.seconds += elapsed.as_secs_f64();
        self.loss.add(loss, labels.len());
        self.right += correct(logits, labels);
        self.seen += labels.len();
        let accuracy = self.right as f64 / self.seen as f64;
        self.progress.update(self.seen, self.loss.mean(), accuracy);
        Ok(())
    }

    /// Ends the epoch with its test loss and accuracy.
    pub fn finish(self, test: Evaluation) -> EpochRecord {
        self.progress.finish();
        EpochRecord {
            epoch: self.epoch + 1,
            train_loss: self.loss.mean(),
            train_accuracy: self.right as f64 / self.seen.max(1) as f64,
            test_loss: test.loss,
            test_accuracy: test.accuracy,
            samples: self.seen,
            train_seconds: self.seconds,
            samples_per_second: self.seen as f64 / self.seconds.max(1e-9),
        }
    }
}

/// Prints the final result: a line with `--quiet`, the JSON object with
/// `--json` (with the fields `ranks` adds: rank, world size, parameters'
/// hash). Collective in a distributed run: every rank calls it.
pub fn finish(
    args: &super::CommonArgs,
    epochs: usize,
    threads: usize,
    history: &[EpochRecord],
    test: Evaluation,
    ranks: &super::parallel::Ranks<'_>,
    model: &dyn Module,
) {
    let seconds: f64 = history.iter().map(|r| r.train_seconds).sum();
    let samples: usize = history.iter().map(|r| r.samples).sum();
    let extra = ranks.summary(model, samples, seconds);
    if args.quiet && !args.json {
        println!(
            "test accuracy {:.2}%, test loss {:.4}",
            100.0 * test.accuracy,
            test.loss
        );
    }
    if args.json {
        println!(
            "{}",
            summary_json(epochs, &test, seconds, samples, args.seed, threads, &extra)
        );
    }
}
