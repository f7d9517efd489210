//! Loads both MNIST splits (raw or gzip) and reports the time taken and the peak memory.
//!
//! ```text
//! MNIST_DIR=../shared/mnist cargo run --release -p ember-mnist --example load_mnist
//! cargo run --release -p ember-mnist --example load_mnist -- path/to/mnist
//! ```
//!
//! Expect a few hundred milliseconds from gzip and a peak resident size a little
//! above the 55 MB of pixels and labels (plus the program itself).

use std::path::PathBuf;
use std::time::Instant;

use ember_mnist::{BatchConfig, Dataset, Mnist};

fn main() {
    let explicit = std::env::args_os().nth(1).map(PathBuf::from);
    let before = peak_rss_kib();
    let cpu_start = cpu_ns();
    let start = Instant::now();
    let mnist = match Mnist::load(Dataset::Mnist, explicit.as_deref()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let load = start.elapsed();
    let load_cpu = cpu_ns().zip(cpu_start).map(|(b, a)| (b - a) as f64 / 1e6);
    let after = peak_rss_kib();

    let data_bytes = mnist.train.pixels().len()
        + mnist.train.labels().len()
        + mnist.test.pixels().len()
        + mnist.test.labels().len();
    println!(
        "loaded {} train + {} test examples in {:.1} ms",
        mnist.train.len(),
        mnist.test.len(),
        load.as_secs_f64() * 1e3
    );
    if let Some(ms) = load_cpu {
        // On a busy machine wall time overstates; on-CPU time is what loading costs.
        println!("  of which on CPU: {ms:.1} ms");
    }
    println!("train label counts: {:?}", mnist.train.label_counts());
    println!("test label counts:  {:?}", mnist.test.label_counts());
    println!("data held: {:.1} MB", data_bytes as f64 / 1e6);
    match (before, after) {
        (Some(b), Some(a)) => println!(
            "peak RSS (VmHWM): {:.1} MB before loading, {:.1} MB after (+{:.1} MB)",
            b as f64 * 1024.0 / 1e6,
            a as f64 * 1024.0 / 1e6,
            (a - b) as f64 * 1024.0 / 1e6
        ),
        _ => println!("peak RSS: /proc/self/status not available on this system"),
    }

    // One shuffled epoch of batch conversion, the per-epoch cost a training loop pays.
    let config = BatchConfig::new(64).shuffled(0);
    let start = Instant::now();
    let cpu_start = cpu_ns();
    let mut checksum = 0.0f64;
    let mut batches = 0;
    for batch in mnist.train.epoch(&config, 0) {
        checksum += batch.images.sum_all() as f64;
        batches += 1;
    }
    println!(
        "one epoch of {batches} shuffled (64, 784) f32 batches: {:.1} ms (pixel sum {checksum:.1})",
        start.elapsed().as_secs_f64() * 1e3
    );
    if let Some(ms) = cpu_ns().zip(cpu_start).map(|(b, a)| (b - a) as f64 / 1e6) {
        println!("  of which on CPU: {ms:.1} ms");
    }
}

/// Nanoseconds this thread has spent on a CPU, from Linux's `/proc/thread-self/schedstat`.
fn cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// Peak resident set size in KiB, from Linux's `/proc/self/status`.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
