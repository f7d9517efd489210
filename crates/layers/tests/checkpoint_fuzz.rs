//! A hostile-file property test: whatever is done to the bytes of a valid
//! checkpoint (bytes overwritten, the header length rewritten, the file cut
//! or extended), loading returns `Ok` or a typed error — it never panics,
//! and a failed load leaves the model and optimizer untouched.

use std::sync::OnceLock;

use ember_autograd::Var;
use ember_layers::checkpoint::{load_checkpoint, save_checkpoint, RngState, TrainingState};
use ember_layers::loss::{cross_entropy, Reduction};
use ember_layers::optim::{Adam, AdamConfig, Optimizer, StateValue};
use ember_layers::{Linear, Module, ReLU, Sequential};
use ember_tensor::Tensor;
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn model(seed: u64) -> Sequential {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Sequential::new()
        .add(Linear::new(3, 4, &mut rng))
        .add(ReLU)
        .add(Linear::new(4, 2, &mut rng))
}

/// A valid checkpoint (model, Adam state, position with an RNG) and the
/// length of its header, where most of the interesting damage happens.
fn valid_file() -> &'static (Vec<u8>, usize) {
    static FILE: OnceLock<(Vec<u8>, usize)> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("valid.safetensors");
        let m = model(1);
        let mut opt = Adam::new(m.parameters(), AdamConfig::default());
        let x = Var::constant(Tensor::ones(&[2, 3]));
        cross_entropy(&m.forward(&x), &[0, 1], Reduction::Mean).backward();
        opt.step();
        let mut position = TrainingState {
            epoch: 1,
            step: 1,
            ..Default::default()
        };
        position.rngs.insert(
            "shuffle".into(),
            RngState::of(&ChaCha8Rng::seed_from_u64(3)),
        );
        save_checkpoint(&path, &m, Some(&opt), &position).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize + 8;
        (bytes, header)
    })
}

#[derive(Clone, Debug)]
enum Damage {
    /// Overwrite bytes at positions given as fractions of the region.
    Overwrite {
        in_header: bool,
        edits: Vec<(f64, u8)>,
    },
    /// Replace the 8-byte header length.
    HeaderLength(u64),
    /// Keep only a prefix of this fraction of the file.
    Truncate(f64),
    /// Append bytes.
    Extend(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => (any::<bool>(), prop::collection::vec((0.0..1.0f64, any::<u8>()), 1..6))
            .prop_map(|(in_header, edits)| Damage::Overwrite { in_header, edits }),
        1 => prop_oneof![any::<u64>(), 0..4096u64].prop_map(Damage::HeaderLength),
        2 => (0.0..1.0f64).prop_map(Damage::Truncate),
        1 => prop::collection::vec(any::<u8>(), 1..16).prop_map(Damage::Extend),
    ]
}

fn apply(bytes: &[u8], header_end: usize, d: &Damage) -> Vec<u8> {
    let mut out = bytes.to_vec();
    match d {
        Damage::Overwrite { in_header, edits } => {
            let region = if *in_header { header_end } else { out.len() };
            for &(at, b) in edits {
                let i = ((at * region as f64) as usize).min(region - 1);
                out[i] = b;
            }
        }
        Damage::HeaderLength(n) => out[..8].copy_from_slice(&n.to_le_bytes()),
        Damage::Truncate(f) => out.truncate((f * bytes.len() as f64) as usize),
        Damage::Extend(extra) => out.extend_from_slice(extra),
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn damaged_checkpoints_never_panic(d in damage()) {
        let (bytes, header_end) = valid_file();
        let damaged = apply(bytes, *header_end, &d);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("damaged.safetensors");
        std::fs::write(&path, &damaged).unwrap();

        let m = model(2);
        let mut opt = Adam::new(m.parameters(), AdamConfig::default());
        let before: Vec<Vec<f32>> = m.parameters().iter().map(|p| p.var.value().to_vec()).collect();
        let opt_before: Vec<Vec<f64>> = opt.state().iter().map(|(_, t)| values(t)).collect();
        let result = load_checkpoint(&path, &m, Some(&mut opt));
        if let Err(e) = &result {
            // Typed, and names the file.
            prop_assert!(e.to_string().contains("damaged.safetensors"), "{e}");
            let after: Vec<Vec<f32>> = m.parameters().iter().map(|p| p.var.value().to_vec()).collect();
            let opt_after: Vec<Vec<f64>> = opt.state().iter().map(|(_, t)| values(t)).collect();
            prop_assert_eq!(&after, &before, "a failed load changed the model");
            prop_assert_eq!(&opt_after, &opt_before, "a failed load changed the optimizer");
        }
        if matches!(d, Damage::Truncate(_)) {
            prop_assert!(result.is_err(), "a truncated file loaded");
        }
    }
}

/// An optimizer state entry's values (a count as one value).
fn values(v: &StateValue) -> Vec<f64> {
    match v {
        StateValue::Tensor(t) => t.to_vec().into_iter().map(f64::from).collect(),
        StateValue::Count(n) => vec![*n as f64],
    }
}
