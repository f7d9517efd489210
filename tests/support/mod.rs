//! What the example tests share: the example binaries, temporary folders,
//! and a tiny synthetic MNIST written as real IDX files, so the examples
//! run through their front door whatever data the machine has.

#![allow(dead_code)] // each test file uses a different part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use ember::mnist::idx::{write_idx, IdxData};

/// `target/<profile>/examples/<name>`, built by `cargo test`.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run through `cargo test`, which builds examples",
        path.display()
    );
    path
}

/// The command that runs an example in `cwd`, without `$MNIST_DIR` (every
/// test says where its data is) or a memory budget of the caller's; a test
/// adds its own environment to it.
pub fn command(name: &str, cwd: &Path) -> Command {
    let mut command = Command::new(example(name));
    command
        .env_remove("MNIST_DIR")
        .env_remove("EMBER_MEMORY_BUDGET")
        .current_dir(cwd);
    command
}

/// Runs an example with `args` in `cwd` ([`command`]).
pub fn run_in(name: &str, args: &[&str], cwd: &Path) -> Output {
    command(name, cwd)
        .args(args)
        .output()
        .expect("the example starts")
}

/// The value of `"key":<number>` in the example's last line of JSON.
pub fn json_number(out: &Output, key: &str) -> f64 {
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

/// A folder removed when dropped (even when an assertion fails).
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh folder named after this process and `name`.
    pub fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("ember-tests-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("a temporary folder");
        TempDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside it, as a string for the command line.
    pub fn file(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Training images in the synthetic set.
pub const SYNTHETIC_TRAIN: usize = 1200;
/// Test images in the synthetic set.
pub const SYNTHETIC_TEST: usize = 300;

/// `n` 28×28 images and labels `i % 10`: digit `d` is a bright bar across
/// rows `4 + 2d` and `5 + 2d`, over a faint pseudo-random background,
/// so the examples can learn it in one epoch (a test that it learned can
/// fail).
fn synthetic(n: usize, salt: usize) -> (Vec<u8>, Vec<u8>) {
    let mut pixels = Vec::with_capacity(n * 784);
    for i in 0..n {
        let d = i % 10;
        for r in 0..28 {
            for c in 0..28 {
                let noise = (((i * 7919 + r * 131 + c * 17 + salt) * 2_654_435_761) >> 7) % 48;
                let bar = (r == 4 + 2 * d || r == 5 + 2 * d) && (4..24).contains(&c);
                pixels.push(if bar {
                    200 + (noise as u8)
                } else {
                    noise as u8
                });
            }
        }
    }
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    (pixels, labels)
}

/// The folder of the synthetic set, under Cargo's `target/tmp`: the four
/// MNIST files under their canonical names, (re)written once per test
/// process, each renamed into place so concurrent writers are harmless.
pub fn synthetic_mnist() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("synthetic-mnist");
        std::fs::create_dir_all(&dir).expect("a folder for the synthetic set");
        let put = |name: String, bytes: Vec<u8>| {
            let tmp = dir.join(format!(".{name}.{}", std::process::id()));
            std::fs::write(&tmp, bytes).unwrap();
            std::fs::rename(&tmp, dir.join(name)).unwrap();
        };
        for (prefix, n, salt) in [("train", SYNTHETIC_TRAIN, 0), ("t10k", SYNTHETIC_TEST, 1)] {
            let (pixels, labels) = synthetic(n, salt);
            put(
                format!("{prefix}-images-idx3-ubyte"),
                write_idx(&[n as u32, 28, 28], &IdxData::U8(pixels)),
            );
            put(
                format!("{prefix}-labels-idx1-ubyte"),
                write_idx(&[n as u32], &IdxData::U8(labels)),
            );
        }
        dir
    })
}
