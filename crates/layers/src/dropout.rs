//! Inverted dropout.

use std::cell::{Cell, RefCell};

use ember_autograd::Var;
use ember_tensor::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::Module;

/// Inverted dropout: in training, zeroes each element with probability `p`
/// and scales the survivors by `1/(1 − p)`, so evaluation (where it is the
/// identity) needs no rescaling. Any shape → the same shape.
///
/// Masks come from its own seeded RNG; [`Module::reseed`] restarts it (the
/// training loops do so every epoch, which makes resumed runs exact).
///
/// ```
/// use ember_autograd::Var;
/// use ember_layers::{Dropout, Module};
/// use ember_tensor::Tensor;
///
/// let drop = Dropout::new(0.5, 7);
/// let x = Var::constant(Tensor::ones(&[1000]));
/// let y = drop.forward(&x).value().to_vec();
/// assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
/// drop.set_training(false);
/// assert_eq!(drop.forward(&x).value().to_vec(), vec![1.0; 1000]);
/// ```
pub struct Dropout {
    p: f32,
    rng: RefCell<ChaCha8Rng>,
    training: Cell<bool>,
}

impl Dropout {
    /// Dropout with probability `p` of zeroing, masks seeded by `seed`.
    ///
    /// # Panics
    /// If `p` is not in `[0, 1)`.
    #[track_caller]
    pub fn new(p: f32, seed: u64) -> Dropout {
        assert!(
            (0.0..1.0).contains(&p),
            "Dropout: probability {p} is not in [0, 1)"
        );
        Dropout {
            p,
            rng: RefCell::new(ChaCha8Rng::seed_from_u64(seed)),
            training: Cell::new(true),
        }
    }

    /// The probability of zeroing an element.
    pub fn p(&self) -> f32 {
        self.p
    }
}

impl Module for Dropout {
    fn forward(&self, input: &Var) -> Var {
        if !self.training.get() || self.p == 0.0 {
            return input.clone();
        }
        let shape = input.shape();
        let scale = 1.0 / (1.0 - self.p);
        // Keep an element when a uniform u32 falls below (1 − p)·2³²: one
        // integer compare per element on bulk-generated random words.
        let threshold = ((1.0 - f64::from(self.p)) * 4_294_967_296.0) as u64;
        let mut words = vec![0u32; shape.iter().product()];
        self.rng.borrow_mut().fill(words.as_mut_slice());
        let mask: Vec<f32> = words
            .iter()
            .map(|&w| if u64::from(w) < threshold { scale } else { 0.0 })
            .collect();
        input.dropout_with_mask(&Tensor::from_vec(mask, &shape))
    }

    fn set_training(&self, training: bool) {
        self.training.set(training);
    }

    fn reseed(&self, seed: u64) {
        *self.rng.borrow_mut() = ChaCha8Rng::seed_from_u64(seed);
    }

    fn describe(&self) -> String {
        format!("Dropout(p = {})", self.p)
    }
}
