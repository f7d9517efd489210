//! Data-parallel training as a user runs it: `mpiexec -n 2` over the
//! example binaries (feature `mpi`), on the synthetic MNIST of `support`.
//! Without the feature only the refusal of `--distributed` is tested; with
//! it, a missing `mpiexec` is a failure, never a skip.

mod support;

use std::process::Output;

use support::{run_in, synthetic_mnist, TempDir};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn distributed_outside_mpiexec_or_without_mpi_is_one_clear_error() {
    let tmp = TempDir::new("dist-refused");
    let data = synthetic_mnist().to_string_lossy().into_owned();
    for example in ["mnist_mlp", "mnist_cnn"] {
        let out = run_in(
            example,
            &["--distributed", "--data-dir", &data, "--epochs", "1"],
            tmp.path(),
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{example}: {err}");
        let expected = if cfg!(feature = "mpi") {
            "error: --distributed: not started by mpiexec"
        } else {
            "error: --distributed: this program was built without MPI"
        };
        assert!(err.starts_with(expected), "{example}: {err}");
        assert_eq!(err.lines().count(), 1, "{example}: one line: {err}");
    }
}

#[cfg(feature = "mpi")]
mod mpi {
    use std::io::{BufRead, BufReader};
    use std::path::Path;
    use std::process::{Command, Output, Stdio};
    use std::time::{Duration, Instant};

    use super::stderr;
    use super::support::{example, synthetic_mnist, TempDir};

    /// `mpiexec` with `args` (programs and their options), in `cwd`.
    fn mpiexec(args: &[String], cwd: &Path) -> Command {
        let found = Command::new("mpiexec").arg("--version").output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "mpiexec is missing: install MPICH (apt-get install mpich libmpich-dev libclang-dev)"
        );
        let mut cmd = Command::new("mpiexec");
        cmd.args(args).env_remove("MNIST_DIR").current_dir(cwd);
        cmd
    }

    /// `-n 2 <mnist_mlp> --distributed <common> <args>` as mpiexec words.
    fn two_ranks(args: &[&str]) -> Vec<String> {
        let data = synthetic_mnist().to_string_lossy().into_owned();
        let mut words: Vec<String> = ["-n", "2"].iter().map(|s| s.to_string()).collect();
        words.push(example("mnist_mlp").to_string_lossy().into_owned());
        words.extend(
            [
                "--distributed",
                "--data-dir",
                &data,
                "--threads",
                "1",
                "--hidden",
                "64",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        words.extend(args.iter().map(|s| s.to_string()));
        words
    }

    /// The value of `key` in a JSON summary line (numbers and strings).
    fn field(line: &str, key: &str) -> String {
        let start = line
            .find(&format!("\"{key}\":"))
            .unwrap_or_else(|| panic!("no {key} in {line}"))
            + key.len()
            + 3;
        let rest = &line[start..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        rest[..end].trim_matches('"').to_string()
    }

    fn json_lines(out: &Output) -> Vec<String> {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn two_ranks_train_to_identical_parameters_and_resume() {
        let tmp = TempDir::new("dist-two");
        let (ckpt, metrics) = (tmp.file("run.safetensors"), tmp.file("metrics.csv"));
        let args = [
            "--epochs",
            "1",
            "--json",
            "--save",
            &ckpt,
            "--metrics",
            &metrics,
        ];
        let out = mpiexec(&two_ranks(&args), tmp.path()).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let lines = json_lines(&out);
        assert_eq!(lines.len(), 2, "one summary per rank: {lines:?}");
        let mut ranks: Vec<String> = lines.iter().map(|l| field(l, "rank")).collect();
        ranks.sort();
        assert_eq!(ranks, ["0", "1"]);
        for line in &lines {
            assert_eq!(field(line, "world_size"), "2");
            assert!(field(line, "samples_per_second").parse::<f64>().unwrap() > 0.0);
            let accuracy: f64 = field(line, "test_accuracy").parse().unwrap();
            assert!(accuracy > 0.5, "learned the synthetic digits: {line}");
        }
        let sha = field(&lines[0], "parameters_sha256");
        assert_eq!(sha.len(), 64);
        assert_eq!(sha, field(&lines[1], "parameters_sha256"), "bitwise equal");
        // Rank 0 alone wrote the files: one header and one row.
        let csv = std::fs::read_to_string(&metrics).unwrap();
        assert_eq!(csv.lines().count(), 2, "{csv}");

        // Resumed for a second epoch, still identical on both ranks.
        let args = ["--epochs", "2", "--json", "--resume", &ckpt];
        let out = mpiexec(&two_ranks(&args), tmp.path()).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let lines = json_lines(&out);
        assert_eq!(lines.len(), 2, "{lines:?}");
        let resumed = field(&lines[0], "parameters_sha256");
        assert_ne!(resumed, sha, "the second epoch trained");
        assert_eq!(resumed, field(&lines[1], "parameters_sha256"));
    }

    #[test]
    fn ranks_with_different_options_stop_naming_the_difference() {
        let tmp = TempDir::new("dist-mismatch");
        let data = synthetic_mnist().to_string_lossy().into_owned();
        let exe = example("mnist_mlp").to_string_lossy().into_owned();
        let rank = |lr: &str| -> Vec<String> {
            [
                "-n",
                "1",
                &exe,
                "--distributed",
                "--data-dir",
                &data,
                "--threads",
                "1",
            ]
            .iter()
            .chain(["--epochs", "1", "--lr", lr].iter())
            .map(|s| s.to_string())
            .collect()
        };
        let mut words = rank("0.001");
        words.push(":".into());
        words.extend(rank("0.01"));
        let started = Instant::now();
        let out = mpiexec(&words, tmp.path()).output().unwrap();
        let err = stderr(&out);
        assert!(!out.status.success(), "{err}");
        assert!(
            err.contains("error: the ranks disagree: --lr is 0.01 on rank 1, 0.001 on rank 0"),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn a_batch_too_small_to_share_is_refused_on_every_rank() {
        let tmp = TempDir::new("dist-small");
        let out = mpiexec(&two_ranks(&["--batch-size", "1"]), tmp.path())
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(!out.status.success(), "{err}");
        let line =
            "error: --batch-size 1 over 1200 training images leaves a batch of 1 for 2 ranks";
        assert_eq!(err.matches(line).count(), 2, "{err}");
    }

    /// The pid of the process whose environment has `PMI_RANK=<rank>` and
    /// whose command line has `marker`.
    fn pid_of_rank(rank: usize, marker: &str) -> Option<u32> {
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let dir = entry.path();
            let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            let environ = std::fs::read(dir.join("environ")).unwrap_or_default();
            let has = |bytes: &[u8], s: &str| bytes.split(|&b| b == 0).any(|w| w == s.as_bytes());
            if has(&cmdline, marker) && has(&environ, &format!("PMI_RANK={rank}")) {
                return Some(pid);
            }
        }
        None
    }

    #[test]
    fn a_killed_rank_ends_the_whole_run_within_seconds() {
        let tmp = TempDir::new("dist-kill");
        // Long enough never to finish; the seed marks this run's processes.
        let marker = "424242";
        let args = ["--epochs", "100000", "--seed", marker];
        let mut child = mpiexec(&two_ranks(&args), tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait for training to be under way: rank 0 reports its first epoch.
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            line.clear();
            assert!(
                stdout.read_line(&mut line).unwrap() > 0,
                "the run ended early"
            );
            if line.contains("epoch   1/") || Instant::now() > deadline {
                break;
            }
        }
        let pid = pid_of_rank(1, marker).expect("rank 1 is running");
        let killed = Command::new("kill").args(["-9", &pid.to_string()]).status();
        assert!(killed.unwrap().success());
        let killed_at = Instant::now();
        // Keep draining stdout so rank 0 never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if killed_at.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("the other rank still runs 20 s after rank 1 was killed");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(!status.success(), "mpiexec reports the failure: {status}");
        assert!(pid_of_rank(0, marker).is_none(), "rank 0 is gone too");
        eprintln!(
            "the run ended {:.2} s after the kill",
            killed_at.elapsed().as_secs_f64()
        );
    }
}
