//! Checkpoints: model state, optimizer state and the training position in
//! one safetensors file that PyTorch can read.
//!
//! ## The file
//! A standard [safetensors] file of little-endian tensors, F32 except for
//! counts, which are I64 scalars (shape `[]`):
//! - the model's [`Module::state`] (parameters, then buffers) under their
//!   PyTorch `state_dict` names, layouts and dtypes (`"0.weight"` is
//!   `(out, in)` F32; batch norm's `num_batches_tracked`, a
//!   [`Members::count`](crate::Members::count), is an I64 scalar, as PyTorch
//!   keeps it);
//! - the optimizer's [`Optimizer::state`] under the prefix
//!   [`OPTIMIZER_PREFIX`] (`"optimizer.lr"`, `"optimizer.0.weight.exp_avg"`,
//!   …), each parameter's step count as an I64 scalar
//!   (`"optimizer.0.weight.step"`; `int(t)` in Python);
//! - in the header's `__metadata__` string map: `format` = `"ember"`,
//!   `format_version`, `seed`, `epoch`, `step`, each saved RNG as
//!   `rng.<name>.seed` (64 hex digits), `rng.<name>.stream` and
//!   `rng.<name>.word_pos`, user entries as `extra.<key>`, and checksums:
//!   `sha256.<tensor name>` for each tensor's bytes (I64 ones included) and
//!   `sha256.__metadata__` for all the other entries (the position).
//!
//! Tensors and header keys are written in sorted order, so two saves of the
//! same state are the same bytes (`sha256sum` can compare checkpoints).
//!
//! In Python, `safetensors.torch.load_file(path)` gives every tensor; drop
//! the `optimizer.` entries and hand the rest to `model.load_state_dict`
//! (`docs/check_pytorch_load.py` shows it). [`save_weights`] writes the
//! model alone.
//!
//! The other way, [`load_weights`] reads a PyTorch
//! `safetensors.torch.save_file(model.state_dict(), path)` file as it is:
//! F32 parameters and buffers, and int64 `num_batches_tracked` (no
//! `.float()` needed). Any other dtype (F16, F64, an integer where a float
//! belongs) is refused with [`CheckpointError::Dtype`], never converted; a
//! negative count, or one beyond 2²⁴ (what an f32 buffer holds exactly), is
//! [`CheckpointError::Count`].
//!
//! ## Older files
//! Files written before counts were integers still load, exactly: there
//! `num_batches_tracked` is an F32 scalar (a whole number is required) and
//! each optimizer step count an F32 tensor of shape `[2]` holding two 24-bit
//! halves (high, low); both are read as before. Saving always writes the
//! integer form.
//!
//! ## Safety of saving and loading
//! Saving is atomic: the bytes go to a temporary file in the same folder,
//! which is flushed, synced and renamed over the target (and the folder is
//! synced on Unix), so a crash mid-save leaves the previous checkpoint whole.
//!
//! Loading checks before it believes: the header length against the file
//! size (so a hostile length cannot make it allocate), the header itself
//! (through the `safetensors` crate's validation), then every name, dtype
//! and shape against the model and optimizer. Only when everything matches
//! is anything written, so a failed load leaves model and optimizer as
//! they were. Errors are [`CheckpointError`]s naming the file and the tensor.
//!
//! Loading also detects damage the format cannot see (a flipped bit in a
//! weight, a changed epoch): every tensor and the metadata are checked
//! against the SHA-256 checksums written at save, and a mismatch is
//! [`CheckpointError::Damaged`], naming the file and the tensor. A file
//! without checksums (saved by an Ember before they existed, or by PyTorch)
//! still loads, and the load says so: [`Integrity::Unverified`].
//!
//! ```
//! use ember_layers::checkpoint::{load_checkpoint, save_checkpoint, Integrity, RngState, TrainingState};
//! use ember_layers::optim::{Adam, AdamConfig, Optimizer};
//! use ember_layers::{Linear, Module, ReLU, Sequential};
//! use rand::{RngExt, SeedableRng};
//! use rand_chacha::ChaCha8Rng;
//!
//! let mut rng = ChaCha8Rng::seed_from_u64(7);
//! let model = Sequential::new().add(Linear::new(3, 4, &mut rng)).add(ReLU).add(Linear::new(4, 2, &mut rng));
//! let opt = Adam::new(model.parameters(), AdamConfig::default());
//! let mut position = TrainingState { epoch: 2, step: 100, ..Default::default() };
//! position.rngs.insert("shuffle".into(), RngState::of(&rng));
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("run.safetensors");
//! save_checkpoint(&path, &model, Some(&opt), &position).unwrap();
//!
//! let mut fresh_rng = ChaCha8Rng::seed_from_u64(99);
//! let fresh = Sequential::new().add(Linear::new(3, 4, &mut fresh_rng)).add(ReLU).add(Linear::new(4, 2, &mut fresh_rng));
//! let mut fresh_opt = Adam::new(fresh.parameters(), AdamConfig::default());
//! let loaded = load_checkpoint(&path, &fresh, Some(&mut fresh_opt)).unwrap();
//! assert_eq!(loaded.integrity, Integrity::Verified);
//! let loaded = loaded.training;
//! assert_eq!(loaded, position);
//! assert_eq!(fresh.parameters()[0].var.value().to_vec(), model.parameters()[0].var.value().to_vec());
//! let mut resumed = loaded.rngs["shuffle"].to_rng();
//! assert_eq!(resumed.random::<u64>(), rng.random::<u64>());
//! ```
//!
//! [safetensors]: https://huggingface.co/docs/safetensors
mod checksum;
mod file;
mod metadata;
mod position;

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};

