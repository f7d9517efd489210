//! Proves each GEMM micro-kernel's k loop on CPUs this machine may not be:
//! disassembles the packed k loop of every kernel (and the AVX-512 strided
//! full tiles, which read A in place) from this very binary
//! (`objdump`), then simulates it with LLVM's scheduling models (`llvm-mca`)
//! for the microarchitectures the kernel is chosen on.
//!
//! ```text
//! cargo run --release --example kernel_check            # the table; exit 1 on a failure
//! cargo run --release --example kernel_check -- --markdown
//! ```
//!
//! A kernel fails when its k loop stores anything (the accumulators must
//! stay in registers: the loop may touch memory only to load A and B; the
//! tiles that pack B as they read it store each B vector they load, and
//! nothing else), or
//! when a model needs more than 10 % more cycles per iteration than the same
//! loop's FMAs alone (5 % on the model closest to this CPU). `.ci/run` runs
//! it; it needs `objdump` (binutils) and `llvm-mca-19` (Debian's `llvm-19`),
//! or the `llvm-mca` named by `LLVM_MCA`.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::Parser;
use ember::tensor::gemm::Kernel;

/// A kernel's packed entry point (or the full tile of its strided body)
/// and the CPU models it is selected on.
struct KernelLoop {
    name: &'static str,
    symbol: &'static str,
    /// Which instance of `symbol`: the function itself, or (for the generic
    /// `strided` shell, one symbol for every tile size) its full tile.
    pick: Pick,
    /// Vector register class of its FMAs (`zmm` or `ymm`).
    register: &'static str,
    /// Models of the CPUs that run this kernel.
    models: &'static [&'static str],
    /// Models of CPUs that choose another flavour: shown, not judged.
    shown: &'static [&'static str],
}

/// LLVM's models of the CPUs that pick each AVX-512 flavour. Skylake-X is
/// its model with two 512-bit FMA units, as Sapphire Rapids Xeons have; its
/// own `sapphirerapids` and `icelake-server` models give one, so their FMA
/// bound is twice as long.
const INTEL_AVX512: &[&str] = &["skylake-avx512", "icelake-server", "sapphirerapids"];
const ZEN_AVX512: &[&str] = &["znver4", "znver5"];

const KERNELS: [KernelLoop; 7] = [
    KernelLoop {
        name: "avx512",
        symbol: "ember_tensor::gemm::kernel::avx512::intel::packed",
        pick: Pick::Named,
        register: "zmm",
        models: INTEL_AVX512,
        shown: ZEN_AVX512,
    },
    KernelLoop {
        name: "avx512-zen",
        symbol: "ember_tensor::gemm::kernel::avx512::zen::packed",
        pick: Pick::Named,
        register: "zmm",
        models: ZEN_AVX512,
        shown: INTEL_AVX512,
    },
    KernelLoop {
        name: "avx2",
        symbol: "ember_tensor::gemm::kernel::avx2::packed",
        pick: Pick::Named,
        register: "ymm",
        models: &["haswell", "skylake", "znver2", "znver3"],
        shown: &[],
    },
    // The AVX-512 kernels read A in place (row-major, or column-major with
    // short columns) through their strided body's full tile
    // (`MicroKernel::a_in_place`): that loop is judged too.
    KernelLoop {
        name: "avx512 strided",
        symbol: "ember_tensor::gemm::kernel::avx512::strided",
        pick: Pick::FullTile {
            embedded_broadcast: false,
        },
        register: "zmm",
        models: INTEL_AVX512,
        shown: ZEN_AVX512,
    },
    KernelLoop {
        name: "avx512-zen strided",
        symbol: "ember_tensor::gemm::kernel::avx512::strided",
        pick: Pick::FullTile {
            embedded_broadcast: true,
        },
        register: "zmm",
        models: ZEN_AVX512,
        shown: INTEL_AVX512,
    },
    // The dot kernels (lanes along K, for a B narrower than a vector: the
    // logits), both AVX-512 flavours' and AVX2's, at the logits' width.
    KernelLoop {
        name: "avx512 dot N=10",
        symbol: "ember_tensor::gemm::kernel::avx512::dot_n10",
        pick: Pick::Named,
        register: "zmm",
        models: &[
            "skylake-avx512",
            "icelake-server",
            "sapphirerapids",
            "znver4",
            "znver5",
        ],
        shown: &[],
    },
    // Zen 2 is shown, not judged: it dispatches 4 operations a cycle and
    // splits each 128-bit broadcast of A in two, so the loop (1.15× its
    // FMA bound there) is bound by dispatch; still about twice the rank-1
    // tiles' rate on N = 10, whose lanes are 10 of 16.
    KernelLoop {
        name: "avx2 dot N=10",
        symbol: "ember_tensor::gemm::kernel::avx2::dot_n10",
        pick: Pick::Named,
        register: "ymm",
        models: &["haswell", "skylake", "znver3"],
        shown: &["znver2"],
    },
];

