//! The tensor memory counters (`ember_tensor::memory`), in a process of
//! their own: they are process-wide, and other tests' tensors would move them.

use ember_tensor::{memory, Tensor};

#[test]
fn tensors_are_counted_while_they_live_and_the_peak_holds_the_most() {
    let base = memory::allocated_bytes();
    memory::reset_peak();
    assert_eq!(memory::peak_bytes(), base);

    // Large enough to be recycled when dropped: still uncounted once dropped.
    let a = Tensor::zeros(&[512, 512]);
    let one = memory::allocated_bytes() - base;
    assert!((1 << 20..(1 << 20) + 64).contains(&one), "{one} bytes");
    let view = a.t(); // a view shares the storage: nothing new
    assert_eq!(memory::allocated_bytes() - base, one);
    let b = &a + &a;
    assert_eq!(memory::allocated_bytes() - base, 2 * one);
    drop((a, view));
    assert_eq!(memory::allocated_bytes() - base, one);
    drop(b);
    assert_eq!(memory::allocated_bytes(), base);
    assert_eq!(memory::peak_bytes() - base, 2 * one);

    // A recycled buffer is counted again when a tensor takes it.
    let c = Tensor::full(&[512, 512], 2.0);
    assert_eq!(memory::allocated_bytes() - base, one);
    // A caller's Vec counts with its whole capacity.
    let mut values = Vec::with_capacity(100);
    values.extend([1.0; 10]);
    let d = Tensor::from_vec(values, &[10]);
    assert_eq!(memory::allocated_bytes() - base, one + 400);
    drop((c, d));
    assert_eq!(memory::allocated_bytes(), base);

    memory::reset_peak();
    assert_eq!(memory::peak_bytes(), base);
}
