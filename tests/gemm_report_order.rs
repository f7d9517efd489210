//! `gemm_report` times the libraries in an order that favours none.

#[path = "../examples/gemm_report/turn_order.rs"]
mod turn_order;

use turn_order::turn_order;

/// Over `N` rounds: every round a permutation, every thing once in each
/// place, and every ordered pair of neighbours exactly once.
fn check_balanced<const N: usize>() {
    let rounds: Vec<[usize; N]> = (0..N).map(turn_order::<N>).collect();
    for (round, order) in rounds.iter().enumerate() {
        let mut sorted = *order;
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            std::array::from_fn(|i| i),
            "round {round}: {order:?}"
        );
    }
    for place in 0..N {
        let mut there: Vec<usize> = rounds.iter().map(|order| order[place]).collect();
        there.sort_unstable();
        assert_eq!(there, (0..N).collect::<Vec<_>>(), "place {place}");
    }
    let mut pairs: Vec<(usize, usize)> = rounds
        .iter()
        .flat_map(|order| order.windows(2).map(|w| (w[0], w[1])))
        .collect();
    pairs.sort_unstable();
    let every_pair: Vec<(usize, usize)> = (0..N)
        .flat_map(|a| (0..N).filter(move |&b| b != a).map(move |b| (a, b)))
        .collect();
    assert_eq!(pairs, every_pair, "{N} things");
}

#[test]
fn each_library_gets_each_place_and_each_forerunner_equally() {
    // The report times three libraries and the FMA probe.
    check_balanced::<4>();
    check_balanced::<2>();
    check_balanced::<6>();
}

#[test]
fn the_rounds_repeat_after_n() {
    assert_eq!(turn_order::<4>(1), turn_order::<4>(5));
    assert_ne!(turn_order::<4>(0), turn_order::<4>(1));
}
