//! The one error type of this crate: every variant names the file and the fault.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while finding, downloading or reading an IDX file.
///
/// Each variant carries the path (or URL / file name) it is about, so a message
/// such as `data/mnist/train-labels-idx1-ubyte.gz: label 10 at index 7 is out of
/// range 0..=9` can be acted on without a debugger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MnistError {
    /// The operating system failed to open or read the file.
    #[error("{path}: I/O error: {source}")]
    Io {
        /// The file being read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The file is gzip (by its magic bytes) but the compressed stream is broken.
    #[error("{path}: corrupt gzip stream: {source}")]
    CorruptGzip {
        /// The file being read.
        path: PathBuf,
        /// What the decompressor reported.
        #[source]
        source: io::Error,
    },

    /// The first four bytes are not `0x00 0x00 <type> <ndims>`.
    #[error("{path}: bad IDX magic {found:02x?}: expected two zero bytes, a type code and a dimension count (1..=255)")]
    BadMagic {
        /// The file being read.
        path: PathBuf,
        /// The four bytes found.
        found: [u8; 4],
    },

    /// The type code of the magic is not one of the six IDX element types.
    #[error("{path}: unsupported IDX element type code 0x{code:02x} (known: 0x08 u8, 0x09 i8, 0x0b i16, 0x0c i32, 0x0d f32, 0x0e f64)")]
    UnsupportedType {
        /// The file being read.
        path: PathBuf,
        /// The type byte found.
        code: u8,
    },

    /// The file ended before the header or the payload was complete.
    #[error("{path}: truncated {part}: expected {expected} bytes, got {got}")]
    Truncated {
        /// The file being read.
        path: PathBuf,
        /// `"header"` or `"payload"`.
        part: &'static str,
        /// Bytes the header promises for this part.
        expected: u64,
        /// Bytes actually present.
        got: u64,
    },

    /// Bytes remain after the payload the header describes.
    #[error("{path}: {extra} trailing bytes after the {expected}-byte payload")]
    TrailingBytes {
        /// The file being read.
        path: PathBuf,
        /// The payload size the header describes.
        expected: u64,
        /// How many bytes follow it.
        extra: u64,
    },

    /// The product of the dimensions times the element size does not fit in memory addresses.
    #[error("{path}: payload size overflows: dimensions {dims:?} of {element_size}-byte elements")]
    SizeOverflow {
        /// The file being read.
        path: PathBuf,
        /// The dimensions in the header.
        dims: Vec<u32>,
        /// Size of one element in bytes.
        element_size: usize,
    },

    /// The file is valid IDX but holds another element type than the one required.
    #[error("{path}: wrong element type: expected {expected}, found {found}")]
    WrongType {
        /// The file being read.
        path: PathBuf,
        /// The type required (for MNIST, `u8`).
        expected: &'static str,
        /// The type in the header.
        found: &'static str,
    },

    /// The dimensions are not the ones required (for MNIST images, `[n, 28, 28]`).
    #[error("{path}: dimension mismatch: expected {expected}, found {found:?}")]
    DimensionMismatch {
        /// The file being read.
        path: PathBuf,
        /// The shape required, in words.
        expected: String,
        /// The dimensions in the header.
        found: Vec<u32>,
    },

    /// A label is outside `0..=max`.
    #[error("{path}: label {value} at index {index} is out of range 0..={max}")]
    LabelOutOfRange {
        /// The label file.
        path: PathBuf,
        /// Position of the first bad label.
        index: usize,
        /// The bad label.
        value: u8,
        /// The largest valid label (9 for MNIST).
        max: u8,
    },

    /// The image and label files describe different numbers of examples.
    #[error("count mismatch: {images_path} holds {images} images but {labels_path} holds {labels} labels")]
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// Number of images.
        images: usize,
        /// The label file.
        labels_path: PathBuf,
        /// Number of labels.
        labels: usize,
    },

    /// A downloaded or local file does not have its published checksum.
    #[error("{path}: {algorithm} checksum mismatch: expected {expected}, got {actual}")]
    ChecksumMismatch {
        /// The file (or URL) checked.
        path: PathBuf,
        /// `"SHA-256 of the decompressed bytes"` or `"MD5"`.
        algorithm: &'static str,
        /// The published digest, in hex.
        expected: String,
        /// The digest computed, in hex.
        actual: String,
    },

    /// No mirror delivered a valid copy of the file.
    #[error("download of {file} failed on every mirror: {}", DisplayAttempts(.attempts))]
    DownloadFailed {
        /// The remote file name, e.g. `train-images-idx3-ubyte.gz`.
        file: String,
        /// Each URL tried, in order, and why it failed.
        attempts: Vec<MirrorAttempt>,
    },

    /// None of the candidate locations holds the data set.
    #[error("{dataset} not found: {}", DisplaySearch(.searched))]
    NotFound {
        /// `"MNIST"` or `"Fashion-MNIST"`.
        dataset: &'static str,
        /// Every directory searched, with the file names missing from it.
        searched: Vec<SearchedDir>,
    },

    /// The data set was not found, and downloading it failed as well.
    #[error("{not_found}; downloading it into {dir} failed too: {download}")]
    Unavailable {
        /// The [`MnistError::NotFound`] listing where the files were looked for.
        not_found: Box<MnistError>,
        /// Where the download was to go.
        dir: PathBuf,
        /// Why the download failed (usually [`MnistError::DownloadFailed`]).
        download: Box<MnistError>,
    },
}

/// One failed attempt to download a file from one mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorAttempt {
    /// The full URL requested.
    pub url: String,
    /// Why it failed (HTTP status, transport error, cut connection, checksum).
    pub reason: String,
}

/// A directory searched for a data set, and the files it lacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchedDir {
    /// The directory.
    pub dir: PathBuf,
    /// Where this candidate came from: `"explicit path"`, `"$MNIST_DIR"`, ...
    pub origin: String,
    /// For each missing file, every name tried (raw, `.gz`, dotted variants).
    pub missing: Vec<Vec<String>>,
}

/// `Result` with [`MnistError`].
pub type Result<T, E = MnistError> = std::result::Result<T, E>;

struct DisplayAttempts<'a>(&'a [MirrorAttempt]);

impl fmt::Display for DisplayAttempts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(f, "no mirror configured");
        }
        for (i, attempt) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "; " };
            write!(f, "{sep}{} ({})", attempt.url, attempt.reason)?;
        }
        Ok(())
    }
}

struct DisplaySearch<'a>(&'a [SearchedDir]);

impl fmt::Display for DisplaySearch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(
                f,
                "no directory to search (give a path, or set the environment variable)"
            );
        }
        for (i, searched) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "; " };
            write!(
                f,
                "{sep}in {} ({}) missing ",
                searched.dir.display(),
                searched.origin
            )?;
            for (j, names) in searched.missing.iter().enumerate() {
                let sep = if j == 0 { "" } else { ", " };
                write!(f, "{sep}{}", names.join(" | "))?;
            }
        }
        Ok(())
    }
}
