//! The safetensors file on disk: atomic writes, reads that check sizes
//! before allocating, parsing with typed errors.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use ember_tensor::Tensor;
use safetensors::tensor::Metadata;
use safetensors::{Dtype, SafeTensorError, SafeTensors};
use serde_json::{json, Value};

use super::{checksum, CheckpointError};

/// The largest header accepted (the `safetensors` crate's own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;

// ---------------------------------------------------------------- saving --

/// A tensor as it goes into the file.
pub(super) enum Stored {
    /// Real values, written as F32.
    F32(Tensor),
    /// A count, written as an I64 scalar (shape `[]`, as PyTorch keeps
    /// `num_batches_tracked` and as `int(t)` reads it).
    I64(i64),
}

impl Stored {
    fn dtype(&self) -> &'static str {
        match self {
            Stored::F32(_) => "F32",
            Stored::I64(_) => "I64",
        }
    }

    fn shape(&self) -> Vec<usize> {
        match self {
            Stored::F32(t) => t.shape().to_vec(),
            Stored::I64(_) => Vec::new(),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Stored::F32(t) => out.extend(t.to_vec().iter().flat_map(|v| v.to_le_bytes())),
            Stored::I64(n) => out.extend_from_slice(&n.to_le_bytes()),
        }
    }
}

/// Serializes and writes atomically.
pub(super) fn write_file(
    path: &Path,
    tensors: Vec<(String, Stored)>,
    metadata: BTreeMap<String, String>,
) -> Result<(), CheckpointError> {
    let bytes = encode(path, tensors, metadata)?;
    write_atomically(path, &bytes).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The safetensors bytes: the header's length (u64, little-endian), the JSON
/// header padded with spaces to a multiple of 8, then every tensor's values
/// (f32 or, for counts, i64), little-endian, in name order. The metadata gains the checksums
/// of every tensor and of itself (see `checksum`).
///
/// Written here rather than by `safetensors::serialize`, which emits the
/// `__metadata__` map in hash-map order, so that two saves of one state were
/// different files. Here every key is in sorted order: equal states give
/// byte-identical files.
fn encode(
    path: &Path,
    mut tensors: Vec<(String, Stored)>,
    mut metadata: BTreeMap<String, String>,
) -> Result<Vec<u8>, CheckpointError> {
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(pair) = tensors.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(CheckpointError::Name {
            path: path.to_path_buf(),
            name: pair[0].0.clone(),
            reason: "two tensors have this name".to_string(),
        });
    }
    let mut data = Vec::new();
    let mut ranges = Vec::with_capacity(tensors.len());
    for (name, tensor) in &tensors {
        let start = data.len();
        tensor.write(&mut data);
        ranges.push((start, data.len()));
        metadata.insert(
            format!("{}{name}", checksum::PREFIX),
            checksum::digest(&data[start..]),
        );
    }
    checksum::seal(&mut metadata);
    let metadata: serde_json::Map<String, Value> = metadata
        .into_iter()
        .map(|(key, value)| (key, Value::String(value)))
        .collect();
    // Inserted in sorted order, so the order is fixed whether `serde_json`
    // keeps insertion order or sorts.
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".to_string(), Value::Object(metadata));
    for ((name, tensor), (start, end)) in tensors.iter().zip(ranges) {
        let entry =
            json!({"dtype": tensor.dtype(), "shape": tensor.shape(), "data_offsets": [start, end]});
        header.insert(name.clone(), entry);
    }
    let offset = data.len();
    let mut header = Value::Object(header).to_string();
    // Aligns the data to 8 bytes, as the safetensors crate does.
    header.extend(std::iter::repeat_n(
        ' ',
        header.len().next_multiple_of(8) - header.len(),
    ));
    let mut bytes = Vec::with_capacity(8 + header.len() + offset);
    bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&data);
    Ok(bytes)
}

/// Temp file in the same folder, write, flush, sync, rename, sync the folder.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(file_name) = path.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path does not name a file",
        ));
    };
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(
        ".{}.{}-{unique}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(bytes)?;
        file.flush()?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        // Best effort: the error that matters is the one returned.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Makes the rename durable: on Unix a directory entry is only on disk once
/// the directory itself is synced.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}
// --------------------------------------------------------------- loading --

/// A tensor's entry in a parsed file: its dtype and shape, and its bytes.
pub(super) type Entry<'a> = (TensorMeta, &'a [u8]);

/// Dtype and shape of a tensor in the file.
pub(super) struct TensorMeta {
    pub(super) dtype: Dtype,
    pub(super) shape: Vec<usize>,
}

/// What a valid file holds.
pub(super) struct Parsed<'a> {
    pub(super) metadata: Option<HashMap<String, String>>,
    pub(super) tensors: BTreeMap<String, Entry<'a>>,
}

