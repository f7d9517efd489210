//! The MNIST examples, run as a user would run them (on reduced runs).
//!
//! These need the real data: with `MNIST_DIR` unset they print a note and
//! pass vacuously (CI sets it). `cargo test` builds the examples next to this
//! test's binary, which is where they are run from.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn mnist_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("MNIST_DIR").map(PathBuf::from);
    if dir.is_none() {
        eprintln!("MNIST_DIR is not set: skipping a test that needs the real MNIST files");
    }
    dir
}

/// `target/<profile>/examples/<name>`, built by `cargo test`.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run through `cargo test`, which builds examples",
        path.display()
    );
    path
}

fn run(name: &str, args: &[&str]) -> Output {
    let out = Command::new(example(name))
        .args(args)
        .output()
        .expect("the example starts");
    assert!(
        out.status.success(),
        "{name} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The value of `"key":<number>` in the example's last line of JSON.
fn json_number(out: &Output, key: &str) -> f64 {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .last()
        .expect("the example printed something");
    let start = line
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {line}"));
    let rest = &line[start + key.len() + 3..];
    let end = rest.find([',', '}']).expect("a JSON number ends");
    rest[..end].parse().expect("a number")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ember-examples-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
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

/// One epoch of the default recipe lands at 96.3 % ± 0.5 % depending on the
/// seed (seeds 0–7 gave 95.5–96.9 % when this test was written), so the
/// assertion is on the mean of three seeds, not on one lucky or unlucky run.
#[test]
fn the_classic_mlp_reaches_96_percent_in_one_epoch() {
    let Some(dir) = mnist_dir() else { return };
    let dir = dir.to_string_lossy();
    let mut accuracies = Vec::new();
    for seed in ["0", "1", "2"] {
        let args = ["--epochs", "1", "--seed", seed, "--data-dir", &dir];
        let mut all = args.to_vec();
        all.extend(["--no-download", "--quiet", "--json"]);
        let out = run("mnist_mlp", &all);
        assert!(json_number(&out, "samples_per_second") > 0.0);
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
    let Some(dir) = mnist_dir() else { return };
    let (dir, tmp) = (dir.to_string_lossy().to_string(), temp_dir("threads"));
    let save = |threads: &str| {
        let path = tmp.join(format!("t{threads}.safetensors"));
        let common = [
            "--epochs",
            "1",
            "--train-limit",
            "3000",
            "--test-limit",
            "500",
            "--seed",
            "7",
        ];
        let mut args: Vec<&str> = common.to_vec();
        let p = path.to_string_lossy().to_string();
        args.extend([
            "--threads",
            threads,
            "--data-dir",
            &dir,
            "--no-download",
            "--quiet",
            "--save",
            &p,
        ]);
        run("mnist_mlp", &args);
        path
    };
    assert_same_checkpoint(
        &save("1"),
        &save("2"),
        "weights differ between 1 and 2 threads",
    );
    std::fs::remove_dir_all(tmp).unwrap();
}

#[test]
fn save_then_resume_equals_training_straight_through() {
    let Some(dir) = mnist_dir() else { return };
    let (dir, tmp) = (dir.to_string_lossy().to_string(), temp_dir("resume"));
    let path = |name: &str| tmp.join(name).to_string_lossy().to_string();
    let train = |extra: &[&str]| {
        let mut args = vec![
            "--train-limit",
            "2000",
            "--test-limit",
            "200",
            "--seed",
            "3",
        ];
        args.extend(["--data-dir", &dir, "--no-download", "--quiet"]);
        args.extend(extra);
        run("mnist_mlp", &args);
    };
    let (straight, first, resumed) = (path("straight"), path("first"), path("resumed"));
    train(&["--epochs", "3", "--save", &straight]);
    train(&["--epochs", "2", "--save", &first]);
    train(&["--epochs", "3", "--resume", &first, "--save", &resumed]);
    assert_same_checkpoint(
        Path::new(&straight),
        Path::new(&resumed),
        "2 epochs + resume for 1 differs from 3 epochs straight",
    );
    std::fs::remove_dir_all(tmp).unwrap();
}

#[test]
fn epochs_zero_saves_the_initial_weights_and_missing_data_is_explained() {
    let tmp = temp_dir("zero");
    let empty = tmp.join("no-data");
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(example("mnist_mlp"))
        .args(["--epochs", "1", "--no-download", "--data-dir"])
        .arg(&empty)
        .env_remove("MNIST_DIR")
        .current_dir(&tmp)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("MNIST_DIR") && stderr.contains("data/mnist"),
        "unhelpful error: {stderr}"
    );

    let Some(dir) = mnist_dir() else { return };
    let save = tmp.join("init.safetensors");
    run(
        "mnist_mlp",
        &[
            "--epochs",
            "0",
            "--data-dir",
            &dir.to_string_lossy(),
            "--no-download",
            "--quiet",
            "--save",
            &save.to_string_lossy(),
        ],
    );
    let file = bytes(&save);
    let header_len = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8_lossy(&file[8..8 + header_len]);
    for name in ["\"0.weight\"", "\"0.bias\"", "\"3.weight\"", "\"6.bias\""] {
        assert!(header.contains(name), "{name} missing from {header}");
    }
    assert!(
        header.contains("[512,784]"),
        "PyTorch layout (out, in) expected: {header}"
    );
    std::fs::remove_dir_all(tmp).unwrap();
}

/// Also the convnet's end-to-end determinism: its checkpoint after one epoch
/// is the same file with 1 and 2 threads (per-image convolutions, per-task
/// weight-gradient sums, dropout on 4-D activations, pooling).
#[test]
fn the_cnn_learns_from_a_small_subset_alike_on_one_or_two_threads() {
    let Some(dir) = mnist_dir() else { return };
    let (dir, tmp) = (dir.to_string_lossy().to_string(), temp_dir("cnn"));
    let train = |threads: &str| {
        let path = tmp.join(format!("t{threads}.safetensors"));
        let p = path.to_string_lossy().to_string();
        let args = [
            "--epochs",
            "1",
            "--train-limit",
            "2000",
            "--test-limit",
            "1000",
            "--threads",
            threads,
            "--data-dir",
            &dir,
            "--save",
            &p,
            "--no-download",
            "--quiet",
            "--json",
        ];
        (json_number(&run("mnist_cnn", &args), "test_accuracy"), path)
    };
    let ((accuracy, one), (_, two)) = (train("1"), train("2"));
    // Chance is 10 %; 32 steps of Adam take the convnet far past it.
    assert!(
        accuracy >= 0.5,
        "test accuracy after one epoch on 2,000 images: {accuracy}"
    );
    assert_same_checkpoint(&one, &two, "the convnet differs between 1 and 2 threads");
    std::fs::remove_dir_all(tmp).unwrap();
}
