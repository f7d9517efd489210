//! The [`Module`] trait: what every layer and model implements.
//!
//! A module says what it holds in one method, [`Module::visit`]: its own
//! parameters and buffers, and its sub-modules, each under a name. Every
//! other method (named parameters, buffers, train/eval, the step that keys
//! dropout masks, batch shares, checkpoints) is a default that walks that
//! tree, so a model written as a plain struct of layers gets them all.

use ember_autograd::Var;

use crate::kind::LayerKind;
use crate::Dropout;

/// A named variable of a module's state, as PyTorch's `state_dict` names it
/// (`"0.weight"`, `"blocks.1.bn2.running_mean"`).
#[derive(Clone, Debug)]
pub struct Named {
    /// The dotted path: the field names (or indices) from the model down,
    /// then the variable's own name.
    pub name: String,
    /// The variable (a shared handle: optimizers update it in place).
    pub var: Var,
}

impl Named {
    /// A named variable.
    pub fn new(name: impl Into<String>, var: &Var) -> Named {
        Named {
            name: name.into(),
            var: var.clone(),
        }
    }
}

/// One thing a module holds, as [`Module::visit`] reports it.
pub enum Member<'m> {
    /// A trainable parameter.
    Parameter(&'m Var),
    /// Non-trainable state saved with the model (batch-norm statistics).
    Buffer(&'m Var),
    /// A buffer that holds a count (batch norm's `num_batches_tracked`):
    /// an f32 scalar in memory, an integer in checkpoints ([`Members::count`]).
    Count(&'m Var),
    /// A sub-module, whose own members are named under this one's name.
    Child(&'m dyn Module),
}

/// What [`Module::visit`] reports to: call one method per member, in a fixed
/// order (the order of the state dict).
pub struct Members<'v> {
    report: &'v mut dyn FnMut(&str, Member<'_>),
}

impl<'v> Members<'v> {
    /// Members reported to `report(name, member)`.
    pub fn new(report: &'v mut dyn FnMut(&str, Member<'_>)) -> Members<'v> {
        Members { report }
    }

    /// A trainable parameter named `name`.
    pub fn parameter(&mut self, name: &str, var: &Var) {
        (self.report)(name, Member::Parameter(var));
    }

    /// A buffer (saved, not trained) named `name`.
    pub fn buffer(&mut self, name: &str, var: &Var) {
        (self.report)(name, Member::Buffer(var));
    }

    /// A weighted layer's `weight` and, if it has one, `bias` (PyTorch's
    /// names for `Linear` and `Conv2d`).
    pub fn weight_and_bias(&mut self, weight: &Var, bias: Option<&Var>) {
        self.parameter("weight", weight);
        if let Some(bias) = bias {
            self.parameter("bias", bias);
        }
    }

    /// A buffer named `name` that holds a count, as a scalar (shape `[]`)
    /// of non-negative whole numbers: PyTorch's `num_batches_tracked`.
    /// It is one of [`Module::buffers`], and checkpoints store it as an I64
    /// scalar (PyTorch's dtype) rather than F32. The value lives in an f32
    /// `Var`, exact up to 2²⁴ = 16 777 216; a checkpoint holding a larger
    /// count, or saving a value that is not a whole number in that range,
    /// is refused ([`crate::checkpoint::CheckpointError::Count`]).
    pub fn count(&mut self, name: &str, var: &Var) {
        (self.report)(name, Member::Count(var));
    }

    /// A sub-module: its members are named `name.<theirs>`.
    pub fn child(&mut self, name: &str, module: &dyn Module) {
        (self.report)(name, Member::Child(module));
    }

    /// A list of sub-modules, named `name.0`, `name.1`, … (PyTorch's
    /// `nn.ModuleList` and `nn.Sequential` naming).
    pub fn children<M: Module>(&mut self, name: &str, modules: &[M]) {
        for (i, module) in modules.iter().enumerate() {
            self.child(&format!("{name}.{i}"), module);
        }
    }
}

/// Every member under `module` with its full dotted name, depth first in
/// visiting order (a child is reported, then its own members).
pub fn walk(module: &dyn Module, visit: &mut dyn FnMut(&str, Member<'_>)) {
    walk_under(&|m| module.visit(m), "", visit);
}

/// [`walk`] from a module's `visit` (so the trait's defaults need no `&dyn`).
fn walk_under(
    visit_members: &dyn Fn(&mut Members),
    prefix: &str,
    visit: &mut dyn FnMut(&str, Member<'_>),
) {
    visit_members(&mut Members::new(&mut |name, member| {
        let path = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        };
        match member {
            Member::Child(child) => {
                visit(&path, Member::Child(child));
                walk_under(&|m| child.visit(m), &path, visit);
            }
            leaf => visit(&path, leaf),
        }
    }));
}

/// The variables under a module that `pick` selects, with their full names.
fn collect(
    visit_members: &dyn Fn(&mut Members),
    pick: impl for<'m> Fn(Member<'m>) -> Option<&'m Var>,
) -> Vec<Named> {
    let mut out = Vec::new();
    walk_under(visit_members, "", &mut |name, member| {
        if let Some(var) = pick(member) {
            out.push(Named::new(name, var));
        }
    });
    out
}

