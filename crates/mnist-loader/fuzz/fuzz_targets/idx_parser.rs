//! Arbitrary bytes, raw or gzip, into the IDX parser: it must return `Ok` or a
//! typed error, never panic, and never allocate beyond what the input holds
//! (run with `-rss_limit_mb` / `-malloc_limit_mb` to make the last one fatal).
#![no_main]

use ember_mnist::idx::{maybe_gunzip, read_idx};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(reader) = maybe_gunzip(data) {
        if let Ok(idx) = read_idx(reader, "fuzz-input") {
            // Whatever parses is self-consistent.
            assert_eq!(idx.header.element_count(), Some(idx.data.len()));
        }
    }
});
