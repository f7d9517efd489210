//! Checkpoints: round trips, PyTorch layout, typed errors for every kind of
//! bad file, atomic saves, and resuming a run bit for bit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ember_autograd::Var;
use ember_layers::checkpoint::{
    load_checkpoint, load_weights, save_checkpoint, save_weights, CheckpointError, Integrity,
    RngState, TrainingState,
};
use ember_layers::loss::{cross_entropy, Reduction};
use ember_layers::optim::{
    Adam, AdamConfig, Optimizer, RmsProp, RmsPropConfig, Sgd, SgdConfig, StateError, StateValue,
};
use ember_layers::schedule::{LrSchedule, OneCycle};
use ember_layers::{BatchNorm1d, Linear, Members, Module, Named, ReLU, Sequential};
use ember_tensor::Tensor;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

/// Linear(4 → 8) → BatchNorm1d(8) → ReLU → Linear(8 → 3): parameters and
/// buffers, initialised from `seed`.
fn model(seed: u64) -> Sequential {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Sequential::new()
        .add(Linear::new(4, 8, &mut rng))
        .add(BatchNorm1d::new(8))
        .add(ReLU)
        .add(Linear::new(8, 3, &mut rng))
}

/// A module with one parameter `"w"` of any shape.
struct Single(Var);

impl Module for Single {
    fn forward(&self, x: &Var) -> Var {
        x.mul(&self.0)
    }
    fn visit(&self, m: &mut Members) {
        m.parameter("w", &self.0);
    }
}

fn bits(model: &dyn Module) -> Vec<(String, Vec<u32>)> {
    model
        .state()
        .into_iter()
        .map(|p| {
            (
                p.name,
                p.var.value().to_vec().iter().map(|x| x.to_bits()).collect(),
            )
        })
        .collect()
}

fn optimizer_bits(opt: &dyn Optimizer) -> Vec<(String, Vec<u32>)> {
    opt.state()
        .into_iter()
        .map(|(n, v)| {
            let bits = match v {
                StateValue::Tensor(t) => t.to_vec().iter().map(|x| x.to_bits()).collect(),
                StateValue::Count(c) => vec![c as u32, (c >> 32) as u32],
            };
            (n, bits)
        })
        .collect()
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary directory")
}

#[test]
fn model_optimizer_and_position_round_trip() {
    let dir = tempdir();
    let path = dir.path().join("ckpt.safetensors");
    let saved = model(1);
    let mut opt = Adam::new(saved.parameters(), AdamConfig::default());
    // One real step, so optimizer state and batch-norm buffers are not trivial.
    let x = Var::constant(Tensor::randn(&[6, 4], &mut ChaCha8Rng::seed_from_u64(3)));
    cross_entropy(&saved.forward(&x), &[0, 1, 2, 0, 1, 2], Reduction::Mean).backward();
    opt.step();
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let _: [u64; 5] = rng.random();
    let mut position = TrainingState {
        seed: u64::MAX - 5,
        epoch: 7,
        step: 123_456_789_012,
        ..Default::default()
    };
    position.rngs.insert("shuffle".into(), RngState::of(&rng));
    position
        .rngs
        .insert("noise".into(), RngState::of(&ChaCha8Rng::seed_from_u64(9)));
    position
        .extra
        .insert("note".into(), "κ = 0.1, \"quoted\"".into());
    save_checkpoint(&path, &saved, Some(&opt), &position).unwrap();

    let loaded = model(2);
    let mut opt2 = Adam::new(
        loaded.parameters(),
        AdamConfig {
            lr: 0.5,
            ..Default::default()
        },
    );
    assert_ne!(bits(&loaded), bits(&saved));
    let back = load_checkpoint(&path, &loaded, Some(&mut opt2)).unwrap();
    assert_eq!(back.integrity, Integrity::Verified);
    let back = back.training;
    assert_eq!(back, position);
    assert_eq!(bits(&loaded), bits(&saved));
    // Loaded weights of a line or more start on one, as created ones do.
    for p in loaded.parameters() {
        let value = p.var.value();
        assert!(
            value.numel() < 16 || value.starts_on_cache_line(),
            "{}",
            p.name
        );
    }
    assert_eq!(optimizer_bits(&opt2), optimizer_bits(&opt));
    assert_eq!(opt2.lr(), 1e-3);
    // The generator continues where the saved one stood.
    let mut resumed = back.rngs["shuffle"].to_rng();
    let next: [u64; 4] = resumed.random();
    assert_eq!(next, rng.random::<[u64; 4]>());
}

