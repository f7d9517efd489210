//! Downloading the data sets from their public mirrors, verified before they are kept.
//!
//! Each file is fetched into a `.part` temporary file beside its destination,
//! checked against its published checksum, and only then renamed into place, so
//! a half-written or tampered file is never mistaken for data. On any failure
//! (transport error, HTTP status, connection cut, checksum mismatch) the next
//! mirror is tried; when all fail the error lists every URL and why.
//!
//! Checksums:
//! - MNIST: the SHA-256 of each file's **decompressed** bytes. Mirrors have
//!   re-compressed the files over the years, so the `.gz` bytes differ while
//!   the IDX content is the original; hashing after gunzip accepts any faithful
//!   copy and nothing else.
//! - Fashion-MNIST: the MD5 of each `.gz` file as published in the project's
//!   README (zalandoresearch/fashion-mnist). We know of no published SHA-256 for
//!   it, so the MD5 of the exact compressed file is the check.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::error::{MirrorAttempt, MnistError, Result};
use crate::idx::{io_error, maybe_gunzip};
use crate::mnist::{locate, Dataset, Located, Mnist};

/// MNIST mirrors, tried in order: the ones torchvision and TensorFlow Datasets use.
pub const MNIST_MIRRORS: [&str; 3] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
];

/// Fashion-MNIST's official mirror (the one its README and torchvision use).
pub const FASHION_MNIST_MIRRORS: [&str; 1] =
    ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"];

/// How a downloaded file is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    /// SHA-256 (lowercase hex) of the bytes after gunzip; robust to re-compression.
    Sha256Decompressed(String),
    /// MD5 (lowercase hex) of the file exactly as served.
    Md5(String),
}

impl Checksum {
    fn algorithm(&self) -> &'static str {
        match self {
            Checksum::Sha256Decompressed(_) => "SHA-256 of the decompressed bytes",
            Checksum::Md5(_) => "MD5",
        }
    }

    fn expected(&self) -> &str {
        match self {
            Checksum::Sha256Decompressed(hex) | Checksum::Md5(hex) => hex,
        }
    }
}

/// A file to download: its name on the mirrors and its checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// Name on the mirror and on disk, e.g. `train-images-idx3-ubyte.gz`.
    pub name: String,
    /// The published checksum it must match.
    pub checksum: Checksum,
}

impl RemoteFile {
    fn new(name: &str, checksum: Checksum) -> RemoteFile {
        RemoteFile {
            name: name.to_string(),
            checksum,
        }
    }
}