/// Calls `f` on each direct sub-module with its name.
fn for_each_child(visit_members: &dyn Fn(&mut Members), f: &mut dyn FnMut(&str, &dyn Module)) {
    visit_members(&mut Members::new(&mut |name, member| {
        if let Member::Child(child) = member {
            f(name, child);
        }
    }));
}

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

/// Where in a run the next training forwards happen: the run's seed and the
/// step's index. Random layers (dropout) draw their masks as a pure function
/// of this and their own path in the model, so a resumed run, or one on
/// another thread count, draws the same masks ([`Module::set_step`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Step {
    /// The run's seed.
    pub seed: u64,
    /// The optimizer step about to be computed (0 for the first).
    pub index: u64,
    /// A hash of the path from the model to the module this reaches
    /// (maintained by [`Module::set_step`]'s default; 0 at the model).
    pub path: u64,
}

impl Step {
    /// Step `index` of a run seeded with `seed`, as the model sees it.
    pub fn new(seed: u64, index: u64) -> Step {
        Step {
            seed,
            index,
            path: 0,
        }
    }

    /// The same step as the child `name` sees it.
    pub fn child(self, name: &str) -> Step {
        // FNV-1a over the name, chained onto the parent's path: stable
        // across runs, platforms and Rust versions (std's hasher is not).
        let mut h = self.path ^ 0xcbf2_9ce4_8422_2325;
        for b in name.bytes().chain([b'.']) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        Step { path: h, ..self }
    }
}

