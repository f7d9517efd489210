//! Ember's GEMM against `matrixmultiply` and the `gemm` crate (with its
//! AVX-512 kernels, feature `x86-v4`), side by side, on the shapes that
//! matter for training (see `docs/gemm.md`).
//!
//! ```text
//! cargo run --release --example gemm_report            # a table
//! cargo run --release --example gemm_report -- --json  # one JSON object a line
//! cargo run --release --example gemm_report -- --quick # fewer rounds
//! cargo run --release --example gemm_report -- --awake # 2 threads as in training
//! cargo run --release --example gemm_report -- --only 512³ --threads 2
//! ```
//!
//! It first prints the caches found and the blocks chosen, measures this
//! machine's FMA peak with the selected instruction set, then, for 1 and 2
//! threads, times Ember, `matrixmultiply`, `gemm` and that same FMA probe
//! interleaved round by round (in an order that gives each one every place, and
//! every other one as its forerunner, equally often) and reports each one's
//! median rate. Ember's ratio to each library and its share of the probe
//! (`%peak`) are the medians of the same ratios taken within each round,
//! where the libraries ran back to back (`%start` divides Ember's median by
//! the peak measured first instead): on a shared virtual machine a core's
//! speed drifts by tens of percent for seconds at a time, and a ratio of
//! two medians may take them from different spells. Beside the
//! wall-clock rates it prints rates per CPU-second of each thread (from
//! Linux `schedstat`), which stay meaningful when other processes share the
//! cores. `matrixmultiply` reads its thread count
//! (`MATMUL_NUM_THREADS`) once per process, so each thread count runs in a
//! child process of this one.
//!
//! By default each call comes from outside the thread pool, cold: the call
//! hands its work to rayon's workers, which wake for it, and waits. A
//! training loop runs otherwise: on a pool that includes the calling thread,
//! with the other workers kept spinning (`with_workers_awake`). `--awake`
//! times the 2-thread rows that way: Ember and the `gemm` crate (which also
//! runs on rayon's global pool) each inside `with_workers_awake`, on a
//! global pool built with the calling thread; `matrixmultiply`, on threads
//! of its own, as before, with no spinner running beside it.

mod turn_order;

use std::process::{Command, ExitCode};

use clap::Parser;
use std::time::{Duration, Instant};