/// `sha256sum` of two saves of one state agrees: the header's keys are
/// written in sorted order, not in a hash map's random one.
#[test]
fn equal_states_give_byte_identical_files() {
    let dir = tempdir();
    let trained = model(1);
    let mut opt = Adam::new(trained.parameters(), AdamConfig::default());
    let x = Var::constant(Tensor::randn(&[6, 4], &mut ChaCha8Rng::seed_from_u64(3)));
    cross_entropy(&trained.forward(&x), &[0, 1, 2, 0, 1, 2], Reduction::Mean).backward();
    opt.step();
    let mut position = TrainingState {
        epoch: 3,
        step: 1_404,
        ..Default::default()
    };
    for (i, name) in ["shuffle", "dropout.0", "dropout.1", "noise"]
        .iter()
        .enumerate()
    {
        let rng = ChaCha8Rng::seed_from_u64(i as u64);
        position.rngs.insert((*name).into(), RngState::of(&rng));
    }
    position.extra.insert("recipe".into(), "rmsprop".into());
    position
        .extra
        .insert("note".into(), "κ = 0.1, \"quoted\"".into());
    let files: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            let path = dir.path().join(format!("ckpt{i}.safetensors"));
            save_checkpoint(&path, &trained, Some(&opt), &position).unwrap();
            std::fs::read(&path).unwrap()
        })
        .collect();
    for other in &files[1..] {
        assert!(*other == files[0], "two saves of one state differ");
    }
    // The same for weights only, and for a model rebuilt from the same seed.
    let weights = |m: &Sequential, name: &str| {
        let path = dir.path().join(name);
        save_weights(&path, m).unwrap();
        std::fs::read(&path).unwrap()
    };
    assert!(weights(&model(5), "a.safetensors") == weights(&model(5), "b.safetensors"));
    // Still a file the safetensors reader accepts, with its data 8-byte aligned.
    let file = SafeTensors::deserialize(&files[0]).unwrap();
    assert_eq!(file.len(), trained.state().len() + opt.state().len());
    let header_len = u64::from_le_bytes(files[0][..8].try_into().unwrap());
    assert_eq!(header_len % 8, 0);
}

#[test]
fn files_use_pytorch_names_layouts_and_f32() {
    let dir = tempdir();
    let path = dir.path().join("weights.safetensors");
    let m = model(1);
    save_weights(&path, &m).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = file.names();
    names.sort();
    assert_eq!(
        names,
        [
            "0.bias",
            "0.weight",
            "1.bias",
            "1.num_batches_tracked",
            "1.running_mean",
            "1.running_var",
            "1.weight",
            "3.bias",
            "3.weight"
        ]
    );
    let w = file.tensor("0.weight").unwrap();
    assert_eq!(w.dtype(), Dtype::F32);
    assert_eq!(w.shape(), [8, 4]); // (out, in), as nn.Linear
    let values: Vec<f32> = w
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(values, m.parameters()[0].var.value().to_vec());
    let count = file.tensor("1.num_batches_tracked").unwrap();
    assert_eq!(count.shape(), [0usize; 0]);
    assert_eq!(count.dtype(), Dtype::I64, "int64, as PyTorch keeps it");
    // A weights file loads back, and so does the model part of a checkpoint.
    let other = model(5);
    load_weights(&path, &other).unwrap();
    assert_eq!(bits(&other), bits(&m));
    let full = dir.path().join("full.safetensors");
    let opt = Sgd::new(
        m.parameters(),
        SgdConfig {
            momentum: 0.9,
            ..Default::default()
        },
    );
    save_checkpoint(&full, &m, Some(&opt), &TrainingState::default()).unwrap();
    let third = model(6);
    load_weights(&full, &third).unwrap();
    assert_eq!(bits(&third), bits(&m));
}

/// Writes a safetensors file with the given (name, dtype, shape, bytes) and metadata.
fn write_raw(
    path: &Path,
    tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)],
    metadata: Option<HashMap<String, String>>,
) {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, metadata).unwrap()).unwrap();
}

fn single(shape: &[usize]) -> Single {
    Single(Var::parameter(Tensor::zeros(shape)))
}

#[track_caller]
fn assert_names_file(err: &CheckpointError, path: &Path, also: &str) {
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains(also), "{msg} does not mention {also}");
}

#[test]
fn wrong_names_shapes_and_dtypes_are_typed_errors() {
    let dir = tempdir();
    let path = dir.path().join("m.safetensors");
    save_weights(&path, &model(1)).unwrap();

    let bigger = model(1)
        .add(ReLU)
        .add(Linear::new(3, 2, &mut ChaCha8Rng::seed_from_u64(0)));
    let err = load_weights(&path, &bigger).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::Missing { name, .. } if name == "5.weight"),
        "{err}"
    );
    assert_names_file(&err, &path, "5.weight");

    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let smaller = Sequential::new()
        .add(Linear::new(4, 8, &mut rng))
        .add(BatchNorm1d::new(8));
    let err = load_weights(&path, &smaller).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::Unexpected { name, .. } if name == "3.bias"),
        "{err}"
    );

    let wider = Sequential::new()
        .add(Linear::new(4, 9, &mut rng))
        .add(BatchNorm1d::new(9))
        .add(ReLU)
        .add(Linear::new(9, 3, &mut rng));
    let before = bits(&wider);
    let err = load_weights(&path, &wider).unwrap_err();
    match &err {
        CheckpointError::Shape {
            name,
            expected,
            found,
            ..
        } => {
            assert_eq!(
                (name.as_str(), expected.as_slice(), found.as_slice()),
                ("0.weight", &[9, 4][..], &[8, 4][..])
            );
        }
        other => panic!("expected a shape error, got {other}"),
    }
    assert_eq!(bits(&wider), before, "a failed load changed the model");

    let raw = dir.path().join("f64.safetensors");
    write_raw(&raw, &[("w", Dtype::F64, vec![2], vec![0; 16])], None);
    let err = load_weights(&raw, &single(&[2])).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::Dtype { name, found, .. } if name == "w" && found == "F64"),
        "{err}"
    );
    assert_names_file(&err, &raw, "F64");

    // A file from elsewhere (no metadata) loads, at position zero.
    let plain = dir.path().join("plain.safetensors");
    let ones: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    write_raw(&plain, &[("w", Dtype::F32, vec![2], ones)], None);
    let s = single(&[2]);
    let loaded = load_checkpoint(&plain, &s, None).unwrap();
    assert_eq!(loaded.training, TrainingState::default());
    assert_eq!(loaded.integrity, Integrity::Unverified, "nothing to verify");
    assert_eq!(s.0.value().to_vec(), vec![1.0, 2.0]);
}