/// A building block of a model: maps an input [`Var`] to an output `Var`,
/// and says what it holds with [`Module::visit`].
///
/// A model is a plain struct of layers: implement `forward` and `visit`
/// (one line per field) and every other method comes for free — parameter
/// and buffer names as PyTorch's `state_dict` gives them, train/eval reaching
/// every child, dropout's step, checkpoints, optimizers.
///
/// Modules take `&self` everywhere: parameters are `Var`s (shared handles
/// whose values optimizers update in place), and the little state a layer
/// changes while running (batch-norm statistics, the training flag) sits
/// behind interior mutability. So a model can be borrowed by the training
/// loop, the optimizer and a checkpoint writer at once.
///
/// ```
/// use ember_autograd::Var;
/// use ember_layers::{Activation, BatchNorm1d, LayerInit, Linear, Members, Module};
/// use ember_tensor::Tensor;
/// use rand::SeedableRng;
///
/// struct Net {
///     fc1: Linear,
///     bn: BatchNorm1d,
///     fc2: Linear,
/// }
///
/// impl Module for Net {
///     fn forward(&self, x: &Var) -> Var {
///         self.fc2.forward(&self.bn.forward(&self.fc1.forward(x)).relu())
///     }
///     fn visit(&self, m: &mut Members) {
///         m.child("fc1", &self.fc1);
///         m.child("bn", &self.bn);
///         m.child("fc2", &self.fc2);
///     }
/// }
///
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let net = Net {
///     fc1: Linear::with_init(4, 8, &LayerInit::before(Activation::Relu), &mut rng),
///     bn: BatchNorm1d::new(8),
///     fc2: Linear::new(8, 3, &mut rng),
/// };
/// let names: Vec<String> = net.state().into_iter().map(|p| p.name).collect();
/// assert_eq!(names, [
///     "fc1.weight", "fc1.bias", "bn.weight", "bn.bias", "fc2.weight", "fc2.bias",
///     "bn.running_mean", "bn.running_var", "bn.num_batches_tracked",
/// ]);
/// net.set_training(false); // reaches `bn`
/// let y = net.forward(&Var::constant(Tensor::ones(&[2, 4])));
/// assert_eq!(y.shape(), [2, 3]);
/// ```
pub trait Module {
    /// Runs the module on a batch.
    fn forward(&self, input: &Var) -> Var;

    /// `forward` followed by a ReLU. A layer that can do both in one pass
    /// over its output (`Conv2d`) does; the result is the same, bit for bit.
    /// [`crate::Sequential`] calls it for a layer whose next module is a
    /// ReLU; a model of its own can call it where it writes
    /// `layer.forward(x).relu()`.
    fn forward_relu(&self, input: &Var) -> Var {
        self.forward(input).relu()
    }

    /// `forward`, a ReLU, then max pooling over `kernel × kernel` windows
    /// moved by `stride`. A `Conv2d` does all three image by image while
    /// each is in cache, never storing its full-size output; the result is
    /// the same, bit for bit. [`crate::Sequential`] calls it for a layer
    /// followed by a ReLU and a [`crate::MaxPool2d`].
    fn forward_relu_max_pool2d(&self, input: &Var, kernel: usize, stride: usize) -> Var {
        self.forward_relu(input).max_pool2d(kernel, stride)
    }

    /// `forward`, a ReLU, then `dropout`. A `Linear` applies the dropout's
    /// mask in place to its rectified output and makes one backward pass
    /// for both; the result is the same, bit for bit (and the dropout
    /// draws the same mask). [`crate::Sequential`] calls it for a layer
    /// followed by a ReLU and a [`Dropout`].
    fn forward_relu_dropout(&self, input: &Var, dropout: &Dropout) -> Var {
        dropout.forward(&self.forward_relu(input))
    }

    /// This module as a [`Dropout`], if it is one: how [`crate::Sequential`]
    /// finds the dropout to hand to [`Module::forward_relu_dropout`].
    fn as_dropout(&self) -> Option<&Dropout> {
        None
    }

    /// Reports this module's own parameters and buffers and its sub-modules,
    /// each under its name, in a stable order. The default holds nothing
    /// (activations, pooling).
    fn visit(&self, _members: &mut Members) {}

    /// What kind of layer this is, for reports ([`crate::diagnostics`]).
    fn kind(&self) -> LayerKind {
        LayerKind::Other
    }

    /// The trainable parameters with their state-dict names, depth first.
    fn parameters(&self) -> Vec<Named> {
        collect(&|m| self.visit(m), |member| match member {
            Member::Parameter(var) => Some(var),
            _ => None,
        })
    }

    /// Non-trainable state saved with the model (batch-norm running
    /// statistics), counts ([`Members::count`]) included.
    fn buffers(&self) -> Vec<Named> {
        collect(&|m| self.visit(m), |member| match member {
            Member::Buffer(var) | Member::Count(var) => Some(var),
            _ => None,
        })
    }

    /// The buffers that hold counts ([`Members::count`]), which checkpoints
    /// store as integers.
    fn counts(&self) -> Vec<Named> {
        collect(&|m| self.visit(m), |member| match member {
            Member::Count(var) => Some(var),
            _ => None,
        })
    }

    /// Parameters then buffers: everything a checkpoint stores.
    fn state(&self) -> Vec<Named> {
        let mut all = self.parameters();
        all.extend(self.buffers());
        all
    }

    /// Switches between training (`true`) and evaluation (`false`) behaviour
    /// (dropout is active and batch-norm uses batch statistics only in
    /// training), here and in every sub-module.
    fn set_training(&self, training: bool) {
        for_each_child(&|m| self.visit(m), &mut |_, child| {
            child.set_training(training)
        });
    }

    /// Whether the model is in training mode: the answer of the first module
    /// that has a mode (dropout, batch-norm), depth first; `None` when no
    /// module's behaviour depends on it. Layers with a mode override it.
    ///
    /// ```
    /// use ember_layers::{Dropout, Module, ReLU, Sequential};
    ///
    /// let model = Sequential::new().add(ReLU).add(Dropout::new(0.5));
    /// assert_eq!(model.is_training(), Some(true));
    /// model.set_training(false);
    /// assert_eq!(model.is_training(), Some(false));
    /// assert_eq!(Sequential::new().add(ReLU).is_training(), None);
    /// ```
    fn is_training(&self) -> Option<bool> {
        let mut mode = None;
        for_each_child(&|m| self.visit(m), &mut |_, child| {
            if mode.is_none() {
                mode = child.is_training();
            }
        });
        mode
    }

    /// Tells the model which step of which run its next training forwards
    /// compute; dropout masks are a pure function of `(seed, index, path)`.
    /// Call it with [`Step::new`] before each step; the default passes each
    /// child the step with the child's name added to the path.
    fn set_step(&self, step: Step) {
        for_each_child(&|m| self.visit(m), &mut |name, child| {
            child.set_step(step.child(name));
        });
    }

    /// Which rows of the global batch the next forward passes see, in
    /// data-parallel training (each process gets a share of every batch).
    /// Layers that draw random numbers per row (dropout) draw them for the
    /// whole global batch and keep their rows, so a sharded run draws the
    /// masks a single process would. The default passes it to every child.
    fn set_batch_share(&self, share: BatchShare) {
        for_each_child(&|m| self.visit(m), &mut |_, child| {
            child.set_batch_share(share)
        });
    }

    /// A short description for summaries, like `Linear(784 → 512)`; the
    /// default is the type's name.
    fn describe(&self) -> String {
        let name = std::any::type_name::<Self>();
        let base = name.split('<').next().unwrap_or(name);
        base.rsplit("::").next().unwrap_or(base).to_string()
    }

    /// The number of trainable scalars.
    fn num_parameters(&self) -> usize {
        self.parameters()
            .iter()
            .map(|p| p.var.value_ref().numel())
            .sum()
    }
}
