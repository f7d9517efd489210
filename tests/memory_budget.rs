//! Runs that would not fit in memory are refused before they start, with
//! the option to change and what would fit (`examples/common/memory.rs`).
//! `EMBER_MEMORY_BUDGET` stands in for the machine's memory, so the
//! refusals do not depend on the machine the tests run on.

mod support;

use std::path::Path;
use std::process::Output;

use support::{command, json_number, synthetic_mnist, TempDir};

fn run_with_budget(name: &str, budget: &str, args: &[&str], cwd: &Path) -> Output {
    command(name, cwd)
        .args(args)
        .env("EMBER_MEMORY_BUDGET", budget)
        .output()
        .expect("the example starts")
}

/// The base command line: the synthetic set, one short epoch, metrics to
/// `witness` (which a run that started would write).
fn base(data: &str, witness: &Path) -> Vec<String> {
    [
        "--no-download",
        "--data-dir",
        data,
        "--epochs",
        "1",
        "--train-limit",
        "240",
        "--test-limit",
        "64",
        "--metrics",
        &witness.to_string_lossy(),
    ]
    .map(String::from)
    .to_vec()
}

/// Checks a refusal: exit status 1 (not a panic, not the allocator's
/// abort), one first stderr line starting with `start`, nothing on stdout,
/// no metrics written; returns that line.
#[track_caller]
fn refused(out: &Output, start: &str, witness: &Path) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr.lines().next().unwrap_or("").to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(first.starts_with(start), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "work started: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!witness.exists(), "{} was written", witness.display());
    first
}

#[test]
fn a_model_too_large_for_the_budget_is_refused_before_it_is_built() {
    let tmp = TempDir::new("memory-model");
    let data = synthetic_mnist().to_string_lossy().into_owned();
    let witness = tmp.path().join("metrics.csv");
    let mut args = base(&data, &witness);
    // 8.6 billion parameters: 34 GB for the weights alone.
    args.extend(["--hidden", "65536,65536,65536"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_with_budget("mnist_mlp", "8G", &args, tmp.path());
    let line = refused(&out, "error: --hidden 65536,65536,65536: ", &witness);
    assert!(line.contains("8642166794 parameters"), "{line}");
    assert!(
        line.contains("EMBER_MEMORY_BUDGET allows 8.0 GiB"),
        "{line}"
    );

    // The budget's own value is checked.
    let out = run_with_budget("mnist_mlp", "lots", &args, tmp.path());
    refused(&out, "error: EMBER_MEMORY_BUDGET=\"lots\"", &witness);
}

#[test]
fn a_batch_too_large_for_the_budget_is_refused_and_the_size_it_names_fits() {
    let tmp = TempDir::new("memory-batch");
    let data = synthetic_mnist().to_string_lossy().into_owned();
    // Budgets that hold a few to a hundred images of each model, not 240.
    for (name, budget, bytes) in [
        ("mnist_mlp", "10M", 10u64 << 20),
        ("mnist_cnn", "48M", 48 << 20),
        ("mnist_resnet", "96M", 96 << 20),
    ] {
        let witness = tmp.path().join(format!("{name}.csv"));
        let mut args = base(&data, &witness);
        args.extend(["--batch-size", "240"].map(String::from));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_with_budget(name, budget, &argv, tmp.path());
        let line = refused(&out, "error: --batch-size 240: ", &witness);
        let fits: usize = line
            .split("--batch-size ")
            .nth(2)
            .and_then(|rest| rest.strip_suffix(" or less would fit"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name}: no size that fits in {line}"));
        assert!((2..240).contains(&fits), "{name}: {line}");

        // That size trains, and its tensors stay inside the budget.
        let at = args.iter().position(|a| a == "240").unwrap();
        args[at] = fits.to_string();
        args.push("--json".into());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_with_budget(name, budget, &argv, tmp.path());
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(witness.exists(), "{name}: no metrics written");
        // A byte count far below 2^53: exact as an f64.
        let peak = json_number(&out, "peak_tensor_bytes") as u64;
        assert!(
            peak <= bytes,
            "{name}: batch {fits} held {peak} bytes, budget {bytes}"
        );
        assert!(
            peak > bytes / 4,
            "{name}: batch {fits} held only {peak} bytes of {bytes}"
        );
    }
}
