//! The initialization study (`examples/init_study`), run with `--quick` into
//! a temporary folder: the plots and the document appear, and the numbers
//! that must hold do.
//!
//! Needs the real MNIST files: with `MNIST_DIR` unset it prints a note and
//! passes vacuously (CI sets it). `cargo test` builds the example next to
//! this test's binary, which is where it is run from.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/<profile>/examples/init_study`, built by `cargo test`.
fn example() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let path = profile_dir
        .join("examples")
        .join(format!("init_study{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run this test through `cargo test`, which builds the examples",
        path.display()
    );
    path
}

/// A folder removed when dropped (even when an assertion fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
        std::fs::create_dir_all(&path).expect("a temporary folder");
        TempDir(path)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn quick_study_writes_plots_tables_and_sound_numbers() {
    if std::env::var_os("MNIST_DIR").is_none() {
        eprintln!("MNIST_DIR is not set: skipping the init study, which needs the MNIST files");
        return;
    }
    let dir = TempDir::new("ember-init-study");
    let out = Command::new(example())
        .args(["--quick", "--threads", "2", "--out-dir"])
        .arg(dir.path())
        .output()
        .expect("the example starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "init_study --quick failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checks: HashMap<&str, f64> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("check "))
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k, v.parse().expect("a number after the check's name")))
        .collect();
    let check = |name: &str| -> f64 {
        *checks
            .get(name)
            .unwrap_or_else(|| panic!("no `check {name}` line in:\n{stdout}"))
    };

    // Experiment 1: arm 0 normal, 1 truncated (TF), 2 truncated corrected.
    assert_eq!(
        check("dist_1_beyond_2sigma_max"),
        0.0,
        "a truncated sample beyond 2σ"
    );
    let ratio = check("dist_1_std_ratio");
    assert!(
        (ratio - 0.8796).abs() < 0.005,
        "truncated std ratio {ratio}, want ≈ 0.88"
    );
    let corrected = check("dist_2_std_ratio");
    assert!(
        (corrected - 1.0).abs() < 0.005,
        "corrected std ratio {corrected}, want ≈ 1"
    );
    let normal = check("dist_0_std_ratio");
    assert!((normal - 1.0).abs() < 0.005, "normal std ratio {normal}");
    // A normal puts 4.55 % of 401,408 weights (≈ 18,270) beyond 2σ.
    let tail = check("dist_0_beyond_2sigma_max");
    assert!((17_500.0..19_500.0).contains(&tail), "normal tail {tail}");
    // Experiment 3: with ReLU, the truncated normal shrinks the signal by
    // ≈ 0.88 per layer against the normal: 0.88^10 ≈ 0.28 after 10 layers.
    let depth = check("depth_relu_trunc_over_normal_at_10");
    assert!(
        (0.15..0.45).contains(&depth),
        "trunc/normal after 10 ReLU layers: {depth}"
    );
    // Experiment 5: a 0.1 bias leaves no unit dead at initialization.
    assert_eq!(check("bias_default_dead_init_layer1_pct"), 0.0);
    // Experiment 4: even the quick ReLU runs learn (chance is 10 %; the
    // sigmoid MLP needs more steps than --quick gives it to leave chance).
    for (name, value) in &checks {
        if name.starts_with("train_relu_") {
            assert!(*value > 40.0, "{name} = {value}");
        }
        if name.starts_with("train_") {
            assert!(value.is_finite() && *value >= 0.0, "{name} = {value}");
        }
    }

    let doc = std::fs::read_to_string(dir.path().join("initialization.md"))
        .expect("initialization.md was written");
    for section in [
        "distributions",
        "saturation",
        "depth",
        "training",
        "relu_bias",
        "run",
    ] {
        assert!(
            doc.contains(&format!("<!-- init_study:{section}:begin -->")),
            "no {section} section in the document"
        );
    }
    for svg in [
        "init_distributions.svg",
        "init_saturation_sigmoid.svg",
        "init_saturation_tanh.svg",
        "init_depth_activations.svg",
        "init_depth_gradients.svg",
        "init_training_relu.svg",
        "init_training_sigmoid.svg",
    ] {
        let path = dir.path().join("img").join(svg);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(text.starts_with("<svg"), "{svg} is not an SVG");
        assert!(
            doc.contains(&format!("img/{svg}")),
            "the document does not show {svg}"
        );
    }
}
