//! # ember-distributed: data-parallel training over MPI
//!
//! Every rank (process) holds the whole model, trains on its share of every
//! global batch, and averages the gradients with the others before each
//! optimizer step, so all ranks take the same step and keep identical
//! parameters (PyTorch's DistributedDataParallel, on MPI).
//!
//! - [`World`]: this rank and the run's size; [`World::check_agreement`]
//!   refuses ranks whose model or options differ (a [`Fingerprint`] each);
//!   [`World::broadcast_state`] gives everyone rank 0's parameters.
//! - [`GradientAverager`]: `averager.backward(Some(&loss), local, global)`
//!   instead of `loss.backward()`; gradients travel in buckets
//!   ([`BucketPlan`]) whose non-blocking all-reduces start while backward
//!   is still running.
//! - Sharding lives with the batches: `ember_mnist::BatchConfig::shard`.
//! - [`parameters_sha256`]: one hash of a model's parameters, to prove the
//!   ranks agree bit for bit.
//!
//! The MPI transport needs the `mpi` feature (rsmpi over the system's MPI,
//! for example Debian's `mpich libmpich-dev libclang-dev`). Without it the
//! crate builds anyway: the plan, fingerprint and hash are plain Rust, and
//! [`World::init`] returns [`Error::NotBuilt`].
//!
//! ```no_run
//! use ember_distributed::World;
//! # fn main() -> Result<(), ember_distributed::Error> {
//! let world = World::init()?; // under `mpiexec -n N`
//! println!("rank {} of {}", world.rank(), world.size());
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod error;
mod fingerprint;
mod plan;
mod stats;
#[cfg(not(feature = "mpi"))]
mod stub;
#[cfg(feature = "mpi")]
mod world;

pub use error::{launched_by_mpiexec, Error};
pub use fingerprint::{parameters_sha256, Fingerprint};
pub use plan::{BucketPlan, Slot};
pub use stats::CommStats;
#[cfg(not(feature = "mpi"))]
pub use stub::{GradientAverager, World};
#[cfg(feature = "mpi")]
pub use world::{GradientAverager, World, BUCKET_ELEMENTS, FIRST_BUCKET_ELEMENTS};

/// Whether this build can run distributed (the `mpi` feature).
pub const HAS_MPI: bool = cfg!(feature = "mpi");
