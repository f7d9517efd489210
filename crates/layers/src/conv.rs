//! Convolution and pooling layers (NCHW).

use std::cell::Cell;

use ember_autograd::Var;
use ember_tensor::Tensor;
use rand::RngCore;

use crate::init::Fans;
use crate::{LayerInit, Module, Named, RELU_BIAS};

/// A 2-D convolution: `(N, C_in, H, W) → (N, C_out, H', W')` with
/// `H' = (H + 2·padding − k)/stride + 1` (same for W').
///
/// The weight is `(C_out, C_in, k, k)` and the bias `(C_out)`, as in PyTorch;
/// the fans for initialization are `C_in·k·k` and `C_out·k·k`. Runs as im2col
/// and one GEMM.
///
/// ```
/// use ember_autograd::Var;
/// use ember_layers::{Conv2d, Module};
/// use ember_tensor::Tensor;
/// use rand::SeedableRng;
///
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let conv = Conv2d::new(1, 32, 3, &mut rng);
/// let x = Var::constant(Tensor::zeros(&[8, 1, 28, 28]));
/// assert_eq!(conv.forward(&x).shape(), vec![8, 32, 26, 26]);
/// ```
pub struct Conv2d {
    weight: Var,
    bias: Option<Var>,
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    bias_is_default: Cell<bool>,
}

impl Conv2d {
    /// A `kernel × kernel` convolution, stride 1, no padding, default init.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        rng: &mut dyn RngCore,
    ) -> Conv2d {
        Conv2d::with_options(
            in_channels,
            out_channels,
            kernel,
            1,
            0,
            &LayerInit::default(),
            rng,
        )
    }

    /// A convolution with explicit stride, padding and initializers.
    pub fn with_options(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        init: &LayerInit,
        rng: &mut dyn RngCore,
    ) -> Conv2d {
        let shape = [out_channels, in_channels, kernel, kernel];
        let fans = Fans::from_shape(&shape);
        let weight = Var::parameter(init.weight.init(&shape, fans, rng));
        let (bias, bias_is_default) = match init.bias_initializer() {
            Some((b, is_default)) => (
                Some(Var::parameter(b.init(&[out_channels], fans, rng))),
                is_default,
            ),
            None => (None, false),
        };
        Conv2d {
            weight,
            bias,
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            bias_is_default: Cell::new(bias_is_default),
        }
    }

    /// The weight `(C_out, C_in, k, k)`.
    pub fn weight(&self) -> &Var {
        &self.weight
    }

    /// The bias `(C_out)`, if any.
    pub fn bias(&self) -> Option<&Var> {
        self.bias.as_ref()
    }
}

impl Module for Conv2d {
    fn forward(&self, input: &Var) -> Var {
        input.conv2d(&self.weight, self.bias.as_ref(), self.stride, self.padding)
    }

    fn parameters(&self) -> Vec<Named> {
        let mut out = vec![("weight".to_string(), self.weight.clone())];
        if let Some(b) = &self.bias {
            out.push(("bias".to_string(), b.clone()));
        }
        out
    }

    fn feeds_relu(&self) {
        if let (Some(bias), true) = (&self.bias, self.bias_is_default.get()) {
            bias.set_value(Tensor::full(&[self.out_channels], RELU_BIAS));
            self.bias_is_default.set(false);
        }
    }

    fn describe(&self) -> String {
        format!(
            "Conv2d({} → {}, {}×{}, stride {}, padding {})",
            self.in_channels,
            self.out_channels,
            self.kernel,
            self.kernel,
            self.stride,
            self.padding
        )
    }
}

/// Max pooling over `kernel × kernel` windows: `(N, C, H, W) → (N, C, H', W')`
/// with `H' = (H − kernel)/stride + 1`.
#[derive(Clone, Copy, Debug)]
pub struct MaxPool2d {
    /// Window size.
    pub kernel: usize,
    /// Step between windows.
    pub stride: usize,
}

impl MaxPool2d {
    /// Non-overlapping `kernel × kernel` windows (stride = kernel).
    pub fn new(kernel: usize) -> MaxPool2d {
        MaxPool2d {
            kernel,
            stride: kernel,
        }
    }
}

impl Module for MaxPool2d {
    fn forward(&self, input: &Var) -> Var {
        input.max_pool2d(self.kernel, self.stride)
    }
    fn describe(&self) -> String {
        format!(
            "MaxPool2d({}×{}, stride {})",
            self.kernel, self.kernel, self.stride
        )
    }
}
