//! Convolution and pooling layers (NCHW).

use ember_autograd::Var;
use rand::Rng;

use crate::init::Fans;
use crate::{LayerInit, LayerKind, Members, Module};

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
    feeds: crate::Activation,
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl Conv2d {
    /// A `kernel × kernel` convolution, stride 1, no padding, default init.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        rng: &mut dyn Rng,
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
        rng: &mut dyn Rng,
    ) -> Conv2d {
        let shape = [out_channels, in_channels, kernel, kernel];
        let fans = Fans::from_shape(&shape);
        let weight = Var::parameter(init.weight.init(&shape, fans, rng));
        let bias = init.init_bias(out_channels, fans, rng);
        Conv2d {
            weight,
            bias,
            feeds: init.feeds,
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
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
        let output = input.conv2d(&self.weight, self.bias.as_ref(), self.stride, self.padding);
        crate::probe::layer_output(self, &output);
        output
    }

    fn forward_relu(&self, input: &Var) -> Var {
        if crate::probe::is_recording() {
            // A report needs the pre-activation, which the fused op never holds.
            return crate::ReLU.forward(&self.forward(input));
        }
        input.conv2d_relu(&self.weight, self.bias.as_ref(), self.stride, self.padding)
    }

    fn forward_relu_max_pool2d(&self, input: &Var, kernel: usize, stride: usize) -> Var {
        if crate::probe::is_recording() {
            return self.forward_relu(input).max_pool2d(kernel, stride);
        }
        let (b, s, p) = (self.bias.as_ref(), self.stride, self.padding);
        input.conv2d_relu_max_pool2d(&self.weight, b, s, p, kernel, stride)
    }

    fn visit(&self, m: &mut Members) {
        m.weight_and_bias(&self.weight, self.bias.as_ref());
    }

    fn kind(&self) -> LayerKind {
        LayerKind::Weighted { feeds: self.feeds }
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
    fn kind(&self) -> LayerKind {
        LayerKind::MaxPool {
            kernel: self.kernel,
            stride: self.stride,
        }
    }
    fn describe(&self) -> String {
        format!(
            "MaxPool2d({}×{}, stride {})",
            self.kernel, self.kernel, self.stride
        )
    }
}