/// How a [`KernelLoop`] finds its function among those named `symbol`.
#[derive(Clone, Copy)]
enum Pick {
    /// The one function of that name (a named shell).
    Named,
    /// The instance whose k loop has the most FMAs (the full tile; the
    /// edge tiles are smaller instances of the same generic shell), with or
    /// without `{1to16}` broadcasts folded into its FMAs (Zen's flavour
    /// folds them, Intel's does not: both full tiles have 24 accumulators).
    FullTile { embedded_broadcast: bool },
}

/// The bar on every model a kernel is selected on, and the tighter one on
/// the model closest to this CPU.
const BAR: f64 = 1.10;
const BAR_HERE: f64 = 1.05;

/// Why the check could not run.
#[derive(Debug)]
enum CheckError {
    Tool { tool: String, why: String },
    Parse { what: String },
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::Tool { tool, why } => write!(f, "running {tool}: {why}"),
            CheckError::Parse { what } => write!(f, "{what}"),
        }
    }
}

fn run_tool(tool: &str, args: &[&str]) -> Result<String, CheckError> {
    let err = |why: String| CheckError::Tool {
        tool: tool.to_string(),
        why,
    };
    let out = Command::new(tool)
        .args(args)
        .output()
        .map_err(|e| err(format!("{e} (is it installed? .ci/run installs llvm-19)")))?;
    if !out.status.success() {
        return Err(err(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One disassembled instruction.
struct Insn {
    addr: u64,
    text: String,
}

impl Insn {
    fn mnemonic(&self) -> &str {
        self.text.split_whitespace().next().unwrap_or("")
    }

    fn operands(&self) -> &str {
        self.text[self.mnemonic().len()..].trim()
    }

    /// The last operand (AT&T syntax: the destination), split at top-level commas.
    fn destination(&self) -> &str {
        let ops = self.operands();
        let mut depth = 0;
        let mut start = 0;
        for (i, ch) in ops.char_indices() {
            match ch {
                '(' | '{' => depth += 1,
                ')' | '}' => depth -= 1,
                ',' if depth == 0 => start = i + 1,
                _ => {}
            }
        }
        ops[start..].trim()
    }

    fn is_fma(&self) -> bool {
        self.mnemonic().starts_with("vfmadd")
    }

    /// Whether it writes memory: a memory destination, other than an
    /// instruction that only reads or hints.
    fn is_store(&self) -> bool {
        let m = self.mnemonic();
        let reads_only = ["cmp", "test", "prefetch", "nop", "bt"]
            .iter()
            .any(|p| m.starts_with(p));
        !reads_only && !m.starts_with('j') && self.destination().contains('(')
    }

    /// Whether it loads a whole vector from memory into a register (a B
    /// row's vector, in a k loop; not a broadcast).
    fn is_vector_load(&self) -> bool {
        let m = self.mnemonic();
        (m.starts_with("vmovup") || m.starts_with("vmovap"))
            && !self.is_store()
            && self.operands().contains('(')
    }

    /// The target of a branch, if it is one.
    fn branch_target(&self) -> Option<u64> {
        if !self.mnemonic().starts_with('j') {
            return None;
        }
        let hex = self.operands().split_whitespace().next()?;
        u64::from_str_radix(hex, 16).ok()
    }
}

/// The instructions of the function whose header line was just read: the
/// lines up to the blank one that ends it.
fn body<'a>(lines: &mut impl Iterator<Item = &'a str>) -> Vec<Insn> {
    lines
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let (addr, text) = l.split_once(":\t")?;
            Some(Insn {
                addr: u64::from_str_radix(addr.trim(), 16).ok()?,
                text: text.trim().to_string(),
            })
        })
        .collect()
}

/// The loop (a backward branch and what it jumps over) with the most FMAs,
/// the shortest of those that tie: the k loop. (A dot kernel's K tail, a
/// step as many FMAs as the loop's, can sit inside the span of the row
/// loop's back edge, which is no k loop: the shortest span is.)
fn k_loop(insns: &[Insn]) -> Option<&[Insn]> {
    insns
        .iter()
        .enumerate()
        .filter_map(|(end, insn)| {
            let target = insn.branch_target().filter(|&t| t <= insn.addr)?;
            let start = insns.iter().position(|i| i.addr == target)?;
            Some(&insns[start..=end])
        })
        .max_by_key(|body| {
            let fmas = body.iter().filter(|i| i.is_fma()).count();
            (fmas, std::cmp::Reverse(body.len()))
        })
        .filter(|body| body.iter().any(|i| i.is_fma()))
}

/// The loop as llvm-mca input, its back edge to a label.
fn mca_source(body: &[Insn]) -> String {
    let mut src = String::from(".Lloop:\n");
    for (i, insn) in body.iter().enumerate() {
        if i + 1 == body.len() {
            src += &format!("{} .Lloop\n", insn.mnemonic());
        } else {
            src += &format!("{}\n", insn.text);
        }
    }
    src
}

/// The same loop's FMAs alone, register to register (same destinations, so
/// the same dependency chains), and the back edge: the FMA-port bound.
fn fma_only_source(body: &[Insn], register: &str) -> String {
    let dests: BTreeSet<&str> = body
        .iter()
        .filter(|i| i.is_fma())
        .map(|i| i.destination())
        .collect();
    let free: Vec<String> = (0..32)
        .rev()
        .map(|r| format!("%{register}{r}"))
        .filter(|r| !dests.contains(r.as_str()))
        .take(2)
        .collect();
    let mut src = String::from(".Lloop:\n");
    for insn in body.iter().filter(|i| i.is_fma()) {
        src += &format!(
            "{} {},{},{}\n",
            insn.mnemonic(),
            free[0],
            free[1],
            insn.destination()
        );
    }
    src += "dec %rax\njne .Lloop\n";
    src
}

/// Simulated cycles per iteration of `source` on `model`.
fn cycles(mca: &str, model: &str, source: &str, dir: &Path, tag: &str) -> Result<f64, CheckError> {
    let file = dir.join(format!("{tag}-{model}.s"));
    std::fs::write(&file, source).map_err(|e| CheckError::Parse {
        what: format!("writing {}: {e}", file.display()),
    })?;
    let iterations = 200;
    let report = run_tool(
        mca,
        &[
            &format!("-mcpu={model}"),
            &format!("-iterations={iterations}"),
            &file.to_string_lossy(),
        ],
    )?;
    let total = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Total Cycles:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| CheckError::Parse {
            what: format!("no 'Total Cycles' in llvm-mca's report for {model}"),
        })?;
    Ok(total / iterations as f64)
}

