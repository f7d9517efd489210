//! `EMBER_GEMM_KERNEL` forces the GEMM kernel for a whole process, so each
//! case runs this test binary again as a child with the variable set: a
//! supported kernel must really run (and compute correctly), an unsupported
//! or unknown one must make the process fail loudly.

use std::process::Command;

use ember_tensor::gemm::{
    gemm, gemm_with_kernel, kernel_name, Kernel, MatMut, MatRef, Parallelism,
};

/// Set in the child: the kernel name it was started with.
const CHILD: &str = "EMBER_GEMM_ENV_TEST_CHILD";
const TEST: &str = "env_var_forces_the_kernel_or_fails_loudly";

fn run_child(value: &str) -> std::process::Output {
    Command::new(std::env::current_exe().expect("test binary path"))
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD, value)
        .env("EMBER_GEMM_KERNEL", value)
        .output()
        .expect("run the test binary as a child")
}

/// In the child: the selected kernel is the forced one, it runs every tile
/// of a product, and `gemm` (which uses it) gets the right answer.
fn child(name: &str) {
    assert_eq!(kernel_name(), name);
    let (m, k, n) = (37, 29, 41);
    let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 - 6.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 - 3.0).collect();
    let mut c = vec![f32::NAN; m * n];
    gemm(
        1.0,
        MatRef::new(&a, m, k, k, 1),
        MatRef::new(&b, k, n, 1, k), // B read transposed
        0.0,
        MatMut::new(&mut c, m, n, n, 1),
        Parallelism::Sequential,
    );
    for i in 0..m {
        for j in 0..n {
            // Small integers: every kernel's sum is exact.
            let want: f32 = (0..k).map(|p| a[i * k + p] * b[j * k + p]).sum();
            assert_eq!(c[i * n + j], want, "C[{i},{j}]");
        }
    }
    let run = gemm_with_kernel(
        Kernel::selected(),
        1.0,
        MatRef::new(&a, m, k, k, 1),
        MatRef::new(&b, k, n, 1, k),
        0.0,
        MatMut::new(&mut c, m, n, n, 1),
        Parallelism::Sequential,
    );
    assert_eq!(run.kernel.name(), name);
    assert!(run.tiles > 0);
    println!("kernel {name} ran {} tiles", run.tiles);
}

#[test]
fn env_var_forces_the_kernel_or_fails_loudly() {
    if let Ok(name) = std::env::var(CHILD) {
        child(&name);
        return;
    }
    for kernel in Kernel::ALL {
        let out = run_child(kernel.name());
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        if kernel.is_supported() {
            assert!(
                out.status.success(),
                "{kernel:?} child failed:\n{stdout}\n{stderr}"
            );
            assert!(
                stdout.contains(&format!("kernel {} ran", kernel.name())),
                "{kernel:?} did not run:\n{stdout}"
            );
        } else {
            assert!(
                !out.status.success(),
                "{kernel:?} is unsupported yet the child passed"
            );
            assert!(stderr.contains("cannot run"), "{kernel:?}: {stderr}");
        }
    }
    let out = run_child("sse9");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown kernel"));
}
