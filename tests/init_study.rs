//! The initialization study (`examples/init_study`), run with `--quick` into
//! a temporary folder: the plots and the document appear, every expected
//! `check` line is printed, and the numbers that must hold do.
//!
//! On the real MNIST files when `MNIST_DIR` names them (CI sets it), else
//! on the tiny synthetic MNIST the tests write (`support`), where only the
//! numbers that do not depend on the data are checked; it never passes
//! without running. `cargo test` builds the example next to this test's
//! binary, which is where it is run from.

mod support;

use std::collections::HashMap;
use std::path::PathBuf;

use support::{run_in, synthetic_mnist, TempDir};

#[test]
fn quick_study_writes_plots_tables_and_sound_numbers() {
    let real = std::env::var_os("MNIST_DIR").map(PathBuf::from);
    if real.is_none() {
        eprintln!("MNIST_DIR is not set: the study runs on synthetic digits, MNIST's own numbers unchecked");
    }
    let data = real
        .clone()
        .unwrap_or_else(|| synthetic_mnist().to_path_buf());
    let dir = TempDir::new("init-study");
    let (data, out_dir) = (data.to_string_lossy(), dir.file("out"));
    let args = [
        "--quick",
        "--threads",
        "2",
        "--data-dir",
        &data,
        "--out-dir",
        &out_dir,
    ];
    let out = run_in("init_study", &args, dir.path());
    let dir = PathBuf::from(out_dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "init_study --quick failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checks = checks(&stdout);
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
    // Experiment 5: on MNIST a 0.1 bias leaves no unit dead at
    // initialization (the synthetic digits have other pixel statistics).
    let dead = check("bias_default_dead_init_layer1_pct");
    if real.is_some() {
        assert_eq!(dead, 0.0);
    }
    // Experiment 4: every initializer is trained with each activation, and
    // even the quick ReLU runs learn (chance is 10 %; the sigmoid MLP needs
    // more steps than --quick gives it to leave chance). Each line must be
    // there: a missing one fails, it is not passed over.
    let inits = [
        "TruncatedNormal",
        "Normal",
        "TruncatedNormalCorrected",
        "Uniform",
        "GlorotUniform",
        "HeNormal",
    ];
    for act in ["relu", "sigmoid"] {
        for init in inits {
            let name = format!("train_{act}_{init}_accuracy_pct");
            let value = check(&name);
            assert!(
                value.is_finite() && (0.0..=100.0).contains(&value),
                "{name} = {value}"
            );
            if act == "relu" {
                assert!(value > 40.0, "{name} = {value}");
            }
        }
    }
    assert!(check("total_seconds") > 0.0);

    let doc = std::fs::read_to_string(dir.join("initialization.md"))
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
        let path = dir.join("img").join(svg);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(text.starts_with("<svg"), "{svg} is not an SVG");
        assert!(
            doc.contains(&format!("img/{svg}")),
            "the document does not show {svg}"
        );
    }
}

/// The `check` lines of a run's stdout.
fn checks(stdout: &str) -> HashMap<String, f64> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("check "))
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.parse().expect("a number after the check's name"),
            )
        })
        .collect()
}

#[test]
fn quick_full_study_trains_every_cell_and_resumes_after_a_kill() {
    let real = std::env::var_os("MNIST_DIR").map(PathBuf::from);
    let data = real
        .clone()
        .unwrap_or_else(|| synthetic_mnist().to_path_buf());
    let dir = TempDir::new("init-study-full");
    let (data, out_dir) = (data.to_string_lossy(), dir.file("out"));
    let args = [
        "--full",
        "--quick",
        "--threads",
        "2",
        "--data-dir",
        &data,
        "--out-dir",
        &out_dir,
    ];
    let run = || {
        let out = run_in("init_study", &args, dir.path());
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(
            out.status.success(),
            "init_study --full --quick failed:\n{stdout}\n{stderr}"
        );
        (stdout, stderr)
    };
    let (stdout, stderr) = run();
    let found = checks(&stdout);
    let inits = [
        "TruncatedNormal",
        "TruncatedNormalCorrected",
        "Normal",
        "GlorotUniform",
        "HeNormal",
    ];
    let mut expected = Vec::new();
    for net in [
        "mlp_relu",
        "mlp_relu_bias0",
        "mlp_sigmoid",
        "deep_relu",
        "deep_tanh",
    ] {
        expected.extend(inits.map(|i| format!("full_{net}_{i}_accuracy_pct")));
    }
    expected.extend(
        ["TruncatedNormal", "Normal", "HeNormal"].map(|i| format!("full_cnn_{i}_accuracy_pct")),
    );
    for name in &expected {
        let value = *found
            .get(name)
            .unwrap_or_else(|| panic!("no `check {name}` line in:\n{stdout}"));
        assert!((0.0..=100.0).contains(&value), "{name} = {value}");
        // Even one epoch on 1,024 images leaves chance behind with ReLU.
        if real.is_some() && name.starts_with("full_mlp_relu") {
            assert!(value > 40.0, "{name} = {value}");
        }
    }
    let half_width = found["full_mlp_half_width_max_pts"];
    assert!(half_width.is_finite() && half_width >= 0.0);

    let out = PathBuf::from(&out_dir);
    let doc = std::fs::read_to_string(out.join("initialization.md")).expect("the page");
    for section in ["full_mlp", "full_deep", "full_cnn", "full_run"] {
        assert!(
            doc.contains(&format!("<!-- init_study:{section}:begin -->")),
            "no {section} section in the page"
        );
    }
    for svg in [
        "init_full_mlp_relu.svg",
        "init_full_mlp_sigmoid.svg",
        "init_full_deep.svg",
        "init_full_deep_loss.svg",
        "init_full_cnn.svg",
    ] {
        let text = std::fs::read_to_string(out.join("img").join(svg)).expect(svg);
        assert!(text.starts_with("<svg"), "{svg} is not an SVG");
        assert!(doc.contains(&format!("img/{svg}")), "the page lacks {svg}");
    }
    // 28 cells × 2 seeds, one record per line.
    let records = out.join("init_study_runs.jsonl");
    let text = std::fs::read_to_string(&records).expect("the records");
    assert_eq!(text.lines().count(), 56, "records:\n{stderr}");

    // A kill in the middle of writing the last record: the rerun keeps the
    // 55 whole ones, trains the one that was cut, and writes the same page.
    let cut = text.len() - text.lines().last().unwrap().len() / 2 - 1;
    std::fs::write(&records, &text[..cut]).unwrap();
    let (_, stderr) = run();
    assert!(
        stderr.contains("55 already in") && stderr.contains("1 to train"),
        "the rerun did not resume:\n{stderr}"
    );
    let again = std::fs::read_to_string(&records).unwrap();
    let whole = again
        .lines()
        .filter(|l| l.starts_with('{') && l.ends_with('}'))
        .count();
    assert_eq!(whole, 56, "records after the resume:\n{again}");
    let redone = std::fs::read_to_string(out.join("initialization.md")).unwrap();
    let tables = |page: &str| {
        // The run section's wall time differs; every table must not.
        page.split("<!-- init_study:full_run:begin -->")
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        tables(&redone),
        tables(&doc),
        "a resumed study changed its tables"
    );
}