#[test]
fn damaged_files_are_typed_errors() {
    let dir = tempdir();
    let good = dir.path().join("good.safetensors");
    save_weights(&good, &model(1)).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let m = model(2);
    let write = |name: &str, data: &[u8]| -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    };

    let p = write("cut.safetensors", &bytes[..bytes.len() - 3]);
    let err = load_weights(&p, &m).unwrap_err();
    assert!(matches!(err, CheckpointError::Truncated { .. }), "{err}");
    assert_names_file(&err, &p, "truncated");

    let p = write("tiny.safetensors", &bytes[..5]);
    assert!(matches!(
        load_weights(&p, &m),
        Err(CheckpointError::Truncated { .. })
    ));

    let p = write("empty.safetensors", &[]);
    assert!(matches!(
        load_weights(&p, &m),
        Err(CheckpointError::Truncated { .. })
    ));

    // A header length far beyond the file: refused before any allocation.
    let mut huge = bytes.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    let p = write("huge.safetensors", &huge);
    assert!(matches!(
        load_weights(&p, &m),
        Err(CheckpointError::Truncated { .. })
    ));

    let mut junk = 10u64.to_le_bytes().to_vec();
    junk.extend_from_slice(b"not json!!");
    let p = write("junk.safetensors", &junk);
    let err = load_weights(&p, &m).unwrap_err();
    assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");

    // A shape whose size overflows, with a tiny data section.
    let header = br#"{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#;
    let mut hostile = (header.len() as u64).to_le_bytes().to_vec();
    hostile.extend_from_slice(header);
    hostile.extend_from_slice(&[0; 8]);
    let p = write("hostile.safetensors", &hostile);
    let err = load_weights(&p, &single(&[2])).unwrap_err();
    assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");

    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0; 4]);
    let p = write("longer.safetensors", &longer);
    assert!(matches!(
        load_weights(&p, &m),
        Err(CheckpointError::Corrupt { .. })
    ));

    let missing = dir.path().join("nope.safetensors");
    let err = load_weights(&missing, &m).unwrap_err();
    assert!(matches!(err, CheckpointError::Io { .. }), "{err}");
    assert_names_file(&err, &missing, "nope.safetensors");
}

