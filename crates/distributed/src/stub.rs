//! The world without the `mpi` feature: [`World::init`] says so, and no
//! value of these types can exist, so code written for MPI still compiles.

use std::convert::Infallible;

use ember_autograd::Var;
use ember_layers::Module;

use crate::{BucketPlan, CommStats, Error, Fingerprint};

/// This process's place among the ranks (built without MPI: never made).
pub struct World {
    never: Infallible,
}

impl World {
    /// Always [`Error::NotBuilt`]: this build has no MPI.
    ///
    /// # Errors
    /// Always.
    pub fn init() -> Result<World, Error> {
        Err(Error::NotBuilt)
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        match self.never {}
    }

    /// How many ranks.
    pub fn size(&self) -> usize {
        match self.never {}
    }

    /// Whether this is rank 0.
    pub fn is_root(&self) -> bool {
        match self.never {}
    }

    /// Compares every rank's settings with rank 0's.
    ///
    /// # Errors
    /// Never returns.
    pub fn check_agreement(&self, _mine: &Fingerprint) -> Result<(), Error> {
        match self.never {}
    }

    /// Overwrites the model's state with rank 0's.
    pub fn broadcast_state(&self, _model: &dyn Module) {
        match self.never {}
    }

    /// The sum over ranks.
    pub fn sum(&self, _x: u64) -> u64 {
        match self.never {}
    }

    /// The largest value over ranks.
    pub fn max(&self, _x: f64) -> f64 {
        match self.never {}
    }

    /// Waits for every rank.
    pub fn barrier(&self) {
        match self.never {}
    }

    /// Ends every rank.
    pub fn abort(&self, _code: i32) -> ! {
        match self.never {}
    }

    /// A gradient averager.
    pub fn averager(&self, _model: &dyn Module) -> GradientAverager<'_> {
        match self.never {}
    }
}

/// Averages gradients over the ranks (built without MPI: never made).
pub struct GradientAverager<'w> {
    world: &'w World,
}

impl GradientAverager<'_> {
    /// The bucket plan in use.
    pub fn plan(&self) -> &BucketPlan {
        match self.world.never {}
    }

    /// The time spent so far.
    pub fn stats(&self) -> CommStats {
        match self.world.never {}
    }

    /// Backward, then the global-batch mean of the gradients.
    pub fn backward(&mut self, _loss: Option<&Var>, _local: usize, _global: usize) {
        match self.world.never {}
    }

    /// Seconds of one blocking all-reduce of all the gradients (fastest of `repeats`).
    pub fn time_blocking_allreduce(&mut self, _repeats: usize) -> f64 {
        match self.world.never {}
    }
}
