//! A minimal CSV writer for one row of metrics per epoch.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Writes a header then one row of numbers per call, flushing each row so
/// the file is readable while training runs.
///
/// ```
/// let path = std::env::temp_dir().join(format!("ember-csv-doc-{}.csv", std::process::id()));
/// let mut csv = ember::report::MetricsCsv::create(&path, &["epoch", "loss"]).unwrap();
/// csv.row(&[1.0, 0.25]).unwrap();
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "epoch,loss\n1,0.25\n");
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub struct MetricsCsv {
    path: PathBuf,
    columns: usize,
    out: BufWriter<File>,
}

impl MetricsCsv {
    /// Creates (or truncates) `path` and writes the header.
    ///
    /// # Errors
    /// If the file cannot be created or written.
    pub fn create(path: impl AsRef<Path>, header: &[&str]) -> io::Result<MetricsCsv> {
        let path = path.as_ref().to_path_buf();
        let mut out = BufWriter::new(File::create(&path)?);
        writeln!(out, "{}", header.join(","))?;
        out.flush()?;
        Ok(MetricsCsv {
            path,
            columns: header.len(),
            out,
        })
    }

    /// Appends one row (as many values as header columns).
    ///
    /// # Errors
    /// If the row has the wrong length or the write fails.
    pub fn row(&mut self, values: &[f64]) -> io::Result<()> {
        if values.len() != self.columns {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: a row of {} values for {} columns",
                    self.path.display(),
                    values.len(),
                    self.columns
                ),
            ));
        }
        let cells: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        writeln!(self.out, "{}", cells.join(","))?;
        self.out.flush()
    }
}