#[test]
fn bad_metadata_and_mismatched_optimizers_are_typed_errors() {
    let dir = tempdir();
    let zeros: Vec<u8> = vec![0; 8];
    for (key, value) in [
        ("format_version", "99"),
        ("epoch", "-1"),
        ("step", "lots"),
        ("rng.shuffle.seed", "xyz"),
    ] {
        let p = dir.path().join(format!("{key}.safetensors"));
        let meta = HashMap::from([(key.to_string(), value.to_string())]);
        write_raw(&p, &[("w", Dtype::F32, vec![2], zeros.clone())], Some(meta));
        let err = load_checkpoint(&p, &single(&[2]), None).unwrap_err();
        assert!(
            matches!(&err, CheckpointError::Metadata { key: k, .. } if k == key),
            "{err}"
        );
    }

    let path = dir.path().join("adam.safetensors");
    let m = model(1);
    let adam = Adam::new(m.parameters(), AdamConfig::default());
    save_checkpoint(&path, &m, Some(&adam), &TrainingState::default()).unwrap();
    let target = model(2);
    let before = bits(&target);
    let mut sgd = Sgd::new(
        target.parameters(),
        SgdConfig {
            momentum: 0.9,
            ..Default::default()
        },
    );
    let err = load_checkpoint(&path, &target, Some(&mut sgd)).unwrap_err();
    let other = StateError::OtherOptimizer {
        parameter: "0.weight".into(),
        expected: vec!["momentum_buffer".into()],
        found: vec!["exp_avg".into(), "exp_avg_sq".into()],
    };
    assert!(
        matches!(&err, CheckpointError::Optimizer { source, .. } if *source == other),
        "{err}"
    );
    assert!(
        err.to_string().contains("saved by another optimizer"),
        "{err}"
    );
    assert_eq!(bits(&target), before, "a failed load changed the model");
    // Without an optimizer the same file loads fine.
    load_checkpoint(&path, &target, None).unwrap();
    assert_eq!(bits(&target), bits(&m));

    // A checkpoint without optimizer state cannot restore one.
    let bare = dir.path().join("bare.safetensors");
    save_weights(&bare, &m).unwrap();
    let err = load_checkpoint(&bare, &target, Some(&mut sgd)).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::Optimizer { source: StateError::Missing(n), .. } if n == "lr"),
        "{err}"
    );
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn saves_replace_the_file_atomically_and_leave_no_debris() {
    let dir = tempdir();
    let path = dir.path().join("run.safetensors");
    let a = model(1);
    save_weights(&path, &a).unwrap();
    let first = std::fs::read(&path).unwrap();
    let b = model(2);
    save_weights(&path, &b).unwrap();
    assert_ne!(std::fs::read(&path).unwrap(), first);
    assert_eq!(listing(dir.path()), ["run.safetensors"]);

    // A save that fails leaves the previous checkpoint as it was.
    let before = std::fs::read(&path).unwrap();
    let clash = Single(Var::parameter(Tensor::zeros(&[1])));
    struct Reserved(Single);
    impl Module for Reserved {
        fn forward(&self, x: &Var) -> Var {
            self.0.forward(x)
        }
        fn visit(&self, m: &mut Members) {
            m.parameter("optimizer.lr", &self.0 .0);
        }
    }
    let err = save_weights(&path, &Reserved(clash)).unwrap_err();
    assert!(matches!(err, CheckpointError::Name { .. }), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // The rename fails when the target is a directory: the error comes back
    // and the temporary file is cleaned up.
    let sub = dir.path().join("taken");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("keep"), b"x").unwrap();
    let err = save_weights(&sub, &a).unwrap_err();
    assert!(matches!(err, CheckpointError::Io { .. }), "{err}");
    assert_eq!(listing(dir.path()), ["run.safetensors", "taken"]);
    assert_eq!(std::fs::read(sub.join("keep")).unwrap(), b"x");
}

// ---------------------------------------------------------------- resume --

/// 64 samples of 4 features, 3 classes from a fixed linear rule.
fn data() -> (Tensor, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let x = Tensor::randn(&[64, 4], &mut rng);
    let v = x.to_vec();
    let y = v
        .chunks(4)
        .map(|r| {
            let scores = [r[0] + r[1], r[2] - r[0], r[3] - r[1]];
            (0..3)
                .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
                .unwrap()
        })
        .collect();
    (x, y)
}

/// Trains epochs `epochs` (shuffled by `rng`, batches of 16), with a
/// one-cycle schedule over the whole 3-epoch run; returns the step reached.
fn train(
    model: &Sequential,
    opt: &mut dyn Optimizer,
    rng: &mut ChaCha8Rng,
    epochs: std::ops::Range<u64>,
    mut step: u64,
) -> u64 {
    let (x, y) = data();
    let schedule = OneCycle::new(0.05, 12);
    let xs = x.to_vec();
    for _ in epochs {
        let mut order: Vec<usize> = (0..64).collect();
        order.shuffle(rng);
        for batch in order.chunks(16) {
            let rows: Vec<f32> = batch
                .iter()
                .flat_map(|&i| xs[i * 4..i * 4 + 4].to_vec())
                .collect();
            let targets: Vec<usize> = batch.iter().map(|&i| y[i]).collect();
            let input = Var::constant(Tensor::from_vec(rows, &[batch.len(), 4]));
            opt.set_lr(schedule.lr(step));
            opt.zero_grad();
            cross_entropy(&model.forward(&input), &targets, Reduction::Mean).backward();
            opt.step();
            step += 1;
        }
    }
    step
}

fn resume_is_exact(make: fn(Vec<Named>) -> Box<dyn Optimizer>) {
    // Three epochs straight.
    let straight = model(1);
    let mut opt = make(straight.parameters());
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    train(&straight, opt.as_mut(), &mut rng, 0..3, 0);

    // Two epochs, save, then a fresh process: new model, new optimizer.
    let dir = tempdir();
    let path = dir.path().join("resume.safetensors");
    {
        let first = model(1);
        let mut opt = make(first.parameters());
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let step = train(&first, opt.as_mut(), &mut rng, 0..2, 0);
        let mut position = TrainingState {
            epoch: 2,
            step,
            ..Default::default()
        };
        position.rngs.insert("shuffle".into(), RngState::of(&rng));
        save_checkpoint(&path, &first, Some(opt.as_ref()), &position).unwrap();
    }
    let resumed = model(99);
    let mut opt2 = make(resumed.parameters());
    let position = load_checkpoint(&path, &resumed, Some(opt2.as_mut()))
        .unwrap()
        .training;
    assert_eq!((position.epoch, position.step), (2, 8));
    let mut rng2 = position.rngs["shuffle"].to_rng();
    train(
        &resumed,
        opt2.as_mut(),
        &mut rng2,
        position.epoch..3,
        position.step,
    );

    assert_eq!(bits(&resumed), bits(&straight));
    assert_eq!(optimizer_bits(opt2.as_ref()), optimizer_bits(opt.as_ref()));
    assert_eq!(rng2.random::<u64>(), rng.random::<u64>());
}