use ember::tensor::gemm::{
    fma_peak_gflops, gemm, kernel_name, FmaProbe, Kernel, MatMut, MatRef, Parallelism,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use turn_order::turn_order;

/// A benchmark shape: C (m×n) = A (m×k) · B (k×n), either operand possibly
/// read transposed (stored the other way round).
struct Shape {
    name: &'static str,
    m: usize,
    k: usize,
    n: usize,
    a_t: bool,
    b_t: bool,
}

const fn shape(name: &'static str, m: usize, k: usize, n: usize, a_t: bool, b_t: bool) -> Shape {
    Shape {
        name,
        m,
        k,
        n,
        a_t,
        b_t,
    }
}

const SHAPES: [Shape; 13] = [
    shape("256³", 256, 256, 256, false, false),
    shape("512³", 512, 512, 512, false, false),
    shape("2048³", 2048, 2048, 2048, false, false),
    shape(
        "128×784×512 Bᵀ (Linear 784→512 fwd)",
        128,
        784,
        512,
        false,
        true,
    ),
    shape(
        "128×512×512 Bᵀ (hidden Linear fwd)",
        128,
        512,
        512,
        false,
        true,
    ),
    shape("128×512×784 (input gradient)", 128, 512, 784, false, false),
    shape(
        "784×128×512 Aᵀ (weight gradient)",
        784,
        128,
        512,
        true,
        false,
    ),
    shape("128×512×10 (logits)", 128, 512, 10, false, false),
    shape(
        "128×512×10 Bᵀ (logits, Linear fwd)",
        128,
        512,
        10,
        false,
        true,
    ),
    shape("64³", 64, 64, 64, false, false),
    shape(
        "64×288×576 (conv 32→64 fwd, an image)",
        64,
        288,
        576,
        false,
        false,
    ),
    shape(
        "288×576×64 Bᵀ (conv weight gradient, dWᵀ)",
        288,
        576,
        64,
        false,
        true,
    ),
    shape(
        "288×64×576 Aᵀ (conv input gradient)",
        288,
        64,
        576,
        true,
        false,
    ),
];

/// Column-major when `transposed`, so the view is a transposed one.
fn strides(rows: usize, cols: usize, transposed: bool) -> (usize, usize) {
    if transposed {
        (1, rows)
    } else {
        (cols, 1)
    }
}

struct Operands {
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
    sa: (usize, usize),
    sb: (usize, usize),
}

impl Operands {
    fn new(s: &Shape, rng: &mut ChaCha8Rng) -> Operands {
        let mut random = |len: usize| (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        Operands {
            a: random(s.m * s.k),
            b: random(s.k * s.n),
            c: vec![0.0; s.m * s.n],
            sa: strides(s.m, s.k, s.a_t),
            sb: strides(s.k, s.n, s.b_t),
        }
    }

    fn ember(&mut self, s: &Shape, threads: usize) {
        let par = if threads == 1 {
            Parallelism::Sequential
        } else {
            Parallelism::Threads(threads)
        };
        gemm(
            1.0,
            MatRef::new(&self.a, s.m, s.k, self.sa.0, self.sa.1),
            MatRef::new(&self.b, s.k, s.n, self.sb.0, self.sb.1),
            0.0,
            MatMut::new(&mut self.c, s.m, s.n, s.n, 1),
            par,
        );
    }

    fn gemm_crate(&mut self, s: &Shape, threads: usize) {
        let par = if threads == 1 {
            gemm::Parallelism::None
        } else {
            gemm::Parallelism::Rayon(threads)
        };
        // SAFETY: the pointers and strides describe exactly the three
        // buffers (m×k, k×n and m×n floats); `gemm` takes (column, row) strides.
        unsafe {
            gemm::gemm(
                s.m,
                s.n,
                s.k,
                self.c.as_mut_ptr(),
                1,
                s.n as isize,
                false,
                self.a.as_ptr(),
                self.sa.1 as isize,
                self.sa.0 as isize,
                self.b.as_ptr(),
                self.sb.1 as isize,
                self.sb.0 as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                par,
            );
        }
    }

    fn matrixmultiply(&mut self, s: &Shape) {
        // SAFETY: the pointers and strides describe exactly the three buffers,
        // which are m×k, k×n and m×n floats long.
        unsafe {
            matrixmultiply::sgemm(
                s.m,
                s.k,
                s.n,
                1.0,
                self.a.as_ptr(),
                self.sa.0 as isize,
                self.sa.1 as isize,
                self.b.as_ptr(),
                self.sb.0 as isize,
                self.sb.1 as isize,
                0.0,
                self.c.as_mut_ptr(),
                s.n as isize,
                1,
            );
        }
    }
}

/// CPU time, in seconds, used so far by all threads of this process (Linux
/// `schedstat`), or `None` elsewhere. On a shared machine, flops per CPU
/// second are what a core would do if it were ours alone.
fn cpu_seconds() -> Option<f64> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total as f64 * 1e-9)
}

/// One timed batch: GFLOP/s by the wall clock, and by CPU time per thread.
struct Sample {
    wall: f64,
    cpu: f64,
}

