//! Hostile command lines through every example binary: each must exit with
//! a usage error (never a panic), print one line starting with `error:`
//! that names the option and the value, and start no work — no training
//! line on stdout, no file written.
//!
//! The data folder given is the synthetic MNIST (`support`), so an option
//! that slipped through would really start training, and the test would see it.

mod support;

use std::path::Path;

use support::{run_in, synthetic_mnist, TempDir};

/// Runs `example` with `args` and checks the refusal: exit status 2 (a
/// usage error; 101 would be a panic), a first stderr line starting with
/// `error:` and containing every string of `names`, nothing on stdout,
/// and `witness` (a file a run would write) not created.
#[track_caller]
fn refused(example: &str, args: &[&str], names: &[&str], cwd: &Path, witness: &Path) {
    let out = run_in(example, args, cwd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr.lines().next().unwrap_or("");
    let context = format!("{example} {args:?}:\n{stderr}");
    assert_eq!(out.status.code(), Some(2), "{context}");
    assert!(first.starts_with("error: "), "{context}");
    for name in names {
        assert!(first.contains(name), "{name:?} is not named in {context}");
    }
    assert!(
        out.stdout.is_empty(),
        "{context}\nwork started: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !witness.exists(),
        "{context}\n{} was written",
        witness.display()
    );
}

/// Runs `example` with `args` and checks that it trained: success, and
/// `witness` (its metrics file) written.
#[track_caller]
fn trains(example: &str, args: &[&str], cwd: &Path, witness: &Path) {
    let out = run_in(example, args, cwd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{example} {args:?}:\n{stderr}");
    assert!(witness.exists(), "{example} {args:?} wrote no metrics");
}

/// The bad values every MNIST example must refuse: (option, value).
fn common_cases(tmp: &TempDir) -> Vec<(&'static str, String)> {
    let file = tmp.file("a-file");
    std::fs::write(&file, b"not a folder").unwrap();
    let s = |v: &str| v.to_string();
    vec![
        ("--batch-size", s("0")),
        ("--batch-size", s("-3")),
        ("--lr", s("nan")),
        ("--lr", s("-1")),
        ("--lr", s("inf")),
        ("--lr", s("fast")),
        ("--epochs", s("-1")),
        ("--epochs", s("18446744073709551615")),
        ("--label-smoothing", s("1")),
        ("--label-smoothing", s("nan")),
        ("--bias-init", s("nan")),
        ("--bias-init", s("zero")),
        ("--threads", s("0")),
        ("--threads", s("100000")),
        ("--train-limit", s("0")),
        ("--test-limit", s("0")),
        ("--optimizer", s("lbfgs")),
        ("--init", s("random")),
        ("--schedule", s("step")),
        ("--seed", s("-1")),
        ("--data-dir", s("/nonexistent/ember-mnist")),
        ("--data-dir", file.clone()),
        ("--resume", s("/nonexistent/run.safetensors")),
        ("--resume", tmp.path().to_string_lossy().into_owned()),
        ("--save", s("/nonexistent/run.safetensors")),
        ("--save", format!("{file}/run.safetensors")),
        ("--save", tmp.path().to_string_lossy().into_owned()),
        ("--metrics", s("/nonexistent/metrics.csv")),
        ("--plot", format!("{file}/curves.svg")),
    ]
}

#[test]
fn the_mnist_examples_refuse_bad_options_before_any_work() {
    let tmp = TempDir::new("cli");
    let data = synthetic_mnist().to_string_lossy().into_owned();
    let witness = tmp.path().join("metrics.csv");
    let base: Vec<(&str, String)> = vec![
        ("--data-dir", data.clone()),
        ("--epochs", "1".into()),
        ("--train-limit", "64".into()),
        ("--test-limit", "64".into()),
        ("--metrics", witness.to_string_lossy().into_owned()),
    ];
    // The base command line with `option` replaced by `value` (clap refuses
    // an option given twice); `--opt=value` lets values start with '-'.
    let line = |option: &str, value: Option<&str>| -> Vec<String> {
        let mut args = vec!["--no-download".to_string()];
        for (o, v) in &base {
            if *o != option {
                args.push(format!("{o}={v}"));
            }
        }
        if let Some(value) = value {
            args.push(format!("{option}={value}"));
        }
        args
    };
    let mut cases: Vec<(&str, &str, String)> = Vec::new();
    for example in ["mnist_mlp", "mnist_cnn", "mnist_resnet"] {
        cases.extend(common_cases(&tmp).into_iter().map(|(o, v)| (example, o, v)));
    }
    for (option, value) in [
        ("--dropout", "1.5"),
        ("--dropout", "-0.5"),
        ("--dropout", "nan"),
        ("--dropout", "1"),
        ("--hidden", "0"),
        ("--hidden", "512,0"),
        ("--hidden", "512,x"),
        ("--hidden", "100000000"),
        ("--activation", "gelu"),
    ] {
        cases.push(("mnist_mlp", option, value.to_string()));
    }
    for (example, option, value) in &cases {
        let args = line(option, Some(value));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        // "512,0" is refused at its bad element, "0".
        let named = value.rsplit(',').next().unwrap_or(value);
        refused(example, &args, &[option, named], tmp.path(), &witness);
    }
    // And the control: the same base command line trains and writes.
    let args = line("", None);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    trains("mnist_mlp", &args, tmp.path(), &witness);
}

/// Two output options naming one file are refused before any work, however
/// the path is spelled: each write would replace the other's.
#[test]
fn two_outputs_in_one_file_are_refused() {
    let tmp = TempDir::new("cli-same-file");
    let data = synthetic_mnist().to_string_lossy().into_owned();
    let file = tmp.path().join("run.out");
    let spelled = tmp.path().join(".").join("run.out");
    let (file, spelled) = (file.to_string_lossy(), spelled.to_string_lossy());
    let base = [
        "--no-download",
        "--data-dir",
        &data,
        "--epochs",
        "1",
        "--train-limit",
        "64",
    ];
    for (first, second) in [
        ("--save", "--metrics"),
        ("--metrics", "--plot"),
        ("--save", "--plot"),
    ] {
        for example in ["mnist_mlp", "mnist_cnn", "mnist_resnet"] {
            let mut args = base.to_vec();
            args.extend([first, &*file, second, &*spelled]);
            let witness = tmp.path().join("run.out");
            refused(
                example,
                &args,
                &[first, second, &file],
                tmp.path(),
                &witness,
            );
        }
    }
}

/// A negative number given as its own word (`--lr -1`, not `--lr=-1`)
/// reaches the option's check, which names the rule, instead of clap taking
/// it for an unknown flag; and a negative bias is a value like any other.
#[test]
fn negative_numbers_as_separate_words_are_values() {
    let tmp = TempDir::new("cli-negative");
    let data = synthetic_mnist().to_string_lossy().into_owned();
    let witness = tmp.path().join("metrics.csv");
    let metrics = witness.to_string_lossy().into_owned();
    let base = [
        "--no-download",
        "--data-dir",
        &data,
        "--epochs",
        "1",
        "--train-limit",
        "64",
        "--test-limit",
        "64",
        "--metrics",
        &metrics,
    ];
    for (option, value, rule) in [
        ("--lr", "-1", ">= 0"),
        ("--batch-size", "-3", "whole number"),
        ("--dropout", "-0.5", "[0, 1)"),
        ("--hidden", "-5", "whole number"),
        ("--seed", "-1", "invalid digit"),
    ] {
        let mut args = base.to_vec();
        args.extend([option, value]);
        refused(
            "mnist_mlp",
            &args,
            &[option, value, rule],
            tmp.path(),
            &witness,
        );
    }
    let mut args = base.to_vec();
    args.extend(["--bias-init", "-0.1"]);
    trains("mnist_mlp", &args, tmp.path(), &witness);
}

#[test]
fn init_study_refuses_bad_options_before_any_work() {
    let tmp = TempDir::new("cli-init");
    let data = synthetic_mnist().to_string_lossy().into_owned();
    let out_dir = tmp.path().join("out");
    let file = tmp.file("a-file");
    std::fs::write(&file, b"not a folder").unwrap();
    for (option, value) in [
        ("--seeds", "0"),
        ("--seeds", "1"),
        ("--epochs", "0"),
        ("--train-limit", "0"),
        ("--threads", "0"),
        ("--data-dir", "/nonexistent/ember-mnist"),
        ("--data-dir", file.as_str()),
    ] {
        let mut args = vec![
            "--quick".to_string(),
            format!("--out-dir={}", out_dir.display()),
            format!("{option}={value}"),
        ];
        if option != "--data-dir" {
            args.push(format!("--data-dir={data}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused("init_study", &args, &[option, value], tmp.path(), &out_dir);
    }
    // An output folder that cannot be made: refused before any experiment.
    let bad_out = format!("{file}/out");
    let args = ["--quick", "--data-dir", &data, "--out-dir", &bad_out];
    let out = run_in("init_study", &args, tmp.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: --out-dir") && stderr.contains(&bad_out),
        "{stderr}"
    );
    assert!(!stderr.contains("distributions"), "work started: {stderr}");
}

#[test]
fn train_throughput_refuses_unknown_words() {
    let tmp = TempDir::new("cli-throughput");
    let nothing = tmp.path().join("nothing");
    for word in ["bogus", "0t", "2000t", "-5t", "t"] {
        refused(
            "train_throughput",
            &["--", word],
            &[word],
            tmp.path(),
            &nothing,
        );
    }
}

#[test]
fn gemm_report_and_kernel_check_refuse_bad_options() {
    let tmp = TempDir::new("cli-reports");
    let nothing = tmp.path().join("nothing");
    for (args, name) in [
        (&["--bogus"][..], "--bogus"),
        (&["--child", "0"], "0"),
        (&["--child", "two"], "two"),
        (&["--child", "1", "--peak=-1"], "-1"),
        (&["--child", "1", "--peak", "NaN"], "NaN"),
        (&["1t"], "1t"),
    ] {
        refused("gemm_report", args, &[name], tmp.path(), &nothing);
    }
    refused(
        "kernel_check",
        &["--bogus"],
        &["--bogus"],
        tmp.path(),
        &nothing,
    );
}