#[test]
fn resume_is_bit_exact_with_adam() {
    resume_is_exact(|p| Box::new(Adam::new(p, AdamConfig::default())));
}

#[test]
fn resume_is_bit_exact_with_centred_momentum_rmsprop() {
    resume_is_exact(|p| {
        Box::new(RmsProp::new(
            p,
            RmsPropConfig {
                centered: true,
                momentum: 0.5,
                ..RmsPropConfig::keras()
            },
        ))
    });
}

#[test]
fn resume_is_bit_exact_with_nesterov_sgd() {
    resume_is_exact(|p| {
        Box::new(Sgd::new(
            p,
            SgdConfig {
                momentum: 0.9,
                nesterov: true,
                weight_decay: 1e-4,
                ..Default::default()
            },
        ))
    });
}

// --------------------------------------------------------------- PyTorch --

/// Writes a checkpoint of `Linear(5→7) → BatchNorm1d(7) → ReLU → Linear(7→3)`
/// (with optimizer state, and non-trivial batch-norm statistics) and an
/// input with Ember's eval-mode output, for `docs/check_pytorch_load.py`,
/// which loads the file with `safetensors.torch.load_file` into the same
/// `nn.Sequential` and compares predictions:
///
/// ```text
/// cargo test -p ember-layers --test checkpoint writes_a_file_for_the_pytorch_check
/// python3 docs/check_pytorch_load.py target/tmp/pytorch_check
/// ```
#[test]
fn writes_a_file_for_the_pytorch_check() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pytorch_check");
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let m = Sequential::new()
        .add(Linear::new(5, 7, &mut rng))
        .add(BatchNorm1d::new(7))
        .add(ReLU)
        .add(Linear::new(7, 3, &mut rng));
    let mut opt = Adam::new(m.parameters(), AdamConfig::default());
    for _ in 0..3 {
        let x = Var::constant(Tensor::randn(&[8, 5], &mut rng).add_scalar(0.5));
        opt.zero_grad();
        cross_entropy(&m.forward(&x), &[0, 1, 2, 0, 1, 2, 0, 1], Reduction::Mean).backward();
        opt.step();
    }
    m.set_training(false);
    let x = Tensor::randn(&[4, 5], &mut rng);
    let y = m.forward(&Var::constant(x.clone())).value();
    let position = TrainingState {
        epoch: 1,
        step: 3,
        ..Default::default()
    };
    let path = dir.join("model.safetensors");
    save_checkpoint(&path, &m, Some(&opt), &position).unwrap();
    let io = serde_json::json!({ "input": x.to_vec(), "output": y.to_vec(), "batch": 4 });
    std::fs::write(dir.join("io.json"), io.to_string()).unwrap();
    // The file reads back into a fresh model with the same predictions.
    let fresh = Sequential::new()
        .add(Linear::new(5, 7, &mut rng))
        .add(BatchNorm1d::new(7))
        .add(ReLU)
        .add(Linear::new(7, 3, &mut rng));
    fresh.set_training(false);
    load_weights(&path, &fresh).unwrap();
    assert_eq!(
        fresh.forward(&Var::constant(x)).value().to_vec(),
        y.to_vec()
    );
    println!("wrote {}", dir.display());
}

/// A checkpoint with its Adam state and a position, and its bytes.
fn saved_checkpoint(dir: &Path) -> (PathBuf, Vec<u8>) {
    let path = dir.join("sealed.safetensors");
    let m = model(1);
    let mut opt = Adam::new(m.parameters(), AdamConfig::default());
    let x = Var::constant(Tensor::ones(&[2, 4]));
    cross_entropy(&m.forward(&x), &[0, 1], Reduction::Mean).backward();
    opt.step();
    let position = TrainingState {
        epoch: 3,
        step: 30,
        ..Default::default()
    };
    save_checkpoint(&path, &m, Some(&opt), &position).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

/// The byte range of tensor `name`'s data in a safetensors file.
fn data_range(bytes: &[u8], name: &str) -> std::ops::Range<usize> {
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let view = SafeTensors::deserialize(bytes).unwrap();
    let data = view.tensor(name).unwrap().data();
    let start = data.as_ptr() as usize - bytes.as_ptr() as usize;
    assert!(start >= 8 + header);
    start..start + data.len()
}

/// Loads `path` into a fresh model and Adam, which must fail as
/// [`CheckpointError::Damaged`] naming tensor `name` and the file, with the
/// model left as it was.
fn refused_as_damaged(path: &Path, name: &str) -> CheckpointError {
    let target = model(2);
    let before = bits(&target);
    let mut opt = Adam::new(target.parameters(), AdamConfig::default());
    let err = load_checkpoint(path, &target, Some(&mut opt)).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::Damaged { name: n, .. } if n == name),
        "{err}"
    );
    assert_names_file(&err, path, name);
    assert_eq!(bits(&target), before, "a damaged load changed the model");
    err
}