use ember_autograd::Var;
use ember_tensor::Tensor;
use safetensors::Dtype;

use crate::optim::{Optimizer, StateError, StateValue};
use crate::{Module, Named};

use file::{decode, decode_count, parse, read_file, write_file, Entry, Stored, TensorMeta};
use metadata::{format_metadata, parse_training, training_metadata};
pub use position::{RngState, TrainingState};

/// The version written in `__metadata__["format_version"]`; loading refuses
/// newer versions. Version 2 stores counts (step counts,
/// `num_batches_tracked`) as I64 scalars; version 1 stored them as F32,
/// and is still read (see [Older files](self#older-files)). An Ember from
/// before version 2 refuses these files as written by a newer Ember.
pub const FORMAT_VERSION: u32 = 2;

/// Names of optimizer state tensors start with this.
pub const OPTIMIZER_PREFIX: &str = "optimizer.";

/// What a load could vouch for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Integrity {
    /// Every tensor and the training position matched the SHA-256
    /// checksums written when the file was saved.
    Verified,
    /// The file carries no checksums (saved by an Ember before they existed,
    /// or by another tool such as PyTorch): it was loaded as it is, and
    /// nothing was verified.
    Unverified,
}

/// What [`load_checkpoint`] restored besides the tensors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// The training position saved with the tensors.
    pub training: TrainingState,
    /// Whether the contents were checked against the file's checksums.
    pub integrity: Integrity,
}