/// The LLVM model closest to this CPU, from `/proc/cpuinfo`.
fn model_here() -> Option<&'static str> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let flags = field("flags")?;
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    let amd = field("vendor_id")?.contains("AMD");
    let family: u32 = field("cpu family")?.parse().ok()?;
    Some(match (amd, has("avx512f"), has("avx2")) {
        (false, true, _) => "skylake-avx512",
        (false, false, true) => "haswell",
        (true, true, _) if family >= 0x1a => "znver5",
        (true, true, _) => "znver4",
        (true, false, true) if family >= 0x19 => "znver3",
        (true, false, true) => "znver2",
        _ => return None,
    })
}

/// One line of the table.
struct Row {
    kernel: &'static str,
    model: &'static str,
    fmas: usize,
    loads: usize,
    stores: usize,
    bound: f64,
    loop_cycles: f64,
    /// `None` for a model this kernel is not chosen on (shown, not judged).
    bar: Option<f64>,
}

impl Row {
    fn ratio(&self) -> f64 {
        self.loop_cycles / self.bound
    }
    fn passes(&self) -> bool {
        self.stores == 0 && self.bar.is_none_or(|bar| self.ratio() <= bar)
    }

    fn verdict(&self) -> String {
        match (self.passes(), self.bar) {
            (false, _) => "FAIL".into(),
            (true, Some(_)) => "ok".into(),
            (true, None) => "(other flavour here)".into(),
        }
    }

    fn bar_text(&self) -> String {
        self.bar.map_or("-".into(), |b| format!("{b:.2}"))
    }
}