#[test]
fn a_flipped_bit_in_a_weight_is_an_error_naming_file_and_tensor() {
    let dir = tempdir();
    let (path, bytes) = saved_checkpoint(dir.path());
    for name in ["0.weight", "3.bias", "optimizer.0.weight.exp_avg_sq"] {
        let mut damaged = bytes.clone();
        let range = data_range(&bytes, name);
        damaged[range.start + range.len() / 2] ^= 0x01; // a low mantissa bit
        std::fs::write(&path, &damaged).unwrap();
        let err = refused_as_damaged(&path, name);
        assert!(err.to_string().contains("damaged"), "{err}");
        // Loading the weights alone checks the whole file too.
        let err = load_weights(&path, &model(2)).unwrap_err();
        assert!(matches!(err, CheckpointError::Damaged { .. }), "{err}");
    }
}

#[test]
fn a_changed_training_position_is_an_error() {
    let dir = tempdir();
    let (path, bytes) = saved_checkpoint(dir.path());
    // "epoch":"3" → "epoch":"7": still a valid number, valid JSON, same length.
    let pattern = b"\"epoch\":\"3\"";
    let at = bytes
        .windows(pattern.len())
        .position(|w| w == pattern)
        .expect("the epoch in the header")
        + 9;
    let mut damaged = bytes.clone();
    damaged[at] = b'7';
    std::fs::write(&path, &damaged).unwrap();
    let err = load_checkpoint(&path, &model(2), None).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::Damaged { name, .. } if name == "__metadata__"),
        "{err}"
    );
    assert_names_file(&err, &path, "__metadata__");
}

/// A bit flipped in any byte of a small checkpoint (a different bit in
/// each byte, all eight in turn, so every header field and tensor is hit)
/// is refused with a typed error naming the file, or (only where the flip
/// cannot matter) loads exactly the saved state: never different weights,
/// optimizer state or position without a word.
#[test]
fn no_single_bit_flip_loads_different_state() {
    let dir = tempdir();
    let (path, bytes) = saved_checkpoint(dir.path());
    let reference = model(3);
    let mut reference_opt = Adam::new(reference.parameters(), AdamConfig::default());
    let position = load_checkpoint(&path, &reference, Some(&mut reference_opt)).unwrap();
    let damaged_path = dir.path().join("flipped.safetensors");
    let mut silent = 0;
    for i in 0..bytes.len() {
        let bit = i % 8;
        let mut damaged = bytes.clone();
        damaged[i] ^= 1 << bit;
        std::fs::write(&damaged_path, &damaged).unwrap();
        let target = model(2);
        let mut opt = Adam::new(target.parameters(), AdamConfig::default());
        match load_checkpoint(&damaged_path, &target, Some(&mut opt)) {
            Err(e) => assert!(e.to_string().contains("flipped.safetensors"), "{e}"),
            Ok(loaded) => {
                silent += 1;
                assert_eq!(loaded, position, "byte {i} bit {bit}: another position");
                assert_eq!(bits(&target), bits(&reference), "byte {i} bit {bit}");
                assert_eq!(
                    optimizer_bits(&opt),
                    optimizer_bits(&reference_opt),
                    "byte {i} bit {bit}"
                );
            }
        }
    }
    assert!(
        silent * 100 < bytes.len(),
        "{silent} of {} flips loaded",
        bytes.len()
    );
}

#[test]
fn files_without_checksums_load_and_say_so() {
    let dir = tempdir();
    let (path, bytes) = saved_checkpoint(dir.path());
    // The same file with every checksum entry taken out, as an older Ember
    // wrote it: rebuilt through the safetensors crate.
    let view = SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let metadata: HashMap<String, String> = header
        .metadata()
        .clone()
        .unwrap()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("sha256."))
        .collect();
    let tensors: Vec<(String, TensorView<'_>)> = view.tensors();
    let old = dir.path().join("old.safetensors");
    std::fs::write(
        &old,
        safetensors::serialize(tensors, Some(metadata)).unwrap(),
    )
    .unwrap();

    let (a, b) = (model(2), model(2));
    let mut opt_a = Adam::new(a.parameters(), AdamConfig::default());
    let mut opt_b = Adam::new(b.parameters(), AdamConfig::default());
    let sealed = load_checkpoint(&path, &a, Some(&mut opt_a)).unwrap();
    let unsealed = load_checkpoint(&old, &b, Some(&mut opt_b)).unwrap();
    assert_eq!(sealed.integrity, Integrity::Verified);
    assert_eq!(unsealed.integrity, Integrity::Unverified);
    assert_eq!(sealed.training, unsealed.training);
    assert_eq!(bits(&a), bits(&b));
    assert_eq!(load_weights(&old, &b).unwrap(), Integrity::Unverified);
    assert_eq!(load_weights(&path, &b).unwrap(), Integrity::Verified);
}