/// Why a checkpoint could not be saved or loaded. Every message starts with
/// the file's path.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file ends before the data its header describes.
    #[error("{}: truncated file: {detail}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What is short.
        detail: String,
    },
    /// The header is not a valid safetensors header.
    #[error("{}: corrupt safetensors header: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The model has a tensor the file lacks.
    #[error("{}: tensor `{name}` is missing from the file", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
    },
    /// The file has a tensor the model lacks.
    #[error("{}: unexpected tensor `{name}` (the model has no such parameter or buffer)", path.display())]
    Unexpected {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
    },
    /// A tensor's shape differs from the model's.
    #[error("{}: tensor `{name}` has shape {found:?} but the model expects {expected:?}", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The model's shape.
        expected: Vec<usize>,
        /// The file's shape.
        found: Vec<usize>,
    },
    /// A tensor is not stored with the dtype it needs (F32, or I64 for a
    /// count).
    #[error("{}: tensor `{name}` has dtype {found}, expected {expected}", path.display())]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The dtype needed (`"F32"`, `"I64"`).
        expected: String,
        /// The dtype found.
        found: String,
    },
    /// A count (a step count, `num_batches_tracked`) is not a valid count:
    /// negative, fractional, or beyond what its f32 buffer holds exactly.
    #[error("{}: tensor `{name}` is not a valid count: {reason}", path.display())]
    Count {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor (or, as `__metadata__`, the training position) does not
    /// match the checksum the file recorded when saved: the file is damaged.
    #[error("{}: `{name}` is damaged: {reason}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// The tensor, or `__metadata__`.
        name: String,
        /// What does not match.
        reason: String,
    },
    /// A metadata entry is malformed or unsupported.
    #[error("{}: metadata `{key}` = {value:?}: {reason}", path.display())]
    Metadata {
        /// The file.
        path: PathBuf,
        /// The entry.
        key: String,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// The optimizer state in the file does not fit the optimizer.
    #[error("{}: {source}", path.display())]
    Optimizer {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: StateError,
    },
    /// The model's state cannot be saved under these names.
    #[error("{}: cannot save tensor `{name}`: {reason}", path.display())]
    Name {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// Saves the model's state, the optimizer's state (if given) and the
/// training position to `path`, atomically (see the [module docs](self)).
///
/// # Errors
/// [`CheckpointError::Name`] if two tensors share a name or a model tensor
/// starts with [`OPTIMIZER_PREFIX`]; [`CheckpointError::Io`] if writing fails
/// (the previous file at `path`, if any, is then untouched).
pub fn save_checkpoint(
    path: impl AsRef<Path>,
    model: &(impl Module + ?Sized),
    optimizer: Option<&dyn Optimizer>,
    training: &TrainingState,
) -> Result<(), CheckpointError> {
    let path = path.as_ref();
    let mut tensors = model_tensors(path, model)?;
    if let Some(opt) = optimizer {
        for (name, value) in opt.state() {
            let stored = match value {
                StateValue::Tensor(t) => Stored::F32(t),
                StateValue::Count(n) => Stored::I64(i64::try_from(n).unwrap_or(i64::MAX)),
            };
            tensors.push((format!("{OPTIMIZER_PREFIX}{name}"), stored));
        }
    }
    write_file(path, tensors, training_metadata(training))
}

/// Saves only the model's state (with format metadata): the file to hand to
/// PyTorch's `load_state_dict` as it is.
///
/// # Errors
/// As [`save_checkpoint`].
pub fn save_weights(
    path: impl AsRef<Path>,
    model: &(impl Module + ?Sized),
) -> Result<(), CheckpointError> {
    let path = path.as_ref();
    let tensors = model_tensors(path, model)?;
    write_file(path, tensors, format_metadata())
}

/// Loads a checkpoint written by [`save_checkpoint`] into `model` and, if
/// given, `optimizer`, and returns the training position and whether the
/// checksums vouched for it all. A file without Ember metadata (say,
/// written by PyTorch) loads with position zero, [`Integrity::Unverified`].
///
/// # Errors
/// A [`CheckpointError`] naming the file and, where it applies, the tensor:
/// unreadable, truncated or corrupt file; a tensor or position that does not
/// match its checksum; missing, unexpected or misshapen tensors, or ones of
/// the wrong dtype (F32, or I64 for counts); invalid counts;
/// malformed metadata; optimizer state that does not fit.
/// On error neither model nor optimizer has changed.
pub fn load_checkpoint(
    path: impl AsRef<Path>,
    model: &(impl Module + ?Sized),
    optimizer: Option<&mut dyn Optimizer>,
) -> Result<Loaded, CheckpointError> {
    let path = path.as_ref();
    let bytes = read_file(path)?;
    let file = parse(path, &bytes)?;
    let integrity = checksum::verify(path, file.metadata.as_ref(), &file.tensors)?;
    let training = parse_training(path, file.metadata.as_ref())?;
    let staged = stage_model(path, model, &file.tensors)?;
    if let Some(opt) = optimizer {
        let mut state = Vec::new();
        for (name, (info, data)) in &file.tensors {
            if let Some(short) = name.strip_prefix(OPTIMIZER_PREFIX) {
                // I64: a step count; F32: everything else (and, in older
                // files, step counts as two halves, which the optimizer reads).
                let value = if info.dtype == Dtype::I64 {
                    StateValue::Count(decode_count(path, name, info, data)?)
                } else {
                    StateValue::Tensor(decode(path, name, info, data)?)
                };
                state.push((short.to_string(), value));
            }
        }
        opt.load_state(state)
            .map_err(|source| CheckpointError::Optimizer {
                path: path.to_path_buf(),
                source,
            })?;
    }
    for (var, t) in staged {
        var.set_value(t);
    }
    Ok(Loaded {
        training,
        integrity,
    })
}

/// Loads only the model's state from a file written by [`save_weights`],
/// [`save_checkpoint`] (optimizer entries are ignored) or PyTorch's
/// `safetensors.torch.save_file(model.state_dict(), path)`.
///
/// Every tensor in the file is checked against its checksum, if the file
/// has them; the result says whether it had.
///
/// # Errors
/// As [`load_checkpoint`], without the optimizer and metadata cases.
pub fn load_weights(
    path: impl AsRef<Path>,
    model: &(impl Module + ?Sized),
) -> Result<Integrity, CheckpointError> {
    let path = path.as_ref();
    let bytes = read_file(path)?;
    let file = parse(path, &bytes)?;
    let integrity = checksum::verify(path, file.metadata.as_ref(), &file.tensors)?;
    for (var, t) in stage_model(path, model, &file.tensors)? {
        var.set_value(t);
    }
    Ok(integrity)
}
// ------------------------------------------------- model state, checked --

/// The largest count an f32 buffer holds exactly (2²⁴).
const MAX_COUNT: u64 = 1 << 24;

/// A count buffer's value as a whole number, if it is one within
/// [`MAX_COUNT`].
fn count_of(value: f32) -> Result<u64, String> {
    if value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= MAX_COUNT as f32 {
        Ok(value as u64)
    } else {
        Err(format!(
            "{value} is not a whole number from 0 to 2^24 = {MAX_COUNT}"
        ))
    }
}

/// The model's state as named tensors (counts as I64), refusing names a
/// file can't hold.
fn model_tensors(
    path: &Path,
    model: &(impl Module + ?Sized),
) -> Result<Vec<(String, Stored)>, CheckpointError> {
    let counts: HashSet<String> = model.counts().into_iter().map(|c| c.name).collect();
    let state = model.state();
    let mut seen = HashSet::with_capacity(state.len());
    let mut out = Vec::with_capacity(state.len());
    for Named { name, var } in state {
        let reason = if !seen.insert(name.clone()) {
            Some("two tensors of the model have this name")
        } else if name.starts_with(OPTIMIZER_PREFIX) {
            Some("the prefix `optimizer.` is reserved for optimizer state")
        } else if name == "__metadata__" {
            Some("`__metadata__` is reserved by the safetensors format")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(CheckpointError::Name {
                path: path.to_path_buf(),
                name,
                reason: reason.to_string(),
            });
        }
        let stored = if counts.contains(&name) {
            let value = var.value();
            let n = match value.shape() {
                [] => count_of(value.item()),
                shape => Err(format!("a count must be a scalar, not of shape {shape:?}")),
            };
            match n {
                Ok(n) => Stored::I64(n as i64),
                Err(reason) => {
                    return Err(CheckpointError::Count {
                        path: path.to_path_buf(),
                        name,
                        reason,
                    })
                }
            }
        } else {
            Stored::F32(var.value())
        };
        out.push((name, stored));
    }
    Ok(out)
}
/// Checks the file's model tensors against the model and decodes them, in
/// the model's order; nothing is assigned yet.
fn stage_model(
    path: &Path,
    model: &(impl Module + ?Sized),
    tensors: &BTreeMap<String, Entry<'_>>,
) -> Result<Vec<(Var, Tensor)>, CheckpointError> {
    let state = model.state();
    let wanted: HashSet<&str> = state.iter().map(|p| p.name.as_str()).collect();
    for Named { name, .. } in &state {
        if !tensors.contains_key(name) {
            return Err(CheckpointError::Missing {
                path: path.to_path_buf(),
                name: name.clone(),
            });
        }
    }
    if let Some(name) = tensors
        .keys()
        .find(|n| !n.starts_with(OPTIMIZER_PREFIX) && !wanted.contains(n.as_str()))
    {
        return Err(CheckpointError::Unexpected {
            path: path.to_path_buf(),
            name: name.clone(),
        });
    }
    let counts: HashSet<String> = model.counts().into_iter().map(|c| c.name).collect();
    let mut staged = Vec::with_capacity(state.len());
    for Named { name, var } in state {
        let (meta, data) = &tensors[&name];
        let expected = var.shape();
        if counts.contains(&name) {
            let t = stage_count(path, &name, &expected, meta, data)?;
            staged.push((var, t));
            continue;
        }
        if meta.dtype == Dtype::F32 && meta.shape != expected {
            return Err(CheckpointError::Shape {
                path: path.to_path_buf(),
                name,
                expected,
                found: meta.shape.clone(),
            });
        }
        let t = decode(path, &name, meta, data)?;
        staged.push((var, t));
    }
    Ok(staged)
}

/// A count buffer's new value: an I64 scalar, or in older files an F32
/// scalar holding a whole number; within [`MAX_COUNT`] either way.
fn stage_count(
    path: &Path,
    name: &str,
    expected: &[usize],
    meta: &TensorMeta,
    data: &[u8],
) -> Result<Tensor, CheckpointError> {
    let invalid = |reason: String| CheckpointError::Count {
        path: path.to_path_buf(),
        name: name.to_string(),
        reason,
    };
    let n = match meta.dtype {
        Dtype::F32 => {
            if meta.shape != expected {
                return Err(CheckpointError::Shape {
                    path: path.to_path_buf(),
                    name: name.to_string(),
                    expected: expected.to_vec(),
                    found: meta.shape.clone(),
                });
            }
            let t = decode(path, name, meta, data)?;
            count_of(t.to_vec()[0]).map_err(invalid)?
        }
        _ => {
            let n = decode_count(path, name, meta, data)?;
            if n > MAX_COUNT {
                return Err(invalid(format!(
                    "{n} is beyond 2^24 = {MAX_COUNT}, the largest count an f32 buffer holds exactly"
                )));
            }
            n
        }
    };
    Ok(Tensor::from_vec(vec![n as f32], expected))
}
