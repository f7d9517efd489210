//! The order in which `gemm_report` times the libraries in each round.

/// The order for round `round` of `N` timed things (`N` even): a Williams
/// square, so that over every `N` rounds each one runs once in each place
/// and right after each other one once. A lingering effect of whatever
/// ran just before (another library's threads, the FMA probe's heat)
/// then falls on every one alike.
pub fn turn_order<const N: usize>(round: usize) -> [usize; N] {
    const {
        assert!(
            N.is_multiple_of(2),
            "a Williams square of this form needs an even count"
        )
    };
    // The first row is 0, 1, N−1, 2, N−2, …; each round adds 1 to every entry.
    std::array::from_fn(|turn| {
        let first = if turn % 2 == 1 {
            turn.div_ceil(2)
        } else {
            (N - turn / 2) % N
        };
        (first + round) % N
    })
}
