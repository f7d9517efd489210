//! Bernoulli keep-masks drawn from a ChaCha8 keystream (dropout's masks):
//! byte `i` is 1 when word `first_word + i` of the stream is below a
//! threshold, else 0.
//!
//! The words are exactly those of `rand_chacha`'s `ChaCha8Rng` (same key,
//! stream and word position), so a mask does not depend on which path made
//! it. The portable path asks `rand_chacha` for the words; on a CPU with
//! AVX-512 the keystream is computed here, sixteen blocks at a time (one per
//! vector lane), because `rand_chacha` stops at AVX2 and its words cost
//! about 3.5 cycles each, 3 % of a classic-MLP training step.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

/// Words per ChaCha block.
const BLOCK_WORDS: usize = 16;

/// Writes `keep[i] = 1` where word `first_word + i` of `stream`'s keystream
/// is below `threshold`, else `0`: the same bytes as filling `u32`s from a
/// clone of `stream` set to word position `first_word` and comparing each.
/// Only `stream`'s key and stream number matter, not its position.
///
/// ```
/// use ember_tensor::keep_mask;
/// use rand::{Rng, SeedableRng};
/// use rand_chacha::ChaCha8Rng;
///
/// let stream = ChaCha8Rng::seed_from_u64(7);
/// let mut keep = vec![0u8; 100];
/// keep_mask(&stream, 5, u32::MAX / 2, &mut keep);
///
/// let mut words = [0u32; 100];
/// let mut rng = stream.clone();
/// rng.set_word_pos(5);
/// rng.fill_bytes(bytemuck_free(&mut words));
/// # fn bytemuck_free(w: &mut [u32; 100]) -> &mut [u8] {
/// #     // SAFETY: u32s are plain bytes; the slice covers the array exactly.
/// #     unsafe { std::slice::from_raw_parts_mut(w.as_mut_ptr().cast(), 400) }
/// # }
/// let want: Vec<u8> = words.iter().map(|&w| u8::from(w < u32::MAX / 2)).collect();
/// assert_eq!(keep, want);
/// ```
pub fn keep_mask(stream: &ChaCha8Rng, first_word: u128, threshold: u32, keep: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F.
        unsafe { avx512::keep_mask(stream, first_word, threshold, keep) };
        return;
    }
    portable(stream, first_word, threshold, keep);
}

/// [`keep_mask`] through `rand_chacha`'s own words.
pub(crate) fn portable(stream: &ChaCha8Rng, first_word: u128, threshold: u32, keep: &mut [u8]) {
    let mut rng = stream.clone();
    rng.set_word_pos(first_word);
    let mut words = [0u32; 1024];
    for part in keep.chunks_mut(words.len()) {
        let words = &mut words[..part.len()];
        rng.fill(words);
        for (k, &w) in part.iter_mut().zip(words.iter()) {
            *k = u8::from(w < threshold);
        }
    }
}

