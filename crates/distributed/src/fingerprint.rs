//! What every rank must agree on before training, and the parameters' hash.

use ember_layers::{Module, Named};
use sha2::{Digest, Sha256};

/// The settings of a run that every rank must share: named entries (the
/// model's parameter names and shapes, each option that changes training, a
/// digest of the data), compared across ranks at the start.
///
/// ```
/// use ember_distributed::Fingerprint;
///
/// let mut a = Fingerprint::default();
/// a.add("--lr", "0.001");
/// a.add("--batch-size", "128");
/// let mut b = a.clone();
/// b.add("--seed", "1");
/// let decoded = Fingerprint::decode(&a.encode()).unwrap();
/// assert_eq!(decoded, a);
/// assert_eq!(
///     a.difference(&b, "rank 1", "rank 0").unwrap(),
///     "--seed is missing on rank 1, 1 on rank 0"
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint {
    entries: Vec<(String, String)>,
}

impl Fingerprint {
    /// Adds an entry (names are compared in the order they are added).
    pub fn add(&mut self, name: impl Into<String>, value: impl ToString) {
        self.entries.push((name.into(), value.to_string()));
    }

    /// Adds the model's parameter names and shapes, in state-dict order.
    pub fn add_model(&mut self, model: &dyn Module) {
        for Named { name, var } in model.state() {
            self.add(format!("model {name}"), format!("{:?}", var.shape()));
        }
    }

    /// The entries, one `name\tvalue` per line.
    pub fn encode(&self) -> Vec<u8> {
        let mut text = String::new();
        for (name, value) in &self.entries {
            text.push_str(&name.replace(['\t', '\n'], " "));
            text.push('\t');
            text.push_str(&value.replace(['\t', '\n'], " "));
            text.push('\n');
        }
        text.into_bytes()
    }

    /// Reads what [`Fingerprint::encode`] wrote (trailing zero bytes, the
    /// padding of a fixed-size exchange, are ignored).
    pub fn decode(bytes: &[u8]) -> Option<Fingerprint> {
        let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let text = std::str::from_utf8(&bytes[..end]).ok()?;
        let mut entries = Vec::new();
        for line in text.lines() {
            let (name, value) = line.split_once('\t')?;
            entries.push((name.to_string(), value.to_string()));
        }
        Some(Fingerprint { entries })
    }

    /// The first difference between these settings (those of `here`) and
    /// `other` (those of `there`), in words; `None` if they agree.
    pub fn difference(&self, other: &Fingerprint, here: &str, there: &str) -> Option<String> {
        for (name, mine) in &self.entries {
            match other.entries.iter().find(|(n, _)| n == name) {
                None => return Some(format!("{name} is {mine} on {here}, missing on {there}")),
                Some((_, theirs)) if theirs != mine => {
                    return Some(format!("{name} is {mine} on {here}, {theirs} on {there}"))
                }
                Some(_) => {}
            }
        }
        other
            .entries
            .iter()
            .find(|(n, _)| !self.entries.iter().any(|(m, _)| m == n))
            .map(|(name, theirs)| format!("{name} is missing on {here}, {theirs} on {there}"))
    }
}

/// SHA-256 of every parameter's bytes (f32, little-endian, row-major), in
/// state-dict order, as lowercase hex: equal on every rank of a healthy
/// data-parallel run.
pub fn parameters_sha256(model: &dyn Module) -> String {
    let mut hasher = Sha256::new();
    for Named { var, .. } in model.parameters() {
        for x in var.value().to_vec() {
            hasher.update(x.to_le_bytes());
        }
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_value_is_named_with_both_sides() {
        let mut a = Fingerprint::default();
        a.add("--lr", "0.001");
        a.add("model 0.weight", "[512, 784]");
        let mut b = Fingerprint::default();
        b.add("--lr", "0.001");
        b.add("model 0.weight", "[256, 784]");
        assert_eq!(
            a.difference(&b, "rank 0", "rank 1").unwrap(),
            "model 0.weight is [512, 784] on rank 0, [256, 784] on rank 1"
        );
        assert_eq!(a.difference(&a, "rank 0", "rank 1"), None);
        assert_eq!(
            Fingerprint::decode(&[a.encode(), vec![0; 9]].concat()),
            Some(a)
        );
    }
}