fn check(markdown: bool) -> Result<bool, CheckError> {
    if cfg!(debug_assertions) {
        return Err(CheckError::Parse {
            what: "run it from a release build: cargo run --release --example kernel_check".into(),
        });
    }
    let exe: PathBuf = std::env::current_exe().map_err(|e| CheckError::Parse {
        what: format!("path of this program: {e}"),
    })?;
    let mca = std::env::var("LLVM_MCA").unwrap_or_else(|_| "llvm-mca-19".into());
    let disassembly = run_tool(
        "objdump",
        &["-d", "-C", "--no-show-raw-insn", &exe.to_string_lossy()],
    )?;
    let dir = tempfile::tempdir().map_err(|e| CheckError::Parse {
        what: format!("a temporary folder: {e}"),
    })?;
    let instances = kernel_instances(&disassembly);
    let here = model_here();
    // Asking every kernel whether it runs here also links all of them in.
    let runnable: Vec<&str> = Kernel::supported().iter().map(|k| k.name()).collect();
    println!("kernels this CPU runs: {}", runnable.join(", "));
    let mut rows = Vec::new();
    for kernel in &KERNELS {
        let body = find_loop(&instances, kernel)?;
        let fmas = body.iter().filter(|i| i.is_fma()).count();
        let stores = body.iter().filter(|i| i.is_store()).count();
        let loads = body
            .iter()
            .filter(|i| !i.is_store() && i.operands().contains('('))
            .count();
        for line in body.iter().filter(|i| i.is_store()) {
            eprintln!("{}: store in the k loop: {}", kernel.name, line.text);
        }
        let (src, fma_src) = (mca_source(body), fma_only_source(body, kernel.register));
        let judged = kernel.models.iter().map(|m| (m, true));
        for (&model, judge) in judged.chain(kernel.shown.iter().map(|m| (m, false))) {
            let bound = cycles(
                &mca,
                model,
                &fma_src,
                dir.path(),
                &format!("{}-fma", kernel.name),
            )?;
            let loop_cycles = cycles(&mca, model, &src, dir.path(), kernel.name)?;
            let bar = judge.then_some(if here == Some(model) { BAR_HERE } else { BAR });
            rows.push(Row {
                kernel: kernel.name,
                model,
                fmas,
                loads,
                stores,
                bound,
                loop_cycles,
                bar,
            });
        }
    }
    print_table(&rows, here, markdown);
    let instances_clean = every_instance_keeps_its_accumulators(&instances)?;
    Ok(rows.iter().all(Row::passes) && instances_clean)
}

/// The k loop `kernel` names, from the disassembled `instances`.
fn find_loop<'a>(
    instances: &'a [(String, u64, Vec<Insn>)],
    kernel: &KernelLoop,
) -> Result<&'a [Insn], CheckError> {
    let missing = || CheckError::Parse {
        what: format!(
            "{} is not in the binary (renamed, or inlined away?)",
            kernel.symbol
        ),
    };
    let no_loop = || CheckError::Parse {
        what: format!("no loop with FMAs in {}", kernel.symbol),
    };
    let mut loops = instances
        .iter()
        .filter(|(name, ..)| name == kernel.symbol)
        .map(|(.., insns)| k_loop(insns).ok_or_else(no_loop));
    match kernel.pick {
        Pick::Named => loops.next().ok_or_else(missing)?,
        Pick::FullTile { embedded_broadcast } => {
            let loops = loops.collect::<Result<Vec<_>, _>>()?;
            let fmas = |body: &[Insn]| body.iter().filter(|i| i.is_fma()).count();
            let most = loops.iter().map(|b| fmas(b)).max().ok_or_else(missing)?;
            loops
                .into_iter()
                .filter(|b| fmas(b) == most)
                .find(|b| b.iter().any(|i| i.text.contains("{1to")) == embedded_broadcast)
                .ok_or_else(|| CheckError::Parse {
                    what: format!(
                        "no full tile {} embedded broadcasts among the {} instances",
                        if embedded_broadcast {
                            "with"
                        } else {
                            "without"
                        },
                        kernel.symbol
                    ),
                })
        }
    }
}

/// Every instance of a kernel body in the binary: the packed entries, each
/// instance of the generic `strided` shell (the small path's full tiles and
/// every edge tile's smaller body), the `packing_b` full tiles and the dot
/// kernels (lanes along K, for a narrow B), as (name, address, instructions).
fn kernel_instances(disassembly: &str) -> Vec<(String, u64, Vec<Insn>)> {
    let mut found = Vec::new();
    let mut lines = disassembly.lines();
    while let Some(line) = lines.next() {
        let Some((addr, name)) = line.trim_end_matches(">:").split_once(" <") else {
            continue;
        };
        let is_kernel = name.starts_with("ember_tensor::gemm::kernel::")
            && (name.ends_with("::strided")
                || name.ends_with("::packed")
                || name.ends_with("::packing_b")
                || name.ends_with("::dot")
                || name.ends_with("::dot_n10"));
        let Ok(addr) = u64::from_str_radix(addr.trim(), 16) else {
            continue;
        };
        if !is_kernel || !line.ends_with(">:") {
            continue;
        }
        found.push((name.to_string(), addr, body(&mut lines)));
    }
    found
}