/// Times `calls` calls of `f`.
fn rate(flops: f64, calls: usize, threads: usize, mut f: impl FnMut()) -> Sample {
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    for _ in 0..calls {
        f();
    }
    let wall = start.elapsed().as_secs_f64();
    let work = flops * calls as f64 / 1e9;
    let cpu = match (cpu0, cpu_seconds()) {
        (Some(a), Some(b)) if b > a => work / ((b - a) / threads as f64),
        _ => f64::NAN,
    };
    Sample {
        wall: work / wall,
        cpu,
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Medians for one library on one shape.
#[derive(Clone, Copy)]
struct Medians {
    wall: f64,
    cpu: f64,
}

fn medians(samples: &[Sample]) -> Medians {
    Medians {
        wall: median(samples.iter().map(|s| s.wall).collect()),
        cpu: median(samples.iter().map(|s| s.cpu).collect()),
    }
}

/// The median over rounds of `ours / theirs` within each round. Each
/// round times the libraries back to back, a few hundred milliseconds in
/// all, so a slow spell of the shared host slows both sides of a ratio;
/// the ratio of two medians could take them from different spells.
fn paired_ratio(ours: &[Sample], theirs: &[Sample], rate: fn(&Sample) -> f64) -> f64 {
    median(
        ours.iter()
            .zip(theirs)
            .map(|(o, t)| rate(o) / rate(t))
            .collect(),
    )
}

/// What the report prints for one shape: each library's medians, and
/// Ember's paired ratios to the others and to the FMA probe.
struct Summary {
    ember: Medians,
    mm: Medians,
    gemm: Medians,
    probe: f64,
    /// Ember ÷ matrixmultiply, by the wall clock and per CPU second.
    ratio_mm: Medians,
    /// Ember ÷ gemm, likewise.
    ratio_gemm: Medians,
    /// Ember's share of the probe, by the wall clock.
    share_of_probe: f64,
}

fn summarise([ember, mm, gemm, probe]: &[Vec<Sample>; TIMED]) -> Summary {
    let paired = |theirs: &[Sample]| Medians {
        wall: paired_ratio(ember, theirs, |s| s.wall),
        cpu: paired_ratio(ember, theirs, |s| s.cpu),
    };
    Summary {
        ember: medians(ember),
        mm: medians(mm),
        gemm: medians(gemm),
        probe: medians(probe).wall,
        ratio_mm: paired(mm),
        ratio_gemm: paired(gemm),
        share_of_probe: paired_ratio(ember, probe, |s| s.wall),
    }
}

/// The libraries compared, in the order of `measure`'s result.
const LIBS: usize = 3;

/// What each round times: the libraries, then the FMA probe (index `LIBS`).
const TIMED: usize = LIBS + 1;

/// Times one shape: `rounds` rounds, each timing Ember, matrixmultiply, gemm
/// and the FMA probe back to back, in the order [`turn_order`] gives
/// (rotating one order had kept Ember right after the probe's 100 ms of
/// FMAs on every core, and `gemm` after `matrixmultiply`); returns every
/// round's samples, by library. The probe runs in the same rounds so that
/// the share of the peak compares rates measured under the same
/// conditions: this machine's cores
/// may run tens of percent slower for seconds at a time (another guest on
/// the host), which a peak taken once, at the start, would not see.
/// With `awake`, Ember's and gemm's batches run inside `with_workers_awake`.
fn measure(
    s: &Shape,
    threads: usize,
    rounds: usize,
    awake: bool,
    rng: &mut ChaCha8Rng,
) -> [Vec<Sample>; TIMED] {
    let mut ops = Operands::new(s, rng);
    let flops = 2.0 * (s.m * s.k * s.n) as f64;
    // Warm up all three (buffers, thread pools, caches) and size the batches:
    // 100 ms, so the CPU-time clock (updated at scheduler ticks) is accurate.
    let start = Instant::now();
    ops.ember(s, threads);
    ops.matrixmultiply(s);
    ops.gemm_crate(s, threads);
    let one = start.elapsed().max(Duration::from_nanos(100)) / LIBS as u32;
    let calls = (Duration::from_millis(100).as_secs_f64() / one.as_secs_f64()).ceil() as usize;
    let probe = FmaProbe::new(Kernel::selected(), threads, Duration::from_millis(100));
    let mut samples: [Vec<Sample>; TIMED] = Default::default();
    // Spinning workers for the libraries on rayon, when asked (`--awake`).
    let on_rayon = |f: &mut dyn FnMut() -> Sample| {
        if awake {
            ember::tensor::with_workers_awake(f)
        } else {
            f()
        }
    };
    for round in 0..rounds {
        for lib in turn_order::<TIMED>(round) {
            let sample = match lib {
                0 => on_rayon(&mut || rate(flops, calls, threads, || ops.ember(s, threads))),
                1 => rate(flops, calls, threads, || ops.matrixmultiply(s)),
                2 => on_rayon(&mut || rate(flops, calls, threads, || ops.gemm_crate(s, threads))),
                _ => Sample {
                    wall: probe.gflops(),
                    cpu: f64::NAN,
                },
            };
            samples[lib].push(sample);
        }
    }
    samples
}

/// Ember's GEMM against matrixmultiply and the gemm crate, interleaved, on
/// the shapes that matter for training.
#[derive(Parser, Debug)]
#[command(long_about = None)]
struct Cli {
    /// One JSON object a line instead of the table.
    #[arg(long)]
    json: bool,
    /// Fewer rounds per shape (5 instead of 15).
    #[arg(long)]
    quick: bool,
    /// Time the 2-thread rows as a training loop runs them: from a pool that
    /// includes the caller, its workers kept awake.
    #[arg(long)]
    awake: bool,
    /// Only the shapes whose name contains this text (repeatable), e.g.
    /// `--only 512³ --only conv`.
    #[arg(long, value_name = "TEXT")]
    only: Vec<String>,
    /// Only this thread count's rows (1 or 2), instead of both.
    #[arg(long, value_name = "THREADS", value_parser = clap::value_parser!(u16).range(1..=2))]
    threads: Option<u16>,
    /// Measure on this many threads only, in this process, without the
    /// header (the report runs itself once per thread count so that
    /// matrixmultiply reads its thread count afresh).
    #[arg(long, value_name = "THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    child: Option<u16>,
    /// With --child: the FMA peak (GFLOP/s) measured at the start, which the %start column divides by.
    #[arg(long, value_name = "GFLOPS", requires = "child", value_parser = positive)]
    peak: Option<f64>,
}

/// A finite, positive number.
fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err("expected a positive number of GFLOP/s".to_string()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(text) = cli
        .only
        .iter()
        .find(|t| !SHAPES.iter().any(|s| s.name.contains(t.as_str())))
    {
        let names: Vec<&str> = SHAPES.iter().map(|s| s.name).collect();
        eprintln!(
            "error: --only {text:?}: no shape's name contains it; the shapes are: {}",
            names.join(", ")
        );
        return ExitCode::FAILURE;
    }
    let rounds = if cli.quick { 5 } else { 15 };
    let (json, awake) = (cli.json, cli.awake);
    if let Some(threads) = cli.child {
        child(
            usize::from(threads),
            cli.peak.unwrap_or(f64::NAN),
            rounds,
            json,
            awake,
            &cli.only,
        );
        return ExitCode::SUCCESS;
    }

    let kernel = Kernel::selected();
    let blocks = kernel.blocks().expect("the selected kernel runs here");
    let peaks = [fma_peak_gflops(kernel, 1), fma_peak_gflops(kernel, 2)];
    let caches = blocks
        .caches
        .map_or("unreadable: the kernel's own blocks".to_string(), |c| {
            format!(
                "L1d {} KiB, L2 {} KiB, L3 {} KiB per core",
                c.l1d >> 10,
                c.l2 >> 10,
                c.l3 >> 10
            )
        });
    if json {
        let c = blocks.caches;
        println!(
            "{{\"kernel\":\"{}\",\"awake\":{awake},\"peak_gflops_1t\":{:.1},\"peak_gflops_2t\":{:.1},\"l1d\":{},\"l2\":{},\"l3\":{},\"mr\":{},\"nr\":{},\"kc\":{},\"mc\":{},\"nc\":{}}}",
            kernel_name(),
            peaks[0],
            peaks[1],
            c.map_or(0, |c| c.l1d),
            c.map_or(0, |c| c.l2),
            c.map_or(0, |c| c.l3),
            blocks.mr,
            blocks.nr,
            blocks.kc,
            blocks.mc,
            blocks.nc,
        );
    } else {
        println!("caches: {caches}");
        println!(
            "kernel {}: tile {}×{}, blocks KC {} MC {} NC {}; measured FMA peak {:.1} GFLOP/s on 1 thread, {:.1} on 2",
            kernel_name(),
            blocks.mr,
            blocks.nr,
            blocks.kc,
            blocks.mc,
            blocks.nc,
            peaks[0],
            peaks[1]
        );
        println!(
            "GFLOP/s medians: by the wall clock | work / (CPU seconds / threads): the rate with a core per thread (robust to a shared machine)"
        );
        if awake {
            println!(
                "2-thread rows --awake: Ember and gemm called from a pool that includes the caller, workers kept spinning (as in training)"
            );
        }
        println!(
            "peak: the FMA probe's median, timed in the same rounds; ÷mm, ÷gemm and %peak (Ember's share of the probe): medians of the ratios within each round; %start: of the peak measured above"
        );
        println!(
            "{:<38} {:>3} {:>7} {:>7} {:>7} {:>6} {:>6} {:>7} {:>6} {:>6} | {:>7} {:>6} {:>6}",
            "shape M×K×N",
            "thr",
            "ember",
            "mm",
            "gemm",
            "÷mm",
            "÷gemm",
            "peak",
            "%peak",
            "%start",
            "ember",
            "÷mm",
            "÷gemm"
        );
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("error: cannot find this program to run its measuring children: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (threads, peak) in [(1usize, peaks[0]), (2, peaks[1])] {
        if cli.threads.is_some_and(|only| usize::from(only) != threads) {
            continue;
        }
        let mut cmd = Command::new(&exe);
        cmd.args(["--child", &threads.to_string(), "--peak", &peak.to_string()]);
        for text in &cli.only {
            cmd.args(["--only", text]);
        }
        for (on, flag) in [(json, "--json"), (cli.quick, "--quick"), (awake, "--awake")] {
            if on {
                cmd.arg(flag);
            }
        }
        cmd.env("MATMUL_NUM_THREADS", threads.to_string());
        match cmd.status() {
            Ok(status) if status.success() => {}
            Ok(status) => {
                eprintln!("error: the {threads}-thread measurement failed ({status})");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("error: cannot start the {threads}-thread measurement: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// Measures every shape (those named by `only`, when given) at `threads`
/// threads and prints one line each.
fn child(threads: usize, peak: f64, rounds: usize, json: bool, awake: bool, only: &[String]) {
    let awake = awake && threads > 1;
    if awake {
        // The calling thread joins rayon's global pool, as an example's
        // training loop joins its own (`use_current_thread`).
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .use_current_thread()
            .build_global()
            .expect("the global pool is built once, before any parallel work");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let chosen = |s: &&Shape| only.is_empty() || only.iter().any(|t| s.name.contains(t.as_str()));
    for s in SHAPES.iter().filter(chosen) {
        let rounds = if s.m * s.k * s.n >= 1 << 30 {
            rounds.min(7)
        } else {
            rounds
        };
        let Summary {
            ember,
            mm,
            gemm: gm,
            probe,
            ratio_mm,
            ratio_gemm,
            share_of_probe,
        } = summarise(&measure(s, threads, rounds, awake, &mut rng));
        let pct = 100.0 * share_of_probe;
        let pct_start = 100.0 * ember.wall / peak;
        if json {
            println!(
                "{{\"shape\":\"{}\",\"m\":{},\"k\":{},\"n\":{},\"a_transposed\":{},\"b_transposed\":{},\"threads\":{threads},\"ember_gflops\":{:.1},\"matrixmultiply_gflops\":{:.1},\"gemm_gflops\":{:.1},\"ratio_matrixmultiply\":{:.3},\"ratio_gemm\":{:.3},\"peak_gflops\":{:.1},\"pct_of_peak\":{pct:.1},\"pct_of_start_peak\":{pct_start:.1},\"ember_gflops_per_cpu\":{:.1},\"ratio_matrixmultiply_per_cpu\":{:.3},\"ratio_gemm_per_cpu\":{:.3}}}",
                s.name, s.m, s.k, s.n, s.a_t, s.b_t, ember.wall, mm.wall, gm.wall,
                ratio_mm.wall, ratio_gemm.wall, probe,
                ember.cpu, ratio_mm.cpu, ratio_gemm.cpu
            );
        } else {
            println!(
                "{:<38} {threads:>3} {:>7.1} {:>7.1} {:>7.1} {:>6.2} {:>6.2} {:>7.1} {pct:>5.0}% {pct_start:>5.0}% | {:>7.1} {:>6.2} {:>6.2}",
                s.name,
                ember.wall,
                mm.wall,
                gm.wall,
                ratio_mm.wall,
                ratio_gemm.wall,
                probe,
                ember.cpu,
                ratio_mm.cpu,
                ratio_gemm.cpu
            );
        }
    }
}
