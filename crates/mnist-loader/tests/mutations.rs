//! Property test (the stable-toolchain stand-in for the fuzz target): random
//! mutations of valid IDX files, raw or gzip, never panic and never allocate
//! absurdly — the parser returns `Ok` or a typed error, quickly.

use std::alloc::System;
use std::io::Write;

use cap::Cap;
use ember_mnist::idx::{maybe_gunzip, read_idx, write_idx, IdxData};
use proptest::prelude::*;

/// Tracks the peak of live heap bytes, and refuses anything near a forged header's claim.
#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, 1 << 30);

/// Peak live heap bytes allowed in this binary. Parsing inputs of a few
/// kilobytes needs far less; trusting one forged dimension would need far more
/// (and past the 1 GiB cap the allocation fails and the test aborts).
const ALLOCATION_CEILING: usize = 64 << 20;

fn peak() -> usize {
    ALLOCATOR.max_allocated()
}

fn seed_files() -> Vec<Vec<u8>> {
    vec![
        write_idx(
            &[3, 28, 28],
            &IdxData::U8((0..3 * 784).map(|i| i as u8).collect()),
        ),
        write_idx(
            &[40],
            &IdxData::U8((0..40).map(|i| (i % 10) as u8).collect()),
        ),
        write_idx(
            &[2, 3, 4],
            &IdxData::I16((0..24).map(|i| i * 1000 - 9000).collect()),
        ),
        write_idx(
            &[5, 2],
            &IdxData::F64((0..10).map(|i| i as f64 / 3.0).collect()),
        ),
        write_idx(
            &[7],
            &IdxData::I32(vec![i32::MIN, -1, 0, 1, 2, 3, i32::MAX]),
        ),
        write_idx(&[2, 2], &IdxData::F32(vec![0.5, -0.25, 1e9, f32::NAN])),
    ]
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Set the byte at (position mod len) to a value.
    Set(usize, u8),
    /// Insert a byte.
    Insert(usize, u8),
    /// Remove a byte.
    Remove(usize),
    /// Cut the file.
    Truncate(usize),
    /// Put a big-endian u32 (a forged dimension, often huge) at an offset.
    Dim(usize, u32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::Set(p, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::Insert(p, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
        // Dimensions live in bytes 4.., so aim forged u32s there most of the time.
        (
            0usize..24,
            prop_oneof![any::<u32>(), Just(u32::MAX), Just(0), Just(1 << 31)]
        )
            .prop_map(|(p, v)| Mutation::Dim(p, v)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let n = bytes.len();
    match *m {
        Mutation::Set(p, b) => bytes[p % n] = b,
        Mutation::Insert(p, b) => bytes.insert(p % (n + 1), b),
        Mutation::Remove(p) => {
            bytes.remove(p % n);
        }
        Mutation::Truncate(p) => bytes.truncate(p % n),
        Mutation::Dim(p, v) => {
            for (k, b) in v.to_be_bytes().into_iter().enumerate() {
                if let Some(slot) = bytes.get_mut(p + k) {
                    *slot = b;
                }
            }
        }
    }
}

fn parse(bytes: &[u8]) {
    // Either result is fine; a panic or a huge allocation fails the test.
    let result = maybe_gunzip(bytes).map(|r| read_idx(r, "mutant.idx"));
    if let Ok(Ok(idx)) = result {
        // A file that parses is self-consistent.
        assert_eq!(idx.header.element_count(), Some(idx.data.len()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_raw_files_never_panic(
        seed in 0usize..6,
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let mut bytes = seed_files().swap_remove(seed);
        for m in &mutations {
            apply(&mut bytes, m);
        }
        parse(&bytes);
        prop_assert!(peak() < ALLOCATION_CEILING);
    }

    #[test]
    fn mutated_gzip_files_never_panic(
        seed in 0usize..6,
        mutate_inside in any::<bool>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut raw = seed_files().swap_remove(seed);
        let bytes = if mutate_inside {
            // Valid gzip around a broken IDX file.
            for m in &mutations {
                apply(&mut raw, m);
            }
            gzip(&raw)
        } else {
            // A broken gzip stream around a valid IDX file.
            let mut gz = gzip(&raw);
            for m in &mutations {
                apply(&mut gz, m);
            }
            gz
        };
        parse(&bytes);
        prop_assert!(peak() < ALLOCATION_CEILING);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        parse(&bytes);
        prop_assert!(peak() < ALLOCATION_CEILING);
    }
}

#[test]
fn forged_four_billion_images_costs_nothing() {
    // Header claims 2^32 - 1 images of 28×28; 100 bytes follow.
    let mut bytes = vec![0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 28, 0, 0, 0, 28];
    bytes.extend([7u8; 100]);
    let err = read_idx(&bytes[..], "forged.idx").unwrap_err();
    assert!(err.to_string().contains("truncated payload"), "{err}");
    assert!(peak() < ALLOCATION_CEILING);
}