/// The first rules for every instance, not only the packed entries the
/// table simulates: no call out of the body, no store in its k loop. (An
/// epilogue once made LLVM keep the accumulators of two edge tiles in memory
/// while the packed entries stayed clean.) A `packing_b` tile writes the B
/// rows it reads on to the packed panel, so its loop may store exactly one
/// vector per vector it loads, and never to the stack (a spilled
/// accumulator: the AVX2 tile spilled one when its copy followed each load
/// instead of the step's FMAs).
fn every_instance_keeps_its_accumulators(
    instances: &[(String, u64, Vec<Insn>)],
) -> Result<bool, CheckError> {
    if instances.len() < KERNELS.len() {
        return Err(CheckError::Parse {
            what: format!("only {} kernel bodies found in the binary", instances.len()),
        });
    }
    let mut clean = true;
    for (name, addr, insns) in instances {
        // A call out of a kernel is code compiled without the kernel's
        // target features (an iterator adapter that was not inlined, say):
        // its intrinsics become calls too, and it takes the tile through
        // memory. (`write_full_tile`'s ReLU once ran that way on AVX2, 12 %
        // of a convnet step.)
        for line in insns.iter().filter(|i| i.mnemonic().starts_with("call")) {
            eprintln!("{name} at {addr:x}: calls out of the kernel: {}", line.text);
            clean = false;
        }
        let Some(body) = k_loop(insns) else {
            continue; // the scalar kernel's bodies have no vector FMAs
        };
        let stores: Vec<&Insn> = body.iter().filter(|i| i.is_store()).collect();
        if name.ends_with("::packing_b") {
            let loads = body.iter().filter(|i| i.is_vector_load()).count();
            let spills = stores.iter().filter(|i| i.destination().contains("%rsp"));
            for line in spills {
                eprintln!("{name} at {addr:x}: spill in the k loop: {}", line.text);
                clean = false;
            }
            if stores.len() != loads {
                eprintln!(
                    "{name} at {addr:x}: {} stores in the k loop for {loads} vector loads of B",
                    stores.len()
                );
                clean = false;
            }
            continue;
        }
        for line in stores {
            eprintln!("{name} at {addr:x}: store in the k loop: {}", line.text);
            clean = false;
        }
    }
    println!(
        "every kernel body in the binary ({}: packed entries, small-path, edge, B-packing and dot tiles): {}",
        instances.len(),
        if clean {
            "no store in a k loop (but packing_b's copy of B), no call"
        } else {
            "STORES in a k loop or CALLS"
        }
    );
    Ok(clean)
}

fn print_table(rows: &[Row], here: Option<&str>, markdown: bool) {
    println!(
        "k loop of each kernel's packed entry (and of the strided full tiles that read A in place), simulated by llvm-mca (closest model to this CPU: {})",
        here.unwrap_or("none")
    );
    // Column widths of the plain table; a negative width aligns left.
    const WIDTHS: [i32; 9] = [-18, -15, 5, 5, 6, 13, 9, 6, 5];
    let print_line = |cells: [String; 9], last: &str| {
        if markdown {
            println!("| {} {last} |", cells.join(" | "));
        } else {
            let padded: Vec<String> = cells
                .iter()
                .zip(WIDTHS)
                .map(|(cell, w)| match w {
                    w if w < 0 => format!("{cell:<0$}", (-w) as usize),
                    w => format!("{cell:>0$}", w as usize),
                })
                .collect();
            println!("{} {last}", padded.join(" "));
        }
    };
    let head = [
        "kernel",
        "model",
        "FMAs",
        "loads",
        "stores",
        "FMA-bound cyc",
        "loop cyc",
        "ratio",
        "bar",
    ];
    print_line(head.map(String::from), "");
    if markdown {
        println!("|{}", "---|".repeat(9));
    }
    for r in rows {
        let cells = [
            r.kernel.to_string(),
            r.model.to_string(),
            r.fmas.to_string(),
            r.loads.to_string(),
            r.stores.to_string(),
            format!("{:.2}", r.bound),
            format!("{:.2}", r.loop_cycles),
            format!("{:.3}", r.ratio()),
            r.bar_text(),
        ];
        print_line(cells, &r.verdict());
    }
}

/// Disassembles each micro-kernel's k loop from this build and simulates it
/// with llvm-mca for the CPU models that matter; fails when a loop stores,
/// calls out, or runs over its FMA bound.
#[derive(Parser, Debug)]
#[command(long_about = None)]
struct Cli {
    /// Print the table as Markdown (as in docs/gemm.md).
    #[arg(long)]
    markdown: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match check(cli.markdown) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!(
                "error: a kernel calls out of its body, its k loop stores, or it runs over its FMA bound (see the table)"
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
