//! The data caches of the machine the GEMM runs on, read once at run time,
//! so the block sizes fit the CPU at hand (L1d of 32 or 48 KiB and L2 of
//! 512 KiB to 2 MiB per core have all been seen).
//!
//! Sources, first that answers: Linux's `/sys/devices/system/cpu/cpu0/cache`,
//! then CPUID (leaf 4 on Intel, leaf 0x8000001D on AMD), else `None`, and the
//! kernels fall back to their own constants.

use std::sync::OnceLock;

/// Per-core data cache sizes, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheSizes {
    /// Level-1 data cache of one core.
    pub l1d: usize,
    /// Level-2 cache of one core (its share, if several cores share it).
    pub l2: usize,
    /// Level-3 cache, the share of one core of those that share it (0 when absent).
    pub l3: usize,
}

impl CacheSizes {
    /// The sizes of this machine's caches, read once per process; `None`
    /// when neither sysfs nor CPUID gives a plausible L1d and L2.
    pub fn detected() -> Option<CacheSizes> {
        static DETECTED: OnceLock<Option<CacheSizes>> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            from_sysfs()
                .or_else(from_cpuid)
                .filter(CacheSizes::plausible)
        })
    }

    /// Sizes a real CPU could have: guards against a virtual machine that
    /// reports nonsense (a zero, or an L1 larger than L2).
    fn plausible(&self) -> bool {
        (4 << 10..=1 << 20).contains(&self.l1d) && self.l2 >= self.l1d && self.l2 <= 1 << 30
    }
}

/// One cache as sysfs or CPUID describes it.
struct CacheLevel {
    level: u32,
    data: bool,
    bytes: usize,
    /// How many logical CPUs share it.
    sharers: usize,
}

fn assemble(levels: impl IntoIterator<Item = CacheLevel>) -> Option<CacheSizes> {
    let (mut l1d, mut l2, mut l3) = (None, None, 0);
    for c in levels.into_iter().filter(|c| c.data) {
        let share = c.bytes / c.sharers.max(1);
        match c.level {
            1 => l1d = Some(c.bytes),
            // An L2 shared by a cluster of cores (some Atoms, Apple) gives each its share.
            2 => l2 = Some(share),
            3 => l3 = share,
            _ => {}
        }
    }
    Some(CacheSizes {
        l1d: l1d?,
        l2: l2?,
        l3,
    })
}

/// Linux: `index*/{level,type,size,shared_cpu_list}` of CPU 0.
fn from_sysfs() -> Option<CacheSizes> {
    let dir = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    let read = |path: &std::path::Path, name: &str| std::fs::read_to_string(path.join(name)).ok();
    let levels = dir.filter_map(|entry| {
        let path = entry.ok()?.path();
        let kind = read(&path, "type")?;
        Some(CacheLevel {
            level: read(&path, "level")?.trim().parse().ok()?,
            data: matches!(kind.trim(), "Data" | "Unified"),
            bytes: parse_size(read(&path, "size")?.trim())?,
            sharers: read(&path, "shared_cpu_list").map_or(1, |l| count_cpus(l.trim())),
        })
    });
    assemble(levels.collect::<Vec<_>>())
}

/// `"48K"`, `"2048K"`, `"32M"` or a plain byte count.
fn parse_size(s: &str) -> Option<usize> {
    let (digits, unit) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1 << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        b'G' | b'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    digits.parse::<usize>().ok()?.checked_mul(unit)
}

/// The number of CPUs in a list like `"0-3,8,10-11"`.
fn count_cpus(list: &str) -> usize {
    list.split(',')
        .filter_map(|part| match part.split_once('-') {
            Some((a, b)) => Some(b.parse::<usize>().ok()? + 1 - a.parse::<usize>().ok()?),
            None => part.parse::<usize>().ok().map(|_| 1),
        })
        .sum::<usize>()
        .max(1)
}

/// CPUID's deterministic cache parameters: leaf 4 (Intel) or 0x8000001D
/// (AMD), one sub-leaf per cache until type 0.
#[cfg(target_arch = "x86_64")]
fn from_cpuid() -> Option<CacheSizes> {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    let vendor = __cpuid(0);
    let amd = vendor.ebx == u32::from_le_bytes(*b"Auth");
    let leaf = if amd { 0x8000_001D } else { 4 };
    let max_leaf = if amd {
        __cpuid(0x8000_0000).eax
    } else {
        vendor.eax
    };
    if max_leaf < leaf {
        return None;
    }
    let levels = (0..16).map_while(|sub| {
        let r = __cpuid_count(leaf, sub);
        let kind = r.eax & 0x1f; // 0 none, 1 data, 2 instruction, 3 unified
        (kind != 0).then(|| {
            let ways = ((r.ebx >> 22) & 0x3ff) as usize + 1;
            let partitions = ((r.ebx >> 12) & 0x3ff) as usize + 1;
            let line = (r.ebx & 0xfff) as usize + 1;
            let sets = r.ecx as usize + 1;
            CacheLevel {
                level: (r.eax >> 5) & 0x7,
                data: kind == 1 || kind == 3,
                bytes: ways * partitions * line * sets,
                sharers: ((r.eax >> 14) & 0xfff) as usize + 1,
            }
        })
    });
    assemble(levels.collect::<Vec<_>>())
}

#[cfg(not(target_arch = "x86_64"))]
fn from_cpuid() -> Option<CacheSizes> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_cpu_lists_parse() {
        assert_eq!(parse_size("48K"), Some(48 << 10));
        assert_eq!(parse_size("2048K"), Some(2 << 20));
        assert_eq!(parse_size("32M"), Some(32 << 20));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("K"), None);
        assert_eq!(parse_size("lots"), None);
        assert_eq!(count_cpus("0"), 1);
        assert_eq!(count_cpus("0-1"), 2);
        assert_eq!(count_cpus("0-3,8,10-11"), 7);
    }

    #[test]
    fn shared_caches_give_each_core_its_share() {
        let c = |level, data, bytes, sharers| CacheLevel {
            level,
            data,
            bytes,
            sharers,
        };
        let sizes = assemble([
            c(1, true, 48 << 10, 1),
            c(1, false, 64 << 10, 1),
            c(2, true, 2 << 20, 1),
            c(3, true, 32 << 20, 16),
        ]);
        assert_eq!(
            sizes,
            Some(CacheSizes {
                l1d: 48 << 10,
                l2: 2 << 20,
                l3: 2 << 20
            })
        );
        // An instruction cache is not a data cache; without an L2 there is no answer.
        assert_eq!(
            assemble([c(1, true, 32 << 10, 1), c(2, false, 1 << 20, 1)]),
            None
        );
    }

    #[test]
    fn this_machine_reports_plausible_caches_or_none() {
        if let Some(sizes) = CacheSizes::detected() {
            assert!(sizes.plausible(), "{sizes:?}");
        }
    }
}
