//! What a forward pass did, for [`crate::diagnostics::InitReport`]: while a
//! probe is recording on this thread, weighted layers report their outputs
//! and activation modules their inputs. A user's `forward` is opaque, so
//! this is how a report sees inside any model, not only a `Sequential`.

use std::cell::RefCell;

use ember_autograd::Var;

use crate::Activation;

/// The outputs of weighted layers (by the layer's address) and the inputs of
/// activation modules (by `Var::id`), in the order the forward produced them.
#[derive(Default)]
pub(crate) struct Probe {
    pub(crate) outputs: Vec<(usize, Var)>,
    pub(crate) activations: Vec<(usize, Activation)>,
}

thread_local! {
    static RECORDING: RefCell<Option<Probe>> = const { RefCell::new(None) };
}

/// Runs `f` with a probe recording on this thread; returns what it saw.
pub(crate) fn recording<R>(f: impl FnOnce() -> R) -> (R, Probe) {
    let previous = RECORDING.with(|r| r.replace(Some(Probe::default())));
    let result = f();
    let probe = RECORDING.with(|r| r.replace(previous)).unwrap_or_default();
    (result, probe)
}

/// Whether a probe is recording on this thread: then layers run unfused,
/// so that the probe sees each pre-activation.
pub(crate) fn is_recording() -> bool {
    RECORDING.with(|r| r.borrow().is_some())
}

/// A weighted layer at `layer` produced `output`.
pub(crate) fn layer_output<T>(layer: &T, output: &Var) {
    RECORDING.with(|r| {
        if let Some(probe) = r.borrow_mut().as_mut() {
            probe
                .outputs
                .push((layer as *const T as *const () as usize, output.clone()));
        }
    });
}

/// An activation module applied `activation` to `input`.
pub(crate) fn activation_input(input: &Var, activation: Activation) {
    RECORDING.with(|r| {
        if let Some(probe) = r.borrow_mut().as_mut() {
            probe.activations.push((input.id(), activation));
        }
    });
}