/// The four files of `dataset` with their published checksums.
pub fn remote_files(dataset: Dataset) -> Vec<RemoteFile> {
    let sha = |hex: &str| Checksum::Sha256Decompressed(hex.to_string());
    let md5 = |hex: &str| Checksum::Md5(hex.to_string());
    match dataset {
        Dataset::Mnist => vec![
            RemoteFile::new(
                "train-images-idx3-ubyte.gz",
                sha("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
            ),
            RemoteFile::new(
                "train-labels-idx1-ubyte.gz",
                sha("65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
            ),
            RemoteFile::new(
                "t10k-images-idx3-ubyte.gz",
                sha("0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
            ),
            RemoteFile::new(
                "t10k-labels-idx1-ubyte.gz",
                sha("ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
            ),
        ],
        Dataset::FashionMnist => vec![
            RemoteFile::new(
                "train-images-idx3-ubyte.gz",
                md5("8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            ),
            RemoteFile::new(
                "train-labels-idx1-ubyte.gz",
                md5("25c81989df183df01b3e8a0aad5dffbe"),
            ),
            RemoteFile::new(
                "t10k-images-idx3-ubyte.gz",
                md5("bef4ecab320f06d8554ea6380940ec79"),
            ),
            RemoteFile::new(
                "t10k-labels-idx1-ubyte.gz",
                md5("bb300cfdad3c16e7a12a480ee83cd310"),
            ),
        ],
    }
}

/// Fetches files from a list of mirrors into a directory, verifying each.
///
/// ```no_run
/// use ember_mnist::download::Downloader;
/// use ember_mnist::Dataset;
///
/// // The public mirrors, or your own copy with `.base_url("https://example.org/mnist/")`.
/// let located = Downloader::new(Dataset::Mnist).fetch_into("data/mnist")?;
/// println!("MNIST is in {}", located.dir.display());
/// # Ok::<(), ember_mnist::MnistError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Downloader {
    dataset: Dataset,
    mirrors: Vec<String>,
    files: Vec<RemoteFile>,
    progress: bool,
    timeout: Duration,
}

impl Downloader {
    /// The public mirrors and published checksums of `dataset`, with a progress bar.
    pub fn new(dataset: Dataset) -> Downloader {
        let mirrors: &[&str] = match dataset {
            Dataset::Mnist => &MNIST_MIRRORS,
            Dataset::FashionMnist => &FASHION_MNIST_MIRRORS,
        };
        Downloader {
            dataset,
            mirrors: mirrors.iter().map(|m| m.to_string()).collect(),
            files: remote_files(dataset),
            progress: true,
            timeout: Duration::from_secs(30),
        }
    }

    /// Use only this base URL (a mirror of your own, or a local server).
    pub fn base_url(self, url: impl Into<String>) -> Downloader {
        self.mirrors(vec![url.into()])
    }

    /// Use these base URLs, tried in order. A missing trailing `/` is added.
    pub fn mirrors(mut self, urls: Vec<String>) -> Downloader {
        self.mirrors = urls
            .into_iter()
            .map(|u| if u.ends_with('/') { u } else { format!("{u}/") })
            .collect();
        self
    }

    /// Replace the list of files (for other IDX sets, or tests).
    pub fn files(mut self, files: Vec<RemoteFile>) -> Downloader {
        self.files = files;
        self
    }

    /// Show (default) or hide the progress bar. It is hidden anyway when stderr is not a terminal.
    pub fn progress(mut self, show: bool) -> Downloader {
        self.progress = show;
        self
    }

    /// Connect and per-read timeout (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Downloader {
        self.timeout = timeout;
        self
    }

    /// Fetches every file into `dir` (created if needed), then locates the set there.
    ///
    /// Files already present with the right checksum are not downloaded again.
    pub fn fetch_into(&self, dir: impl AsRef<Path>) -> Result<Located> {
        let dir = dir.as_ref();
        for file in &self.files {
            self.fetch(file, dir)?;
        }
        locate(self.dataset, Some(dir))
    }

    /// Fetches one file into `dir`; returns its path.
    pub fn fetch(&self, file: &RemoteFile, dir: &Path) -> Result<PathBuf> {
        let dest = dir.join(&file.name);
        if dest.is_file() && verify_file(&dest, &file.checksum).is_ok() {
            return Ok(dest);
        }
        fs::create_dir_all(dir).map_err(|source| MnistError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        // Dot-prefixed and pid-suffixed: never picked up by `locate`, never shared by two processes.
        let part = dir.join(format!(".{}.part-{}", file.name, std::process::id()));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(self.timeout))
            .timeout_per_read(Some(self.timeout))
            // A 404 is a reason to try the next mirror, read from the status below.
            .http_status_as_error(false)
            .build()
            .into();
        let mut attempts = Vec::new();
        for mirror in &self.mirrors {
            let url = format!("{mirror}{}", file.name);
            let outcome = self
                .get(&agent, &url, &part)
                .and_then(|()| verify_file(&part, &file.checksum).map_err(|e| e.to_string()));
            match outcome {
                Ok(()) => {
                    fs::rename(&part, &dest).map_err(|source| MnistError::Io {
                        path: dest.clone(),
                        source,
                    })?;
                    return Ok(dest);
                }
                Err(reason) => {
                    let _ = fs::remove_file(&part);
                    attempts.push(MirrorAttempt { url, reason });
                }
            }
        }
        Err(MnistError::DownloadFailed {
            file: file.name.clone(),
            attempts,
        })
    }

    /// Streams `url` into `part`; the error is the reason, for the attempt list.
    fn get(&self, agent: &ureq::Agent, url: &str, part: &Path) -> std::result::Result<(), String> {
        let response = agent.get(url).call().map_err(|e| {
            // ureq's Display of a failed call names the error; the URL is in the attempt.
            let mut reason = format!("transport error: {e}");
            if let Some(source) = std::error::Error::source(&e) {
                reason = format!("{reason}: {source}");
            }
            reason
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!(
                "HTTP {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            ));
        }
        let length = response
            .headers()
            .get("Content-Length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let bar = self.progress_bar(length, url);
        let file =
            File::create(part).map_err(|e| format!("cannot create {}: {e}", part.display()))?;
        let mut out = BufWriter::new(file);
        let mut body = bar.wrap_read(response.into_body().into_reader());
        let written = io::copy(&mut body, &mut out)
            .map_err(|e| format!("connection failed mid-body: {e}"))?;
        out.flush()
            .and_then(|()| out.get_ref().sync_all())
            .map_err(|e| format!("cannot write {}: {e}", part.display()))?;
        bar.finish_and_clear();
        match length {
            Some(n) if n != written => Err(format!("body ended after {written} of {n} bytes")),
            _ => Ok(()),
        }
    }

    fn progress_bar(&self, length: Option<u64>, url: &str) -> indicatif::ProgressBar {
        use indicatif::{ProgressBar, ProgressStyle};
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = match length {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        };
        let style = ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(url.to_string());
        bar
    }
}

/// Fetches `dataset` from its public mirrors into `dir`, with a progress bar.
///
/// Shorthand for `Downloader::new(dataset).fetch_into(dir)`.
pub fn download(dataset: Dataset, dir: impl AsRef<Path>) -> Result<Located> {
    Downloader::new(dataset).fetch_into(dir)
}

impl Mnist {
    /// Loads `dataset` as [`Mnist::load`] does, downloading it from the public
    /// mirrors first if it is nowhere to be found.
    ///
    /// Shorthand for `Downloader::new(dataset).load_or_fetch(explicit_dir)`;
    /// see [`Downloader::load_or_fetch`].
    pub fn load_or_download(dataset: Dataset, explicit_dir: Option<&Path>) -> Result<Mnist> {
        Downloader::new(dataset).load_or_fetch(explicit_dir)
    }
}

impl Downloader {
    /// Finds and loads the data set ([`locate`]); if it is not found, fetches it and loads that.
    ///
    /// The download goes to the first place [`locate`] looks: `explicit_dir`,
    /// else the dataset's environment variable, else [`Dataset::default_dir`].
    /// If that fails too (no network, say), [`MnistError::Unavailable`] says both
    /// where the files were looked for and why each mirror failed, so the user
    /// can put them there by hand.
    pub fn load_or_fetch(&self, explicit_dir: Option<&Path>) -> Result<Mnist> {
        let not_found = match locate(self.dataset, explicit_dir) {
            Ok(located) => return Mnist::from_located(&located),
            Err(e @ MnistError::NotFound { .. }) => e,
            Err(other) => return Err(other),
        };
        let dir = explicit_dir
            .map(Path::to_path_buf)
            .or_else(|| {
                std::env::var_os(self.dataset.env_var())
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| self.dataset.default_dir().to_path_buf());
        match self.fetch_into(&dir) {
            Ok(located) => Mnist::from_located(&located),
            Err(download) => Err(MnistError::Unavailable {
                not_found: Box::new(not_found),
                dir,
                download: Box::new(download),
            }),
        }
    }
}

/// Checks a file on disk against a checksum.
///
/// For [`Checksum::Sha256Decompressed`] the file may be gzip or raw (the
/// digest is of the IDX bytes either way), so it also verifies unpacked copies.
pub fn verify_file(path: &Path, checksum: &Checksum) -> Result<()> {
    let io_err = |source| MnistError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let actual = match checksum {
        Checksum::Md5(_) => hex_digest::<Md5>(file).map_err(io_err)?,
        Checksum::Sha256Decompressed(_) => {
            let reader = maybe_gunzip(io::BufReader::new(file)).map_err(io_err)?;
            hex_digest::<Sha256>(reader).map_err(|e| io_error(path, e))?
        }
    };
    let expected = checksum.expected().to_ascii_lowercase();
    if actual == expected {
        Ok(())
    } else {
        Err(MnistError::ChecksumMismatch {
            path: path.to_path_buf(),
            algorithm: checksum.algorithm(),
            expected,
            actual,
        })
    }
}

/// Hashes a whole stream, returning lowercase hex.
fn hex_digest<D: Digest>(mut reader: impl Read) -> io::Result<String> {
    let mut hasher = D::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => hasher.update(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