/// A raw entry: name, dtype, shape, bytes.
type RawEntry<'a> = (&'a str, Dtype, Vec<usize>, Vec<u8>);

/// A count as an I64 scalar's bytes.
fn i64_bytes(n: i64) -> Vec<u8> {
    n.to_le_bytes().to_vec()
}

/// f32 values as bytes.
fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// An I64 scalar entry's value.
fn i64_value(file: &SafeTensors<'_>, name: &str) -> i64 {
    let t = file.tensor(name).unwrap();
    assert_eq!((t.dtype(), t.shape()), (Dtype::I64, &[][..]), "{name}");
    i64::from_le_bytes(t.data().try_into().unwrap())
}

/// The file `bytes` rewritten to `name` without its checksums and as
/// format version 1 (as an older Ember wrote it), with `replace`d entries.
fn rewritten(dir: &Path, name: &str, bytes: &[u8], replace: &[RawEntry<'_>]) -> PathBuf {
    let view = SafeTensors::deserialize(bytes).unwrap();
    let (_, header) = SafeTensors::read_metadata(bytes).unwrap();
    let metadata: HashMap<String, String> = header
        .metadata()
        .clone()
        .unwrap()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("sha256."))
        .map(|(k, v)| {
            // Written as the format before integer counts: version 1.
            let v = if k == "format_version" {
                "1".to_string()
            } else {
                v
            };
            (k, v)
        })
        .collect();
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = view
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.dtype(), t.shape().to_vec(), t.data().to_vec()))
        .collect();
    for (n, d, shape, b) in replace {
        let entry = tensors
            .iter_mut()
            .find(|t| t.0 == *n)
            .expect("replaced entry");
        *entry = (n.to_string(), *d, shape.clone(), b.clone());
    }
    let borrowed: Vec<RawEntry<'_>> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.as_str(), *d, s.clone(), b.clone()))
        .collect();
    let path = dir.join(name);
    write_raw(&path, &borrowed, Some(metadata));
    path
}

#[test]
fn counts_are_i64_scalars_covered_by_checksums() {
    let dir = tempdir();
    let (path, bytes) = saved_checkpoint(dir.path());
    let file = SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(i64_value(&file, "1.num_batches_tracked"), 1);
    for p in [
        "0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias",
    ] {
        assert_eq!(i64_value(&file, &format!("optimizer.{p}.step")), 1, "{p}");
    }
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap();
    assert!(meta.contains_key("sha256.optimizer.0.weight.step"));
    assert!(meta.contains_key("sha256.1.num_batches_tracked"));
    // A changed count is damage, caught by its checksum.
    for name in ["optimizer.0.weight.step", "1.num_batches_tracked"] {
        let mut damaged = bytes.clone();
        damaged[data_range(&bytes, name).start] ^= 0x02;
        std::fs::write(&path, &damaged).unwrap();
        refused_as_damaged(&path, name);
    }
}

#[test]
fn older_files_with_f32_counts_load_exactly() {
    let dir = tempdir();
    let (path, bytes) = saved_checkpoint(dir.path());
    let (new_model, old_model) = (model(2), model(2));
    let mut new_opt = Adam::new(new_model.parameters(), AdamConfig::default());
    let mut old_opt = Adam::new(old_model.parameters(), AdamConfig::default());
    let new = load_checkpoint(&path, &new_model, Some(&mut new_opt)).unwrap();
    // The format before counts were integers: an F32 scalar
    // num_batches_tracked and F32 [2] step counts (two 24-bit halves).
    let mut replace: Vec<RawEntry<'_>> = vec![(
        "1.num_batches_tracked",
        Dtype::F32,
        vec![],
        f32_bytes(&[1.0]),
    )];
    let steps: Vec<String> = [
        "0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias",
    ]
    .iter()
    .map(|p| format!("optimizer.{p}.step"))
    .collect();
    for name in &steps {
        replace.push((name, Dtype::F32, vec![2], f32_bytes(&[0.0, 1.0])));
    }
    let old_path = rewritten(dir.path(), "old.safetensors", &bytes, &replace);
    assert_eq!(
        SafeTensors::read_metadata(&bytes)
            .unwrap()
            .1
            .metadata()
            .as_ref()
            .unwrap()["format_version"],
        "2",
        "the integer format is version 2"
    );
    let old = load_checkpoint(&old_path, &old_model, Some(&mut old_opt)).unwrap();
    assert_eq!(old.integrity, Integrity::Unverified);
    assert_eq!(old.training, new.training);
    assert_eq!(bits(&old_model), bits(&new_model));
    assert_eq!(optimizer_bits(&old_opt), optimizer_bits(&new_opt));

    // A step count beyond one f32's exact range, in halves: exact.
    replace[1].3 = f32_bytes(&[3.0, 5.0]);
    let big = rewritten(dir.path(), "old-big.safetensors", &bytes, &replace);
    load_checkpoint(&big, &old_model, Some(&mut old_opt)).unwrap();
    let state = old_opt.state();
    let step = state
        .iter()
        .find(|(n, _)| *n == steps[0]["optimizer.".len()..]);
    assert_eq!(step.unwrap().1.as_count(), Some(3 * (1 << 24) + 5));
    // And saved again, it is an I64 holding that exact count.
    let resaved = dir.path().join("resaved.safetensors");
    save_checkpoint(&resaved, &old_model, Some(&old_opt), &old.training).unwrap();
    let again = std::fs::read(&resaved).unwrap();
    let file = SafeTensors::deserialize(&again).unwrap();
    assert_eq!(i64_value(&file, &steps[0]), 3 * (1 << 24) + 5);
}

