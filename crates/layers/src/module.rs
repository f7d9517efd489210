//! The [`Module`] trait: what every layer and model implements.

use ember_autograd::Var;

/// A named variable of a module's state, as PyTorch's `state_dict` names it
/// (`"0.weight"`, `"3.bias"`, `"1.running_mean"`).
pub type Named = (String, Var);

/// The rows `offset .. offset + local` of a global batch of `global` rows
/// that this process computes ([`Module::set_batch_share`]); `global == 0`
/// means the batch is not shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchShare {
    /// The first row of the global batch that this process has.
    pub offset: usize,
    /// The rows of the global batch (0: not shared).
    pub global: usize,
}

/// A building block of a model: maps an input [`Var`] to an output `Var`,
/// owns named parameters, and knows whether it is training.
///
/// Modules take `&self` everywhere: parameters are `Var`s (shared handles
/// whose values optimizers update in place), and the little state a layer
/// changes while running (dropout's RNG, batch-norm statistics, the training
/// flag) sits behind interior mutability. So a model can be borrowed by the
/// training loop, the optimizer and a checkpoint writer at once.
///
/// ```
/// use ember_autograd::Var;
/// use ember_layers::{Module, Named};
///
/// /// A user-written layer: y = x · scale, with `scale` trainable.
/// struct Scale {
///     scale: Var,
/// }
///
/// impl Module for Scale {
///     fn forward(&self, x: &Var) -> Var {
///         x.mul(&self.scale)
///     }
///     fn parameters(&self) -> Vec<Named> {
///         vec![("scale".to_string(), self.scale.clone())]
///     }
/// }
///
/// let layer = Scale { scale: Var::parameter(ember_tensor::Tensor::full(&[1], 2.0)) };
/// let y = layer.forward(&Var::constant(ember_tensor::Tensor::ones(&[3])));
/// assert_eq!(y.value().to_vec(), vec![2.0; 3]);
/// ```
pub trait Module {
    /// Runs the layer on a batch.
    fn forward(&self, input: &Var) -> Var;

    /// The trainable parameters with their state-dict names, in a stable order.
    fn parameters(&self) -> Vec<Named> {
        Vec::new()
    }

    /// Non-trainable state saved with the model (batch-norm running statistics).
    fn buffers(&self) -> Vec<Named> {
        Vec::new()
    }

    /// Switches between training (`true`) and evaluation (`false`) behaviour:
    /// dropout is active and batch-norm uses batch statistics only in training.
    fn set_training(&self, _training: bool) {}

    /// Called by `Sequential` when this layer's output feeds a ReLU.
    /// Linear and convolution layers whose bias was left at its default then
    /// start it at [`crate::RELU_BIAS`] so that no unit starts dead.
    fn feeds_relu(&self) {}

    /// Whether this layer is a ReLU (so the layer before it gets a positive bias).
    fn is_relu(&self) -> bool {
        false
    }

    /// Re-seeds any randomness the layer uses while running (dropout masks).
    /// Training loops call it at each epoch with a seed derived from the run's
    /// seed and the epoch, so a run resumed at an epoch boundary draws the
    /// same masks as one that never stopped.
    fn reseed(&self, _seed: u64) {}

    /// Which rows of the global batch the next forward passes see, in
    /// data-parallel training (each process gets a share of every batch).
    /// Layers that draw random numbers per row (dropout) draw them for the
    /// whole global batch and keep their rows, so a sharded run draws the
    /// masks a single process would. The default is the whole batch.
    fn set_batch_share(&self, _share: BatchShare) {}

    /// A short description for summaries, like `Linear(784 → 512)`.
    fn describe(&self) -> String {
        "Module".to_string()
    }

    /// Parameters then buffers: everything a checkpoint stores.
    fn state(&self) -> Vec<Named> {
        let mut all = self.parameters();
        all.extend(self.buffers());
        all
    }

    /// The number of trainable scalars.
    fn num_parameters(&self) -> usize {
        self.parameters()
            .iter()
            .map(|(_, v)| v.value_ref().numel())
            .sum()
    }
}