/// The ChaCha state a block starts from, less its counter: the constants,
/// the key and the stream number, as `rand_chacha` lays them out (words 12
/// and 13 are the 64-bit block counter, low half first).
#[cfg(target_arch = "x86_64")]
fn initial_state(stream: &ChaCha8Rng) -> [u32; 16] {
    let key = stream.get_seed();
    let id = stream.get_stream();
    let mut state = [0u32; 16];
    state[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
    for (word, bytes) in state[4..12].iter_mut().zip(key.chunks_exact(4)) {
        *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    }
    state[14] = id as u32;
    state[15] = (id >> 32) as u32;
    state
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::{
        __m512i, _mm512_add_epi32, _mm512_add_epi64, _mm512_cmplt_epu32_mask, _mm512_cvtepi32_epi8,
        _mm512_maskz_set1_epi32, _mm512_rol_epi32, _mm512_set1_epi32, _mm512_set1_epi64,
        _mm512_setr_epi64, _mm512_shuffle_i32x4, _mm512_srli_epi64, _mm512_unpackhi_epi32,
        _mm512_unpackhi_epi64, _mm512_unpacklo_epi32, _mm512_unpacklo_epi64, _mm512_xor_si512,
        _mm_storeu_si128,
    };

    use rand_chacha::ChaCha8Rng;

    use super::{initial_state, BLOCK_WORDS};

    /// Blocks computed at once: one per 32-bit lane.
    const LANES: usize = 16;
    /// Words of one batch of blocks.
    const BATCH_WORDS: usize = LANES * BLOCK_WORDS;

    /// [`super::keep_mask`] on AVX-512F.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn keep_mask(
        stream: &ChaCha8Rng,
        first_word: u128,
        threshold: u32,
        keep: &mut [u8],
    ) {
        if keep.is_empty() {
            return;
        }
        let state = initial_state(stream);
        // The block counter wraps at 2⁶⁴ blocks, as `set_word_pos` does.
        let first_block = (first_word / BLOCK_WORDS as u128) as u64;
        let skip = (first_word % BLOCK_WORDS as u128) as usize;
        let total = skip + keep.len();
        let mut spare = [0u8; BATCH_WORDS];
        for batch in 0..total.div_ceil(BATCH_WORDS) {
            let start = batch * BATCH_WORDS; // in words from `first_block`'s first
            let block = first_block.wrapping_add((batch * LANES) as u64);
            if start >= skip && start + BATCH_WORDS <= total {
                let out = &mut keep[start - skip..start - skip + BATCH_WORDS];
                // SAFETY: AVX-512F (caller); `out` has BATCH_WORDS bytes.
                unsafe { batch_mask(&state, block, threshold, out.as_mut_ptr()) };
            } else {
                // A ragged first or last batch: make it whole, keep its live part.
                // SAFETY: as above, into `spare`.
                unsafe { batch_mask(&state, block, threshold, spare.as_mut_ptr()) };
                let from = skip.saturating_sub(start);
                let to = (total - start).min(BATCH_WORDS);
                let at = start + from - skip;
                keep[at..at + to - from].copy_from_slice(&spare[from..to]);
            }
        }
    }

    /// Keep bytes for the 256 words of blocks `block .. block + 16`, in
    /// stream order, at `out`.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `out` has `BATCH_WORDS` writable bytes.
    #[inline(always)]
    unsafe fn batch_mask(state: &[u32; 16], block: u64, threshold: u32, out: *mut u8) {
        // SAFETY: AVX-512F (caller) for every intrinsic; the 16 stores of
        // 16 bytes each stay inside `out`'s BATCH_WORDS bytes.
        unsafe {
            let init = block_states(state, block);
            let mut x = init;
            for _ in 0..4 {
                // ChaCha8: four double rounds, columns then diagonals.
                quarter_round(&mut x, 0, 4, 8, 12);
                quarter_round(&mut x, 1, 5, 9, 13);
                quarter_round(&mut x, 2, 6, 10, 14);
                quarter_round(&mut x, 3, 7, 11, 15);
                quarter_round(&mut x, 0, 5, 10, 15);
                quarter_round(&mut x, 1, 6, 11, 12);
                quarter_round(&mut x, 2, 7, 8, 13);
                quarter_round(&mut x, 3, 4, 9, 14);
            }
            for (word, start) in x.iter_mut().zip(init) {
                *word = _mm512_add_epi32(*word, start);
            }
            // x[j] holds word j of the 16 blocks; the mask wants block by block.
            let blocks = transpose(x);
            let below = _mm512_set1_epi32(threshold as i32);
            for (l, words) in blocks.iter().enumerate() {
                let kept = _mm512_cmplt_epu32_mask(*words, below);
                let bytes = _mm512_cvtepi32_epi8(_mm512_maskz_set1_epi32(kept, 1));
                _mm_storeu_si128(out.add(l * BLOCK_WORDS).cast(), bytes);
            }
        }
    }

    /// The 16 starting states, lane `l` for block `block + l`: every word
    /// broadcast but the counter's two, which count up across the lanes
    /// (with the carry from the low word into the high one).
    #[inline(always)]
    unsafe fn block_states(state: &[u32; 16], block: u64) -> [__m512i; 16] {
        // SAFETY: AVX-512F (caller).
        unsafe {
            let mut x = [_mm512_set1_epi32(0); 16];
            for (v, &word) in x.iter_mut().zip(state) {
                *v = _mm512_set1_epi32(word as i32);
            }
            // Counters of lanes 0..8 and 8..16 as u64s, then split into halves.
            let base = _mm512_set1_epi64(block as i64);
            let lo8 = _mm512_add_epi64(base, _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7));
            let hi8 = _mm512_add_epi64(base, _mm512_setr_epi64(8, 9, 10, 11, 12, 13, 14, 15));
            let (low, high) = split_u64s(lo8, hi8);
            x[12] = low;
            x[13] = high;
            x
        }
    }

    /// The low and high 32-bit halves of sixteen u64s (`a` lanes 0..8, `b`
    /// lanes 8..16), each in lane order.
    #[inline(always)]
    unsafe fn split_u64s(a: __m512i, b: __m512i) -> (__m512i, __m512i) {
        // SAFETY: AVX-512F (caller).
        unsafe {
            let a_hi = _mm512_srli_epi64::<32>(a);
            let b_hi = _mm512_srli_epi64::<32>(b);
            (pack_even(a, b), pack_even(a_hi, b_hi))
        }
    }

    /// The even 32-bit lanes of `a` then of `b`: `[a0, a2, …, a14, b0, …, b14]`.
    #[inline(always)]
    unsafe fn pack_even(a: __m512i, b: __m512i) -> __m512i {
        use std::arch::x86_64::{_mm512_permutex2var_epi32, _mm512_setr_epi32};
        // SAFETY: AVX-512F (caller). Index bit 4 picks `b`.
        unsafe {
            let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            _mm512_permutex2var_epi32(a, even, b)
        }
    }

    /// ChaCha's quarter round on words `a, b, c, d` of all 16 blocks.
    #[inline(always)]
    unsafe fn quarter_round(x: &mut [__m512i; 16], a: usize, b: usize, c: usize, d: usize) {
        // SAFETY: AVX-512F (caller).
        unsafe {
            x[a] = _mm512_add_epi32(x[a], x[b]);
            x[d] = _mm512_rol_epi32::<16>(_mm512_xor_si512(x[d], x[a]));
            x[c] = _mm512_add_epi32(x[c], x[d]);
            x[b] = _mm512_rol_epi32::<12>(_mm512_xor_si512(x[b], x[c]));
            x[a] = _mm512_add_epi32(x[a], x[b]);
            x[d] = _mm512_rol_epi32::<8>(_mm512_xor_si512(x[d], x[a]));
            x[c] = _mm512_add_epi32(x[c], x[d]);
            x[b] = _mm512_rol_epi32::<7>(_mm512_xor_si512(x[b], x[c]));
        }
    }

    /// The 16×16 transpose of 32-bit lanes: `out[l]` lane `j` is `rows[j]`
    /// lane `l`.
    #[inline(always)]
    pub(super) unsafe fn transpose(rows: [__m512i; 16]) -> [__m512i; 16] {
        // SAFETY: AVX-512F (caller).
        unsafe {
            // Pairs of rows interleaved by dwords: t[2k] has columns 4L, 4L+1
            // of rows 2k, 2k+1 in 128-bit lane L, t[2k+1] columns 4L+2, 4L+3.
            let mut t = rows;
            for k in 0..8 {
                t[2 * k] = _mm512_unpacklo_epi32(rows[2 * k], rows[2 * k + 1]);
                t[2 * k + 1] = _mm512_unpackhi_epi32(rows[2 * k], rows[2 * k + 1]);
            }
            // Then by qwords: u[4k + c] lane L is column 4L + c of rows 4k .. 4k+4.
            let mut u = t;
            for k in 0..4 {
                u[4 * k] = _mm512_unpacklo_epi64(t[4 * k], t[4 * k + 2]);
                u[4 * k + 1] = _mm512_unpackhi_epi64(t[4 * k], t[4 * k + 2]);
                u[4 * k + 2] = _mm512_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
                u[4 * k + 3] = _mm512_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
            }
            // Then 128-bit lanes: gather each column's four row groups.
            let mut out = u;
            for c in 0..4 {
                // Lanes 0, 2 (0x88) or 1, 3 (0xdd) of both operands.
                let even01 = _mm512_shuffle_i32x4::<0x88>(u[c], u[4 + c]);
                let odd01 = _mm512_shuffle_i32x4::<0xdd>(u[c], u[4 + c]);
                let even23 = _mm512_shuffle_i32x4::<0x88>(u[8 + c], u[12 + c]);
                let odd23 = _mm512_shuffle_i32x4::<0xdd>(u[8 + c], u[12 + c]);
                out[c] = _mm512_shuffle_i32x4::<0x88>(even01, even23);
                out[8 + c] = _mm512_shuffle_i32x4::<0xdd>(even01, even23);
                out[4 + c] = _mm512_shuffle_i32x4::<0x88>(odd01, odd23);
                out[12 + c] = _mm512_shuffle_i32x4::<0xdd>(odd01, odd23);
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    /// Whether the AVX-512 path can run here; panics when it cannot but
    /// `EMBER_REQUIRE_KERNELS` lists `avx512` (as for the GEMM's kernels), so
    /// a run that must cover it cannot pass by skipping it.
    #[cfg(target_arch = "x86_64")]
    fn avx512_here() -> bool {
        let here = std::arch::is_x86_feature_detected!("avx512f");
        let required = std::env::var("EMBER_REQUIRE_KERNELS")
            .is_ok_and(|list| list.split(',').any(|k| k.trim() == "avx512"));
        assert!(
            here || !required,
            "EMBER_REQUIRE_KERNELS lists avx512 but this CPU cannot run the AVX-512 keystream"
        );
        here
    }

    /// The mask as `rand_chacha` words give it, one sequential fill.
    fn reference(stream: &ChaCha8Rng, first_word: u128, threshold: u32, len: usize) -> Vec<u8> {
        let mut keep = vec![7u8; len];
        portable(stream, first_word, threshold, &mut keep);
        keep
    }

    #[test]
    fn portable_is_rand_chacha_word_by_word() {
        let mut stream = ChaCha8Rng::seed_from_u64(11);
        stream.set_stream(3);
        let mut rng = stream.clone();
        rng.set_word_pos(37);
        let want: Vec<u8> = (0..3000)
            .map(|_| u8::from(rng.random::<u32>() < 1 << 31))
            .collect();
        assert_eq!(reference(&stream, 37, 1 << 31, 3000), want);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn transpose_moves_lane_l_of_row_j_to_lane_j_of_row_l() {
        use std::arch::x86_64::{__m512i, _mm512_loadu_si512, _mm512_storeu_si512};
        if !avx512_here() {
            return;
        }
        let rows: Vec<[u32; 16]> = (0..16u32)
            .map(|j| std::array::from_fn(|l| 16 * j + l as u32))
            .collect();
        // SAFETY: the CPU has AVX-512F; each load and store covers one [u32; 16].
        let out = unsafe {
            let v: [__m512i; 16] =
                std::array::from_fn(|j| _mm512_loadu_si512(rows[j].as_ptr().cast()));
            let t = avx512::transpose(v);
            let mut out = [[0u32; 16]; 16];
            for (o, v) in out.iter_mut().zip(t) {
                _mm512_storeu_si512(o.as_mut_ptr().cast(), v);
            }
            out
        };
        for (l, row) in out.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                assert_eq!(v, 16 * j as u32 + l as u32, "out[{l}][{j}]");
            }
        }
    }

    /// The dispatched path (AVX-512 here when the CPU has it) against
    /// `rand_chacha`, at ragged starts and lengths, thresholds at both ends,
    /// and a start where the low counter word carries into the high one.
    #[test]
    fn dispatched_matches_rand_chacha() {
        #[cfg(target_arch = "x86_64")]
        avx512_here();
        let mut seeds = ChaCha8Rng::seed_from_u64(99);
        let carry = (u128::from(u32::MAX) - 20) * BLOCK_WORDS as u128 + 5;
        for (first_word, len) in [
            (0, 256),
            (0, 1),
            (3, 255),
            (16, 4096),
            (17, 5000),
            (1000, 16),
            (123_457, 777),
            (carry, 1500),
            (0, 0),
        ] {
            let mut stream = ChaCha8Rng::seed_from_u64(seeds.random());
            stream.set_stream(seeds.random());
            for threshold in [0, 1, 1 << 31, 3_435_973_837, u32::MAX] {
                let mut got = vec![7u8; len];
                keep_mask(&stream, first_word, threshold, &mut got);
                assert_eq!(
                    got,
                    reference(&stream, first_word, threshold, len),
                    "first word {first_word}, {len} words, threshold {threshold}"
                );
            }
        }
    }
}