/// Reads the whole file after checking that its header length fits in it,
/// so nothing is allocated beyond the file's real size.
pub(super) fn read_file(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    let io_err = |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    };
    let truncated = |detail: String| CheckpointError::Truncated {
        path: path.to_path_buf(),
        detail,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    if len < 8 {
        return Err(truncated(format!(
            "{len} bytes, fewer than the 8-byte header length"
        )));
    }
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix).map_err(io_err)?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > len - 8 {
        return Err(truncated(format!(
            "the header is said to take {header_len} bytes but only {} follow",
            len - 8
        )));
    }
    if header_len > MAX_HEADER_BYTES {
        return Err(CheckpointError::Corrupt {
            path: path.to_path_buf(),
            detail: format!(
                "a header of {header_len} bytes is beyond the {MAX_HEADER_BYTES}-byte limit"
            ),
        });
    }
    let capacity = usize::try_from(len).map_err(|_| truncated("too large".to_string()))?;
    let mut bytes = Vec::with_capacity(capacity);
    bytes.extend_from_slice(&prefix);
    file.take(len - 8).read_to_end(&mut bytes).map_err(io_err)?;
    if bytes.len() as u64 != len {
        return Err(truncated(format!(
            "{} bytes read of {len} (the file changed while being read)",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// Validates the header and indexes the tensors.
pub(super) fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<Parsed<'a>, CheckpointError> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| parse_error(path, bytes, e))?;
    let (_, metadata) =
        SafeTensors::read_metadata(bytes).map_err(|e| parse_error(path, bytes, e))?;
    let tensors = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let meta = TensorMeta {
                dtype: view.dtype(),
                shape: view.shape().to_vec(),
            };
            (name, (meta, view.data()))
        })
        .collect();
    Ok(Parsed {
        metadata: metadata.metadata().clone(),
        tensors,
    })
}

/// Turns the crate's error into ours, telling a short file from a bad header.
fn parse_error(path: &Path, bytes: &[u8], e: SafeTensorError) -> CheckpointError {
    if let SafeTensorError::MetadataIncompleteBuffer = e {
        // The header is valid but its tensors do not end where the file does.
        let header_len = bytes
            .get(..8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_le_bytes) as usize;
        let declared = bytes
            .get(8..8usize.saturating_add(header_len))
            .and_then(|h| serde_json::from_slice::<Metadata>(h).ok())
            .map(|m| 8 + header_len + m.data_len());
        if let Some(declared) = declared {
            let detail = format!(
                "the header describes {declared} bytes, the file has {}",
                bytes.len()
            );
            return if declared > bytes.len() {
                CheckpointError::Truncated {
                    path: path.to_path_buf(),
                    detail,
                }
            } else {
                CheckpointError::Corrupt {
                    path: path.to_path_buf(),
                    detail: format!("trailing bytes after the last tensor ({detail})"),
                }
            };
        }
    }
    CheckpointError::Corrupt {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

/// `Ok` if the tensor `name` is stored as `want`.
fn expect_dtype(
    path: &Path,
    name: &str,
    meta: &TensorMeta,
    want: Dtype,
) -> Result<(), CheckpointError> {
    if meta.dtype == want {
        return Ok(());
    }
    Err(CheckpointError::Dtype {
        path: path.to_path_buf(),
        name: name.to_string(),
        expected: want.to_string(),
        found: meta.dtype.to_string(),
    })
}

/// A count from an I64 scalar's bytes (shape `[]`), after checking dtype,
/// shape and sign.
pub(super) fn decode_count(
    path: &Path,
    name: &str,
    meta: &TensorMeta,
    data: &[u8],
) -> Result<u64, CheckpointError> {
    expect_dtype(path, name, meta, Dtype::I64)?;
    if !meta.shape.is_empty() {
        return Err(CheckpointError::Shape {
            path: path.to_path_buf(),
            name: name.to_string(),
            expected: Vec::new(),
            found: meta.shape.clone(),
        });
    }
    let bytes = <[u8; 8]>::try_from(data).map_err(|_| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        detail: format!("tensor `{name}` has {} bytes for an I64 scalar", data.len()),
    })?;
    let n = i64::from_le_bytes(bytes);
    u64::try_from(n).map_err(|_| CheckpointError::Count {
        path: path.to_path_buf(),
        name: name.to_string(),
        reason: format!("{n} is negative"),
    })
}

/// An F32 tensor from its bytes, after checking dtype and size.
pub(super) fn decode(
    path: &Path,
    name: &str,
    meta: &TensorMeta,
    data: &[u8],
) -> Result<Tensor, CheckpointError> {
    expect_dtype(path, name, meta, Dtype::F32)?;
    // The safetensors crate already checked that the byte count matches the
    // shape; this keeps the decode safe should that ever change.
    let numel = meta.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if numel.and_then(|n| n.checked_mul(4)) != Some(data.len()) {
        return Err(CheckpointError::Corrupt {
            path: path.to_path_buf(),
            detail: format!(
                "tensor `{name}` has {} bytes for shape {:?}",
                data.len(),
                meta.shape
            ),
        });
    }
    // Into a tensor of Ember's own, which starts on a cache line (as the
    // parameter it replaces did: see `Var::parameter`).
    let mut tensor = Tensor::empty(&meta.shape);
    for (value, bytes) in tensor.data_mut().iter_mut().zip(data.chunks_exact(4)) {
        *value = f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    }
    Ok(tensor)
}
