//! The full study's training runs: what one run is ([`Job`]), what it
//! leaves behind ([`Record`]), the file that keeps every finished record
//! ([`Store`], so a killed study resumes where it stopped), and the pool
//! that runs the jobs side by side, one thread each.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::common::InitKind;
use crate::Act;

/// The networks the full study trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Net {
    /// The classic MLP (784-512-512-10, dropout), with its hidden bias:
    /// `None` for Ember's default (0.1 before a ReLU), `Some(0)` for zero.
    Mlp { act: Act, zero_bias: bool },
    /// 784 → 20 × 256 → 10, no dropout, no normalization.
    Deep { act: Act },
    /// `mnist_cnn`'s convnet.
    Cnn,
}

impl Net {
    /// A short name for keys and progress lines.
    pub fn name(self) -> String {
        match self {
            Net::Mlp { act, zero_bias } => {
                format!(
                    "mlp-{}{}",
                    act.name(),
                    if zero_bias { "-bias0" } else { "" }
                )
            }
            Net::Deep { act } => format!("deep-{}", act.name()),
            Net::Cnn => "cnn".into(),
        }
    }
}

/// One training run: a network, its initializer and a seed (which draws
/// the weights, the order of the batches and the dropout masks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Job {
    pub net: Net,
    pub init: InitKind,
    pub seed: u64,
}

/// What a finished run measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    /// The job and the settings it ran with ([`Store`] reuses a record only
    /// for the same key).
    pub key: String,
    /// (epochs trained, test loss, test accuracy) at each evaluation; the
    /// first is at 0, before any step.
    pub curve: Vec<(f64, f64, f64)>,
    /// Per hidden layer, at initialization: the fraction of dead units
    /// (before a ReLU) or of saturated ones (before a sigmoid or tanh).
    pub units_start: Vec<f64>,
    /// The same after the last epoch.
    pub units_end: Vec<f64>,
    /// Where (in epochs) the training loss stopped being finite, if it did;
    /// the run stopped there.
    pub diverged_at: Option<f64>,
    /// Wall time of the run on its one thread.
    pub seconds: f64,
}

impl Record {
    /// Test accuracy at the last evaluation.
    pub fn final_accuracy(&self) -> f64 {
        self.curve.last().map_or(f64::NAN, |c| c.2)
    }

    /// Test loss at the last evaluation.
    pub fn final_loss(&self) -> f64 {
        self.curve.last().map_or(f64::NAN, |c| c.1)
    }

    /// The first evaluation (in epochs) at which test accuracy reached
    /// `threshold`, if one did.
    pub fn epochs_to(&self, threshold: f64) -> Option<f64> {
        self.curve.iter().find(|c| c.2 >= threshold).map(|c| c.0)
    }

    /// The accuracy of the evaluation closest to `epochs` (curves of one
    /// cell share their evaluation points).
    pub fn accuracy_at(&self, epochs: f64) -> f64 {
        self.curve
            .iter()
            .min_by(|a, b| (a.0 - epochs).abs().total_cmp(&(b.0 - epochs).abs()))
            .map_or(f64::NAN, |c| c.2)
    }
}

/// Every record finished so far, one JSON line each in a file: appended as
/// each run ends, read back on the next start.
pub struct Store {
    path: PathBuf,
    done: HashMap<String, Record>,
    file: Mutex<File>,
}

impl Store {
    /// Opens (or creates) the store at `path`; `fresh` forgets what it held.
    /// A line that does not parse (the last one, cut by a kill) is skipped.
    pub fn open(path: &Path, fresh: bool) -> Result<Store, String> {
        let fail = |e: std::io::Error| format!("{}: {e}", path.display());
        let mut done = HashMap::new();
        if !fresh && path.exists() {
            let reader = BufReader::new(File::open(path).map_err(fail)?);
            for (n, line) in reader.lines().enumerate() {
                let line = line.map_err(fail)?;
                match serde_json::from_str::<Record>(&line) {
                    Ok(record) => {
                        done.insert(record.key.clone(), record);
                    }
                    Err(e) if !line.trim().is_empty() => eprintln!(
                        "{}: line {} skipped (not a whole record: {e})",
                        path.display(),
                        n + 1
                    ),
                    Err(_) => {}
                }
            }
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(!fresh)
            .write(true)
            .truncate(fresh)
            .open(path)
            .map_err(fail)?;
        // A record cut short by a kill must not swallow the next one.
        if !fresh && std::fs::metadata(path).map_err(fail)?.len() > 0 {
            let text = std::fs::read(path).map_err(fail)?;
            if text.last() != Some(&b'\n') {
                file.write_all(b"\n").map_err(fail)?;
            }
        }
        Ok(Store {
            path: path.to_path_buf(),
            done,
            file: Mutex::new(file),
        })
    }

    /// The record kept under `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Record> {
        self.done.get(key)
    }

    fn append(&self, record: &Record) -> Result<(), String> {
        let line = serde_json::to_string(record).map_err(|e| e.to_string())?;
        let mut file = self.file.lock().expect("no writer panics holding the lock");
        writeln!(file, "{line}")
            .and_then(|()| file.flush())
            .map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

/// Runs every job whose key the store lacks, `workers` at a time, each on
/// a thread pool of its own with one thread (a run's result does not depend
/// on its thread count, and two one-thread runs use two cores better than
/// one run split over both). Returns the records in `jobs`' order.
pub fn run_all(
    jobs: &[(Job, String)],
    store: &mut Store,
    workers: usize,
    train: &(dyn Fn(&Job, &str) -> Result<Record, String> + Sync),
) -> Result<Vec<Record>, String> {
    let todo: Vec<&(Job, String)> = jobs
        .iter()
        .filter(|(_, key)| store.get(key).is_none())
        .collect();
    eprintln!(
        "  {} runs, {} already in {}, {} to train on {workers} threads",
        jobs.len(),
        jobs.len() - todo.len(),
        store.path.display(),
        todo.len()
    );
    let next = AtomicUsize::new(0);
    let finished: Mutex<Vec<Record>> = Mutex::new(Vec::new());
    let failure: Mutex<Option<String>> = Mutex::new(None);
    let started = Instant::now();
    let shared: &Store = store;
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1).min(todo.len()) {
            scope.spawn(|| {
                let pool = match rayon::ThreadPoolBuilder::new().num_threads(1).build() {
                    Ok(pool) => pool,
                    Err(e) => {
                        *failure.lock().expect("unpoisoned") = Some(e.to_string());
                        return;
                    }
                };
                loop {
                    if failure.lock().expect("unpoisoned").is_some() {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((job, key)) = todo.get(i) else {
                        return;
                    };
                    let result = pool
                        .install(|| train(job, key))
                        .and_then(|r| shared.append(&r).map(|()| r));
                    match result {
                        Ok(record) => {
                            eprintln!(
                                "  [{}/{}, {:.0} s] {key}: {:.2} % in {:.0} s",
                                i + 1,
                                todo.len(),
                                started.elapsed().as_secs_f64(),
                                100.0 * record.final_accuracy(),
                                record.seconds
                            );
                            finished.lock().expect("unpoisoned").push(record);
                        }
                        Err(e) => {
                            *failure.lock().expect("unpoisoned") = Some(format!("{key}: {e}"));
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().expect("unpoisoned") {
        return Err(e);
    }
    for record in finished.into_inner().expect("unpoisoned") {
        store.done.insert(record.key.clone(), record);
    }
    jobs.iter()
        .map(|(_, key)| {
            store
                .get(key)
                .cloned()
                .ok_or_else(|| format!("{key}: no record after the run"))
        })
        .collect()
}
