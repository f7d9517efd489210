//! Fan-in and fan-out: how many inputs feed one output unit, and how many
//! outputs one input unit feeds. Variance-scaling initializers divide by them.

/// The fans of a weight tensor.
///
/// Ember stores weights as PyTorch does, so [`Fans::from_shape`] follows
/// PyTorch's convention:
///
/// | tensor                          | shape                     | `fan_in`          | `fan_out`          |
/// |---------------------------------|---------------------------|-------------------|--------------------|
/// | scalar                          | `()`                      | 1                 | 1                  |
/// | vector (e.g. a bias)            | `(n)`                     | n                 | n                  |
/// | `Linear` weight                 | `(out, in)`               | in                | out                |
/// | `Conv2d` weight                 | `(out_c, in_c, kh, kw)`   | in_c · kh · kw    | out_c · kh · kw    |
/// | any `(d0, d1, rest…)`           |                           | d1 · Π rest       | d0 · Π rest        |
///
/// (Keras stores a dense kernel as `(in, out)`, the transpose; the fans are
/// the same numbers, read from the other axis. The vector and scalar rows
/// follow Keras, where PyTorch refuses fewer than two dimensions.)
///
/// ```
/// use ember_layers::init::Fans;
///
/// assert_eq!(Fans::from_shape(&[10, 784]), Fans::new(784, 10));
/// assert_eq!(Fans::from_shape(&[32, 16, 3, 3]), Fans::new(16 * 9, 32 * 9));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fans {
    /// Inputs feeding each output unit (`in · receptive field`).
    pub fan_in: usize,
    /// Outputs each input unit feeds (`out · receptive field`).
    pub fan_out: usize,
}

impl Fans {
    /// Fans given explicitly, for a layer whose weight layout is its own.
    pub fn new(fan_in: usize, fan_out: usize) -> Fans {
        Fans { fan_in, fan_out }
    }

    /// The fans of a weight stored as PyTorch stores it (see the table above).
    pub fn from_shape(shape: &[usize]) -> Fans {
        match shape {
            [] => Fans::new(1, 1),
            [n] => Fans::new(*n, *n),
            [out, inp, rest @ ..] => {
                let receptive: usize = rest.iter().product();
                Fans::new(inp * receptive, out * receptive)
            }
        }
    }

    /// (fan_in + fan_out) / 2, the denominator of Glorot's initializers.
    pub fn average(&self) -> f64 {
        (self.fan_in as f64 + self.fan_out as f64) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fans_follow_pytorch_layouts() {
        assert_eq!(Fans::from_shape(&[]), Fans::new(1, 1));
        assert_eq!(Fans::from_shape(&[7]), Fans::new(7, 7));
        assert_eq!(Fans::from_shape(&[3, 5]), Fans::new(5, 3));
        assert_eq!(Fans::from_shape(&[8, 4, 3, 2]), Fans::new(24, 48));
        assert_eq!(Fans::from_shape(&[8, 4, 5]), Fans::new(20, 40));
        assert_eq!(Fans::new(2, 5).average(), 3.5);
    }
}
