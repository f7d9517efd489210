//! The training position in the safetensors `__metadata__` string map.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::{CheckpointError, RngState, TrainingState, FORMAT_VERSION};

pub(super) fn format_metadata() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("format".to_string(), "ember".to_string()),
        ("format_version".to_string(), FORMAT_VERSION.to_string()),
    ])
}

pub(super) fn training_metadata(training: &TrainingState) -> BTreeMap<String, String> {
    let mut meta = format_metadata();
    meta.insert("seed".to_string(), training.seed.to_string());
    meta.insert("epoch".to_string(), training.epoch.to_string());
    meta.insert("step".to_string(), training.step.to_string());
    for (name, rng) in &training.rngs {
        let seed: String = rng.seed.iter().map(|b| format!("{b:02x}")).collect();
        meta.insert(format!("rng.{name}.seed"), seed);
        meta.insert(format!("rng.{name}.stream"), rng.stream.to_string());
        meta.insert(format!("rng.{name}.word_pos"), rng.word_pos.to_string());
    }
    for (key, value) in &training.extra {
        meta.insert(format!("extra.{key}"), value.clone());
    }
    meta
}
/// Reads the training position from `__metadata__` (zero when absent).
pub(super) fn parse_training(
    path: &Path,
    metadata: Option<&HashMap<String, String>>,
) -> Result<TrainingState, CheckpointError> {
    let mut training = TrainingState::default();
    let Some(meta) = metadata else {
        return Ok(training);
    };
    let bad = |key: &str, value: &str, reason: &str| CheckpointError::Metadata {
        path: path.to_path_buf(),
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    };
    if let Some(v) = meta.get("format_version") {
        match v.parse::<u32>() {
            Ok(version) if version <= FORMAT_VERSION => {}
            Ok(_) => return Err(bad("format_version", v, "written by a newer Ember")),
            Err(_) => return Err(bad("format_version", v, "not a version number")),
        }
    }
    let number = |key: &str| -> Result<u64, CheckpointError> {
        meta.get(key).map_or(Ok(0), |v| {
            v.parse()
                .map_err(|_| bad(key, v, "not a non-negative integer"))
        })
    };
    training.seed = number("seed")?;
    training.epoch = number("epoch")?;
    training.step = number("step")?;
    for (key, value) in meta {
        if let Some(k) = key.strip_prefix("extra.") {
            training.extra.insert(k.to_string(), value.clone());
        }
        let Some(name) = key
            .strip_prefix("rng.")
            .and_then(|rest| rest.strip_suffix(".seed"))
        else {
            continue;
        };
        let seed = parse_seed(value).ok_or_else(|| bad(key, value, "not 64 hexadecimal digits"))?;
        let field = |suffix: &str| {
            let k = format!("rng.{name}.{suffix}");
            match meta.get(&k) {
                Some(v) => Ok((k, v)),
                None => Err(bad(&k, "", "missing")),
            }
        };
        let (k, v) = field("stream")?;
        let stream = v.parse().map_err(|_| bad(&k, v, "not a u64"))?;
        let (k, v) = field("word_pos")?;
        let word_pos = v.parse().map_err(|_| bad(&k, v, "not a u128"))?;
        training.rngs.insert(
            name.to_string(),
            RngState {
                seed,
                stream,
                word_pos,
            },
        );
    }
    Ok(training)
}

fn parse_seed(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut seed = [0u8; 32];
    if !bytes.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        seed[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(seed)
}
