//! Parsers for the examples' options: every value is checked when the
//! command line is read, so a bad one is refused before any work starts.
//!
//! Each returns the reason a value is refused; clap turns it into one line,
//! `error: invalid value 'VALUE' for '--OPTION <OPTION>': REASON`, and exits
//! with status 2.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

/// The most worker threads an example will start.
pub const MAX_THREADS: usize = 1024;

/// The widest hidden layer an example will build (a 784 × 65,536 weight is
/// already 200 MB).
pub const MAX_WIDTH: usize = 65_536;

/// The most epochs an example will plan for.
pub const MAX_EPOCHS: usize = 1_000_000;

fn unsigned(text: &str) -> Result<usize, String> {
    text.parse::<usize>()
        .map_err(|_| "expected a whole number".to_string())
}

fn float(text: &str) -> Result<f32, String> {
    text.parse::<f32>()
        .map_err(|_| "expected a number".to_string())
}

/// A count of at least 1 (batch size, image limits).
pub fn positive(text: &str) -> Result<usize, String> {
    match unsigned(text)? {
        0 => Err("must be at least 1".to_string()),
        n => Ok(n),
    }
}

/// An epoch count, 0 (save the initial weights) to [`MAX_EPOCHS`].
pub fn epochs(text: &str) -> Result<usize, String> {
    match unsigned(text)? {
        n if n <= MAX_EPOCHS => Ok(n),
        _ => Err(format!("at most {MAX_EPOCHS} epochs")),
    }
}

/// A thread count, 1 to [`MAX_THREADS`].
pub fn threads(text: &str) -> Result<usize, String> {
    match unsigned(text)? {
        n @ 1..=MAX_THREADS => Ok(n),
        _ => Err(format!("must be between 1 and {MAX_THREADS}")),
    }
}

/// A hidden layer width, 1 to [`MAX_WIDTH`].
pub fn width(text: &str) -> Result<usize, String> {
    match unsigned(text)? {
        n @ 1..=MAX_WIDTH => Ok(n),
        _ => Err(format!("a layer width must be between 1 and {MAX_WIDTH}")),
    }
}

/// A learning rate: finite and not negative.
pub fn learning_rate(text: &str) -> Result<f32, String> {
    match float(text)? {
        lr if lr.is_finite() && lr >= 0.0 => Ok(lr),
        _ => Err("a learning rate must be a finite number >= 0".to_string()),
    }
}

/// A probability in `[0, 1)` (dropout, label smoothing).
pub fn probability(text: &str) -> Result<f32, String> {
    match float(text)? {
        p if (0.0..1.0).contains(&p) => Ok(p),
        _ => Err("must be in [0, 1)".to_string()),
    }
}

/// `"default"` or a finite number (a bias initial value).
pub fn bias(text: &str) -> Result<String, String> {
    match text {
        "default" => Ok(text.to_string()),
        _ => match float(text) {
            Ok(b) if b.is_finite() => Ok(text.to_string()),
            _ => Err("expected \"default\" or a finite number".to_string()),
        },
    }
}

/// A folder that exists (`--data-dir`: used as given or refused, never
/// replaced by `$MNIST_DIR` or `data/mnist`).
pub fn existing_dir(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    match std::fs::metadata(&path) {
        Ok(m) if m.is_dir() => Ok(path),
        Ok(_) => Err("not a folder".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// A file that exists and can be read (`--resume`).
pub fn readable_file(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    match std::fs::File::open(&path) {
        Ok(f) if f.metadata().is_ok_and(|m| m.is_file()) => Ok(path),
        Ok(_) => Err("not a file".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// A file that can be written (`--save`, `--metrics`, `--plot`): not a
/// folder, in a folder that exists and takes new files, and writable if it
/// exists already. Nothing is left behind by the check.
pub fn writable_file(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    if path.file_name().is_none() {
        return Err("does not name a file".to_string());
    }
    if path.is_dir() {
        return Err("is a folder".to_string());
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    writable_dir(&dir)?;
    if path.exists() {
        // Opening to append changes nothing.
        OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| format!("cannot be written: {e}"))?;
    }
    Ok(path)
}

/// Checks that `dir` is a folder new files can be created in, by creating
/// and removing one.
pub fn writable_dir(dir: &Path) -> Result<(), String> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("{} is not a folder", dir.display())),
        Err(e) => return Err(format!("folder {}: {e}", dir.display())),
    }
    let probe = dir.join(format!(".ember-write-check-{}", std::process::id()));
    match OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!("folder {} takes no new files: {e}", dir.display())),
    }
}