#[test]
fn a_pytorch_state_dict_with_int64_counts_loads_as_it_is() {
    // What `safetensors.torch.save_file(model.state_dict(), path)` writes
    // for a BatchNorm1d(2): F32 tensors and an int64 scalar count.
    let dir = tempdir();
    let path = dir.path().join("torch.safetensors");
    write_raw(
        &path,
        &[
            ("weight", Dtype::F32, vec![2], f32_bytes(&[1.5, 2.0])),
            ("bias", Dtype::F32, vec![2], f32_bytes(&[0.5, 0.0])),
            ("running_mean", Dtype::F32, vec![2], f32_bytes(&[0.1, 0.2])),
            ("running_var", Dtype::F32, vec![2], f32_bytes(&[0.9, 1.1])),
            ("num_batches_tracked", Dtype::I64, vec![], i64_bytes(7)),
        ],
        None,
    );
    let bn = BatchNorm1d::new(2);
    assert_eq!(load_weights(&path, &bn).unwrap(), Integrity::Unverified);
    let count = bn
        .buffers()
        .into_iter()
        .find(|b| b.name == "num_batches_tracked");
    assert_eq!(count.unwrap().var.value().to_vec(), [7.0]);
    assert_eq!(bn.parameters()[0].var.value().to_vec(), [1.5, 2.0]);
    // Saved back, the count is int64 again.
    let back = dir.path().join("back.safetensors");
    save_weights(&back, &bn).unwrap();
    let bytes = std::fs::read(&back).unwrap();
    assert_eq!(
        i64_value(
            &SafeTensors::deserialize(&bytes).unwrap(),
            "num_batches_tracked"
        ),
        7
    );
}

#[test]
fn bad_counts_are_typed_errors_naming_file_and_tensor() {
    let dir = tempdir();
    let (_, bytes) = saved_checkpoint(dir.path());
    let count = "1.num_batches_tracked";
    let step = "optimizer.0.weight.step";
    let cases: Vec<(RawEntry<'_>, &str)> = vec![
        ((count, Dtype::I64, vec![], i64_bytes(-1)), "count"),
        (
            (count, Dtype::I64, vec![], i64_bytes((1 << 24) + 1)),
            "count",
        ),
        ((count, Dtype::F32, vec![], f32_bytes(&[1.5])), "count"),
        ((count, Dtype::F32, vec![], f32_bytes(&[-1.0])), "count"),
        ((count, Dtype::I32, vec![], vec![1, 0, 0, 0]), "dtype"),
        (
            (count, Dtype::F64, vec![], 1f64.to_le_bytes().to_vec()),
            "dtype",
        ),
        ((count, Dtype::I64, vec![1], i64_bytes(1)), "shape"),
        ((step, Dtype::I64, vec![], i64_bytes(-3)), "count"),
        ((step, Dtype::I64, vec![1], i64_bytes(1)), "shape"),
        ((step, Dtype::I32, vec![], vec![1, 0, 0, 0]), "dtype"),
        (("0.bias", Dtype::I64, vec![8], vec![0; 64]), "dtype"),
    ];
    for (i, ((name, dtype, shape, data), kind)) in cases.into_iter().enumerate() {
        let path = rewritten(
            dir.path(),
            &format!("bad{i}.safetensors"),
            &bytes,
            &[(name, dtype, shape, data)],
        );
        let m = model(2);
        let mut opt = Adam::new(m.parameters(), AdamConfig::default());
        let (before, opt_before) = (bits(&m), optimizer_bits(&opt));
        let err = load_checkpoint(&path, &m, Some(&mut opt)).unwrap_err();
        let ok = match kind {
            "count" => matches!(&err, CheckpointError::Count { name: n, .. } if n == name),
            "dtype" => matches!(&err, CheckpointError::Dtype { name: n, .. } if n == name),
            _ => {
                matches!(&err, CheckpointError::Shape { name: n, expected, .. } if n == name && expected.is_empty())
            }
        };
        assert!(ok, "case {i}: {err}");
        assert_names_file(&err, &path, name);
        assert_eq!(
            bits(&m),
            before,
            "case {i}: a failed load changed the model"
        );
        assert_eq!(
            optimizer_bits(&opt),
            opt_before,
            "case {i}: … or the optimizer"
        );
    }
}
