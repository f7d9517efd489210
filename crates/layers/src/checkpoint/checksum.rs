//! Damage detection: a SHA-256 of every tensor's bytes and of the training
//! position, kept in `__metadata__`, written on save and checked on load.
//!
//! - `sha256.<tensor name>`: the digest of that tensor's data bytes;
//! - `sha256.__metadata__`: the digest of every other metadata entry (the
//!   format, the position, RNGs, extras), taken in key order as
//!   `key NUL value NUL`.
//!
//! A file with no `sha256.` entry at all (an Ember file from before they
//! were written, or PyTorch's) loads unverified; in a file with any, every
//! tensor and the metadata must have a digest and match it.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::file::Entry;
use super::{CheckpointError, Integrity};

/// Every checksum key starts with this.
pub(super) const PREFIX: &str = "sha256.";

/// The key of the metadata's own digest (no tensor can be named `__metadata__`).
const METADATA_KEY: &str = "sha256.__metadata__";

/// Lowercase hexadecimal SHA-256 of `bytes`.
pub(super) fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The digest of the metadata entries that are not checksums.
fn metadata_digest<'a>(entries: impl Iterator<Item = (&'a String, &'a String)>) -> String {
    let mut sorted: Vec<(&String, &String)> =
        entries.filter(|(k, _)| !k.starts_with(PREFIX)).collect();
    sorted.sort();
    let mut hasher = Sha256::new();
    for (key, value) in sorted {
        hasher.update(key.as_bytes());
        hasher.update([0]);
        hasher.update(value.as_bytes());
        hasher.update([0]);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Adds the metadata's digest to `metadata`, which already holds every
/// tensor's (`sha256.<name>`).
pub(super) fn seal(metadata: &mut BTreeMap<String, String>) {
    let sealed = metadata_digest(metadata.iter());
    metadata.insert(METADATA_KEY.to_string(), sealed);
}

/// Checks every tensor and the metadata against the digests recorded at
/// save; [`Integrity::Unverified`] if the file records none.
pub(super) fn verify(
    path: &Path,
    metadata: Option<&HashMap<String, String>>,
    tensors: &BTreeMap<String, Entry<'_>>,
) -> Result<Integrity, CheckpointError> {
    let Some(meta) = metadata.filter(|m| m.keys().any(|k| k.starts_with(PREFIX))) else {
        return Ok(Integrity::Unverified);
    };
    let damaged = |name: &str, reason: String| CheckpointError::Damaged {
        path: path.to_path_buf(),
        name: name.to_string(),
        reason,
    };
    let check = |name: &str, key: &str, actual: String| match meta.get(key) {
        None => Err(damaged(
            name,
            "the file records checksums but none for it".to_string(),
        )),
        Some(recorded) if *recorded != actual => Err(damaged(
            name,
            format!("its SHA-256 is {actual}, the file recorded {recorded} when saved"),
        )),
        Some(_) => Ok(()),
    };
    for (name, (_, data)) in tensors {
        check(name, &format!("{PREFIX}{name}"), digest(data))?;
    }
    check("__metadata__", METADATA_KEY, metadata_digest(meta.iter()))?;
    if let Some(orphan) = meta
        .keys()
        .filter_map(|k| k.strip_prefix(PREFIX))
        .find(|name| *name != "__metadata__" && !tensors.contains_key(*name))
    {
        return Err(damaged(
            orphan,
            "the file records a checksum for this tensor but holds no such tensor".to_string(),
        ));
    }
    Ok(Integrity::Verified)
}
