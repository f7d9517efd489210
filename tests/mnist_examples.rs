//! The MNIST examples, run as a user would run them (on reduced runs).
//!
//! Every test runs on a tiny synthetic MNIST that it writes as IDX files
//! (`support::synthetic_mnist`), so they run, and can fail, on any machine.
//! With `MNIST_DIR` set (CI sets it when it has the files), the same
//! checks run on the real data too, with the accuracy the recipes promise;
//! without it those parts print that they were skipped. `cargo test` builds
//! the examples next to this test's binary, which is where they are run from.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};

use support::{json_number, run_in, synthetic_mnist, TempDir};

/// The data sets to run on: the synthetic one, and the real one if
/// `MNIST_DIR` names it.
fn datasets() -> Vec<(&'static str, PathBuf)> {
    let mut sets = vec![("synthetic", synthetic_mnist().to_path_buf())];
    match real_mnist() {
        Some(dir) => sets.push(("real", dir)),
        None => eprintln!("MNIST_DIR is not set: the real-data half of this test is skipped"),
    }
    sets
}

fn real_mnist() -> Option<PathBuf> {
    std::env::var_os("MNIST_DIR").map(PathBuf::from)
}

/// Runs an example (in a scratch folder, without `$MNIST_DIR`) and
/// requires success.
fn run(name: &str, args: &[&str]) -> Output {
    // A folder of its own per call: tests run side by side, and two with
    // one name would remove each other's (a spawn then finds no cwd).
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let cwd = TempDir::new(&format!("cwd-{name}-{call}"));
    let out = run_in(name, args, cwd.path());
    assert!(
        out.status.success(),
        "{name} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Panics (naming the first differing byte, not dumping the files) unless
/// two checkpoints are the same file: same tensors, bit for bit, same
/// metadata, and the header in the same (sorted) order.
#[track_caller]
fn assert_same_checkpoint(a: &Path, b: &Path, what: &str) {
    let (da, db) = (bytes(a), bytes(b));
    if da != db {
        let at = da
            .iter()
            .zip(&db)
            .position(|(p, q)| p != q)
            .unwrap_or(da.len().min(db.len()));
        panic!(
            "{what}: the files differ from byte {at} ({} and {} bytes long)",
            da.len(),
            db.len()
        );
    }
}

/// The synthetic digits are bars at ten heights: one epoch of the default
/// recipe (10 steps) must get most of them right (chance is 10 %).
#[test]
fn the_classic_mlp_learns_the_synthetic_digits_in_one_epoch() {
    let dir = synthetic_mnist().to_string_lossy().into_owned();
    let args = ["--epochs", "1", "--data-dir", &dir, "--no-download"];
    let out = run("mnist_mlp", &[&args[..], &["--quiet", "--json"]].concat());
    assert!(json_number(&out, "samples_per_second") > 0.0);
    let accuracy = json_number(&out, "test_accuracy");
    assert!(accuracy >= 0.9, "test accuracy after one epoch: {accuracy}");
}

/// One epoch of the default recipe lands at 96.3 % ± 0.5 % depending on the
/// seed (seeds 0–7 gave 95.5–96.9 % when this test was written), so the
/// assertion is on the mean of three seeds, not on one lucky or unlucky run.
#[test]
fn the_classic_mlp_reaches_96_percent_in_one_epoch_on_real_mnist() {
    let Some(dir) = real_mnist() else {
        eprintln!("MNIST_DIR is not set: skipping the real-MNIST accuracy test");
        return;
    };
    let dir = dir.to_string_lossy();
    let mut accuracies = Vec::new();
    for seed in ["0", "1", "2"] {
        let args = ["--epochs", "1", "--seed", seed, "--data-dir", &dir];
        let mut all = args.to_vec();
        all.extend(["--no-download", "--quiet", "--json"]);
        let out = run("mnist_mlp", &all);
        accuracies.push(json_number(&out, "test_accuracy"));
    }
    let mean = accuracies.iter().sum::<f64>() / accuracies.len() as f64;
    assert!(
        mean >= 0.96,
        "mean test accuracy after one epoch: {mean} ({accuracies:?})"
    );
}

#[test]
fn the_same_seed_gives_the_same_weights_on_one_or_two_threads() {
    for (name, dir) in datasets() {
        let (dir, tmp) = (dir.to_string_lossy().into_owned(), TempDir::new("threads"));
        let save = |threads: &str| {
            let path = tmp.file(&format!("{name}-t{threads}.safetensors"));
            let limits = ["--train-limit", "3000", "--test-limit", "500"];
            let mut args = vec!["--epochs", "1", "--seed", "7", "--threads", threads];
            args.extend(limits);
            args.extend([
                "--data-dir",
                &dir,
                "--no-download",
                "--quiet",
                "--save",
                &path,
            ]);
            run("mnist_mlp", &args);
            PathBuf::from(path)
        };
        assert_same_checkpoint(
            &save("1"),
            &save("2"),
            &format!("{name} data: weights differ between 1 and 2 threads"),
        );
    }
}

#[test]
fn save_then_resume_equals_training_straight_through() {
    for (name, dir) in datasets() {
        let (dir, tmp) = (dir.to_string_lossy().into_owned(), TempDir::new("resume"));
        let train = |extra: &[&str]| {
            let mut args = vec!["--train-limit", "2000", "--test-limit", "200"];
            args.extend([
                "--seed",
                "3",
                "--data-dir",
                &dir,
                "--no-download",
                "--quiet",
            ]);
            args.extend(extra);
            run("mnist_mlp", &args)
        };
        let (straight, first, resumed) =
            (tmp.file("straight"), tmp.file("first"), tmp.file("resumed"));
        train(&["--epochs", "3", "--save", &straight]);
        train(&["--epochs", "2", "--save", &first]);
        let out = train(&["--epochs", "3", "--resume", &first, "--save", &resumed]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("nothing verified"),
            "Ember's own checkpoint was not verified: {stderr}"
        );
        assert_same_checkpoint(
            Path::new(&straight),
            Path::new(&resumed),
            &format!("{name} data: 2 epochs + resume for 1 differs from 3 epochs straight"),
        );
    }
}

#[test]
fn epochs_zero_saves_the_initial_weights_and_missing_data_is_explained() {
    let tmp = TempDir::new("zero");
    let empty = tmp.path().join("no-data");
    std::fs::create_dir_all(&empty).unwrap();
    let empty = empty.to_string_lossy().into_owned();
    let out = run_in(
        "mnist_mlp",
        &["--epochs", "1", "--no-download", "--data-dir", &empty],
        tmp.path(),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("MNIST_DIR") && stderr.contains(&empty),
        "unhelpful error: {stderr}"
    );

    let save = tmp.file("init.safetensors");
    let dir = synthetic_mnist().to_string_lossy().into_owned();
    run(
        "mnist_mlp",
        &[
            "--epochs",
            "0",
            "--data-dir",
            &dir,
            "--no-download",
            "--quiet",
            "--save",
            &save,
        ],
    );
    let file = bytes(Path::new(&save));
    let header_len = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8_lossy(&file[8..8 + header_len]);
    for name in ["\"0.weight\"", "\"0.bias\"", "\"3.weight\"", "\"6.bias\""] {
        assert!(header.contains(name), "{name} missing from {header}");
    }
    assert!(
        header.contains("[512,784]"),
        "PyTorch layout (out, in) expected: {header}"
    );
    assert!(
        header.contains("sha256.0.weight"),
        "no checksums in {header}"
    );
}

/// An explicit `--data-dir` is used or refused: with the files missing
/// there, the run fails even though `$MNIST_DIR` names a folder that has
/// them (it used to train on that one, silently).
#[test]
fn an_explicit_data_dir_is_never_replaced_by_mnist_dir() {
    let tmp = TempDir::new("explicit");
    let out = std::process::Command::new(support::example("mnist_mlp"))
        .args(["--epochs", "1", "--no-download", "--data-dir"])
        .arg(tmp.path())
        .env("MNIST_DIR", synthetic_mnist())
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "trained on $MNIST_DIR instead");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("explicit path"),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "training started: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A checkpoint with one weight byte flipped is refused on --resume,
/// naming the file and the tensor, before any training.
#[test]
fn a_damaged_checkpoint_is_refused_on_resume() {
    let tmp = TempDir::new("damaged");
    let dir = synthetic_mnist().to_string_lossy().into_owned();
    let path = tmp.file("run.safetensors");
    let common = ["--data-dir", &dir, "--no-download", "--train-limit", "256"];
    run(
        "mnist_mlp",
        &[&common[..], &["--epochs", "1", "--quiet", "--save", &path]].concat(),
    );
    let mut file = bytes(Path::new(&path));
    let at = file.len() - 4 * 10 * 512 / 2; // inside the last tensors' data
    file[at] ^= 0x10;
    std::fs::write(&path, &file).unwrap();
    let resumed = ["--epochs", "2", "--resume", &path];
    let stderr = refused_on_resume(&[&common[..], &resumed].concat(), tmp.path());
    assert!(
        stderr.contains(&path) && stderr.contains("is damaged"),
        "{stderr}"
    );
}

/// Runs `mnist_mlp` with `args`, which must be refused before training
/// (status 1, an `error:` line, no epoch line); returns its stderr.
#[track_caller]
fn refused_on_resume(args: &[&str], cwd: &Path) -> String {
    let out = run_in("mnist_mlp", args, cwd);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("epoch "), "training started: {stdout}");
    stderr
}

/// A checkpoint of another model (other --hidden widths) is refused on
/// --resume, naming the tensor and both shapes, with what to do about it.
#[test]
fn a_checkpoint_of_another_model_is_refused_on_resume() {
    let tmp = TempDir::new("other-model");
    let dir = synthetic_mnist().to_string_lossy().into_owned();
    let path = tmp.file("run.safetensors");
    let common = ["--data-dir", &dir, "--no-download", "--train-limit", "256"];
    let saved = [
        "--hidden", "64", "--epochs", "1", "--quiet", "--save", &path,
    ];
    run("mnist_mlp", &[&common[..], &saved].concat());
    for (hidden, named) in [
        (
            "128",
            "has shape [64, 784] but the model expects [128, 784]",
        ),
        ("64,64", "`6.weight` is missing from the file"),
    ] {
        let resumed = ["--hidden", hidden, "--epochs", "2", "--resume", &path];
        let stderr = refused_on_resume(&[&common[..], &resumed].concat(), tmp.path());
        assert!(stderr.contains(named), "{stderr}");
        assert!(stderr.contains("other --hidden widths"), "{stderr}");
    }
}

/// Also the convnet's end-to-end determinism: its checkpoint after one epoch
/// is the same file with 1 and 2 threads (per-image convolutions, per-task
/// weight-gradient sums, dropout on 4-D activations, pooling).
#[test]
fn the_cnn_learns_from_a_small_subset_alike_on_one_or_two_threads() {
    for (name, dir) in datasets() {
        let (dir, tmp) = (dir.to_string_lossy().into_owned(), TempDir::new("cnn"));
        // The synthetic set is easy: fewer images suffice.
        let limit = if name == "real" { "2000" } else { "640" };
        let train = |threads: &str| {
            let path = tmp.file(&format!("t{threads}.safetensors"));
            let mut args = vec![
                "--epochs",
                "1",
                "--train-limit",
                limit,
                "--test-limit",
                "1000",
            ];
            args.extend(["--threads", threads, "--data-dir", &dir, "--save", &path]);
            args.extend(["--no-download", "--quiet", "--json"]);
            let accuracy = json_number(&run("mnist_cnn", &args), "test_accuracy");
            (accuracy, PathBuf::from(path))
        };
        let ((accuracy, one), (_, two)) = (train("1"), train("2"));
        // Chance is 10 %; 32 steps of Adam take the convnet far past it.
        assert!(
            accuracy >= 0.5,
            "{name} data: test accuracy after one epoch on {limit} images: {accuracy}"
        );
        assert_same_checkpoint(
            &one,
            &two,
            &format!("{name} data: the convnet differs between 1 and 2 threads"),
        );
    }
}

/// The PyTorch state dict of the residual net in `examples/mnist_resnet.rs`
/// (`Net().state_dict()`): names and shapes, batch-norm buffers included.
fn pytorch_resnet_state() -> Vec<(String, Vec<usize>)> {
    let bn = |prefix: &str, c: usize| {
        [
            "weight",
            "bias",
            "running_mean",
            "running_var",
            "num_batches_tracked",
        ]
        .into_iter()
        .map(move |n| {
            let shape = if n == "num_batches_tracked" {
                vec![]
            } else {
                vec![c]
            };
            (format!("{prefix}.{n}"), shape)
        })
        .collect::<Vec<_>>()
    };
    let mut state = vec![("stem.weight".to_string(), vec![32, 1, 3, 3])];
    state.extend(bn("bn", 32));
    for b in 0..2 {
        for i in 1..=2 {
            state.push((format!("blocks.{b}.conv{i}.weight"), vec![32, 32, 3, 3]));
            state.extend(bn(&format!("blocks.{b}.bn{i}"), 32));
        }
    }
    state.push(("head.weight".into(), vec![10, 32]));
    state.push(("head.bias".into(), vec![10]));
    state
}

/// The model tensors of a safetensors file (all but `optimizer.` state),
/// with their shapes, read from its JSON header.
fn model_tensors(path: &Path) -> Vec<(String, Vec<usize>)> {
    let file = bytes(path);
    let header_len = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&file[8..8 + header_len]).unwrap();
    // Each tensor is `"name": {"dtype": …, "shape": […], "data_offsets": […]}`.
    header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| *name != "__metadata__" && !name.starts_with("optimizer."))
        .map(|(name, entry)| {
            let shape = entry["shape"].as_array().unwrap();
            let shape = shape.iter().map(|d| d.as_u64().unwrap() as usize);
            (name.clone(), shape.collect())
        })
        .collect()
}

/// The residual net is the user's own structs (`Block`, `Net`); it trains,
/// and its checkpoint holds exactly PyTorch's state dict of the same module.
#[test]
fn the_resnet_trains_and_saves_pytorchs_state_dict() {
    let (dir, tmp) = (
        synthetic_mnist().to_string_lossy().into_owned(),
        TempDir::new("resnet"),
    );
    let save = tmp.file("resnet.safetensors");
    let mut args = vec![
        "--epochs",
        "1",
        "--train-limit",
        "640",
        "--test-limit",
        "200",
    ];
    args.extend(["--threads", "1", "--data-dir", &dir, "--save", &save]);
    args.extend(["--no-download", "--quiet", "--json"]);
    let accuracy = json_number(&run("mnist_resnet", &args), "test_accuracy");
    // No accuracy bar: after 10 steps the eval-mode batch-norm running
    // statistics (momentum 0.1) are still far from the data's (0.2 seen).
    assert!(accuracy.is_finite(), "test accuracy: {accuracy}");
    let mut saved = model_tensors(Path::new(&save));
    let mut expected = pytorch_resnet_state();
    saved.sort();
    expected.sort();
    assert_eq!(saved, expected);
}
