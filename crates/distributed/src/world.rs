//! The MPI world: ranks, the start-up agreement check, broadcasts, small
//! reductions. Built with the `mpi` feature.

use std::collections::HashMap;
use std::time::Instant;

use ember_autograd::Var;
use ember_layers::{Module, Named};
use ember_tensor::Tensor;
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::request::{Request, Scope};
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;
use mpi::Threading;

use crate::{launched_by_mpiexec, BucketPlan, CommStats, Error, Fingerprint};

/// This process's place among the ranks of a data-parallel run.
///
/// Made once per process by [`World::init`] (MPI is finalised when it is
/// dropped). Only the thread that made it calls MPI (`MPI_THREAD_FUNNELED`):
/// the thread pool computes, the calling thread communicates.
pub struct World {
    // Field order matters: the communicator goes before MPI is finalised.
    comm: SimpleCommunicator,
    _universe: Universe,
}

impl World {
    /// Joins the run `mpiexec` started.
    ///
    /// # Errors
    /// [`Error::NotLaunched`] outside `mpiexec`, [`Error::AlreadyInitialized`]
    /// if MPI was initialised before.
    pub fn init() -> Result<World, Error> {
        if !launched_by_mpiexec() {
            return Err(Error::NotLaunched);
        }
        let (universe, _threading) =
            mpi::initialize_with_threading(Threading::Funneled).ok_or(Error::AlreadyInitialized)?;
        Ok(World {
            comm: universe.world(),
            _universe: universe,
        })
    }

    /// This process's rank, `0..size`.
    pub fn rank(&self) -> usize {
        self.comm.rank() as usize
    }

    /// How many ranks.
    pub fn size(&self) -> usize {
        self.comm.size() as usize
    }

    /// Whether this is rank 0, the one that writes files.
    pub fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// Compares every rank's settings with rank 0's.
    ///
    /// # Errors
    /// [`Error::Mismatch`], the same on every rank, naming the first rank
    /// that differs and the first entry it differs in.
    pub fn check_agreement(&self, mine: &Fingerprint) -> Result<(), Error> {
        let mut bytes = mine.encode();
        let mut longest = 0u64;
        self.comm
            .all_reduce_into(&(bytes.len() as u64), &mut longest, SystemOperation::max());
        bytes.resize(longest as usize, 0);
        let mut all = vec![0u8; bytes.len() * self.size()];
        self.comm.all_gather_into(&bytes[..], &mut all[..]);
        let decode = |r: usize| {
            Fingerprint::decode(&all[r * bytes.len()..(r + 1) * bytes.len()]).unwrap_or_default()
        };
        let root = decode(0);
        for r in 1..self.size() {
            if let Some(what) = decode(r).difference(&root, &format!("rank {r}"), "rank 0") {
                return Err(Error::Mismatch(what));
            }
        }
        Ok(())
    }

    /// Overwrites every parameter and buffer of `model` with rank 0's, so all
    /// ranks start from the same bits.
    pub fn broadcast_state(&self, model: &dyn Module) {
        let root = self.comm.process_at_rank(0);
        for Named { var, .. } in model.state() {
            var.update(|value, _| root.broadcast_into(value.data_mut()));
        }
    }

    /// The sum over ranks of `x`.
    pub fn sum(&self, x: u64) -> u64 {
        let mut total = 0u64;
        self.comm
            .all_reduce_into(&x, &mut total, SystemOperation::sum());
        total
    }

    /// The largest `x` over ranks.
    pub fn max(&self, x: f64) -> f64 {
        let mut most = 0f64;
        self.comm
            .all_reduce_into(&x, &mut most, SystemOperation::max());
        most
    }

    /// Waits until every rank gets here.
    pub fn barrier(&self) {
        self.comm.barrier();
    }

    /// Ends every rank of the run with `code` (`MPI_Abort`): for a rank that
    /// must stop while the others may be waiting on it.
    pub fn abort(&self, code: i32) -> ! {
        self.comm.abort(code)
    }

    /// A gradient averager over `model`'s parameters, with the default
    /// bucket caps ([`FIRST_BUCKET_ELEMENTS`], [`BUCKET_ELEMENTS`]).
    pub fn averager(&self, model: &dyn Module) -> GradientAverager<'_> {
        GradientAverager::new(self, model, FIRST_BUCKET_ELEMENTS, BUCKET_ELEMENTS)
    }
}

/// The first bucket's cap: 64 Ki gradients (256 KiB), so the last layers'
/// gradients leave while backward has barely started.
pub const FIRST_BUCKET_ELEMENTS: usize = 64 * 1024;

/// The other buckets' cap: 256 Ki gradients (1 MiB). Large enough that the
/// per-message latency (µs in shared memory, ~50 µs over TCP) is small next to
/// its transfer (≈ 0.8 ms at 10 Gb/s), small enough that the classic MLP
/// (2.7 MB) is four messages, not one; PyTorch's 25 MiB would make any
/// MNIST model one bucket that can only start after the whole backward.
pub const BUCKET_ELEMENTS: usize = 256 * 1024;

struct Bucket {
    send: Vec<f32>,
    recv: Vec<f32>,
    missing: usize,
}

/// Averages gradients over the ranks, bucket by bucket, overlapping the
/// all-reduces with the backward pass (PyTorch DDP's reducer).
///
/// [`GradientAverager::backward`] replaces `loss.backward()`: it runs
/// backward with an observer ([`Var::backward_observed`]); each parameter's
/// gradient is copied, weighted by this rank's share of the global batch,
/// into its bucket as soon as it is final; a bucket whose gradients are all
/// in starts its non-blocking all-reduce (`MPI_Iallreduce`), strictly in
/// bucket order so every rank issues the same collectives in the same
/// order. After backward it waits for the rest and writes the global-batch
/// mean back into each gradient: `optimizer.step()` then runs unchanged.
pub struct GradientAverager<'w> {
    world: &'w World,
    params: Vec<Var>,
    index: HashMap<usize, usize>,
    plan: BucketPlan,
    buckets: Vec<Bucket>,
    stats: CommStats,
}

impl<'w> GradientAverager<'w> {
    /// An averager over `model`'s parameters with these bucket caps (in
    /// elements).
    pub fn new(
        world: &'w World,
        model: &dyn Module,
        first_cap: usize,
        cap: usize,
    ) -> GradientAverager<'w> {
        let params: Vec<Var> = model.parameters().into_iter().map(|p| p.var).collect();
        let sizes: Vec<usize> = params.iter().map(|v| v.value_ref().numel()).collect();
        let plan = BucketPlan::new(&sizes, first_cap, cap);
        let buckets = plan
            .bucket_lens()
            .into_iter()
            .map(|n| Bucket {
                send: vec![0.0; n],
                recv: vec![0.0; n],
                missing: 0,
            })
            .collect();
        let index = params
            .iter()
            .enumerate()
            .map(|(i, v)| (v.id(), i))
            .collect();
        GradientAverager {
            world,
            params,
            index,
            plan,
            buckets,
            stats: CommStats::default(),
        }
    }

    /// The bucket plan in use.
    pub fn plan(&self) -> &BucketPlan {
        &self.plan
    }

    /// The time spent so far.
    pub fn stats(&self) -> CommStats {
        self.stats
    }

    /// Runs backward from `loss` (`None`: this rank has no samples in this
    /// batch and contributes zeros) and leaves in every parameter's gradient
    /// the mean over the global batch: Σ_ranks (local/global) · gradient_rank,
    /// which is the sum divided by the world size when the shares are equal.
    /// `local` is this rank's sample count, `global` the batch's.
    ///
    /// Call it on every rank for every batch, like any collective.
    pub fn backward(&mut self, loss: Option<&Var>, local: usize, global: usize) {
        let started = Instant::now();
        let weight = local as f32;
        let inv = 1.0 / global.max(1) as f32;
        for (b, bucket) in self.buckets.iter_mut().enumerate() {
            bucket.missing = self.plan.members(b).len();
        }
        let comm = &self.world.comm;
        let (plan, index, params) = (&self.plan, &self.index, &self.params);
        let mut exposed = 0.0;
        mpi::request::scope(|scope| {
            let mut open: Vec<Option<&mut Bucket>> = self.buckets.iter_mut().map(Some).collect();
            let mut pending = Vec::with_capacity(open.len());
            let mut next = 0;
            let mut reported = vec![false; params.len()];
            if let Some(loss) = loss {
                loss.backward_observed(&mut |leaf: &Var| {
                    let Some(&p) = index.get(&leaf.id()) else {
                        return;
                    };
                    reported[p] = true;
                    fill(&mut open, plan, p, leaf.grad().as_ref(), weight);
                    start_ready(comm, scope, &mut open, &mut pending, &mut next);
                    // MPICH moves non-blocking collectives along only inside
                    // MPI calls: testing is what makes them overlap.
                    progress(&mut pending);
                });
            }
            // Parameters backward never reached contribute zeros.
            for (p, _) in reported.iter().enumerate().filter(|(_, &done)| !done) {
                fill(&mut open, plan, p, None, weight);
            }
            start_ready(comm, scope, &mut open, &mut pending, &mut next);
            let waiting = Instant::now();
            for request in pending.into_iter().flatten() {
                request.wait();
            }
            exposed = waiting.elapsed().as_secs_f64();
        });
        for (p, param) in self.params.iter().enumerate() {
            let slot = self.plan.slot(p);
            let sum = &self.buckets[slot.bucket].recv[slot.offset..slot.offset + slot.len];
            if param.grad().is_none() {
                param.set_grad(Some(Tensor::zeros(&param.shape())));
            }
            param.update_grad(|g| {
                for (x, s) in g.data_mut().iter_mut().zip(sum) {
                    *x = s * inv;
                }
            });
        }
        self.stats.steps += 1;
        self.stats.exposed_seconds += exposed;
        self.stats.backward_seconds += started.elapsed().as_secs_f64() - exposed;
    }

    /// Seconds one blocking all-reduce of all the gradients takes (the
    /// fastest of `repeats`, so a descheduled rank does not count): what a
    /// step would pay if nothing overlapped.
    pub fn time_blocking_allreduce(&mut self, repeats: usize) -> f64 {
        let mut fastest = f64::INFINITY;
        for _ in 0..repeats.max(1) {
            self.world.barrier();
            let started = Instant::now();
            for bucket in &mut self.buckets {
                self.world.comm.all_reduce_into(
                    &bucket.send[..],
                    &mut bucket.recv[..],
                    SystemOperation::sum(),
                );
            }
            fastest = fastest.min(started.elapsed().as_secs_f64());
        }
        // Every rank reports the same figure.
        self.world.max(fastest)
    }
}

/// Copies parameter `p`'s gradient (zeros if `None`) times `weight` into its
/// bucket.
fn fill(
    open: &mut [Option<&mut Bucket>],
    plan: &BucketPlan,
    p: usize,
    grad: Option<&Tensor>,
    weight: f32,
) {
    let slot = plan.slot(p);
    let bucket = open[slot.bucket]
        .as_mut()
        .expect("a gradient arrived for a bucket already sent");
    let dest = &mut bucket.send[slot.offset..slot.offset + slot.len];
    match grad.map(|g| g.contiguous()) {
        Some(g) => {
            let src = g.as_slice().expect("contiguous");
            for (d, s) in dest.iter_mut().zip(src) {
                *d = s * weight;
            }
        }
        None => dest.fill(0.0),
    }
    bucket.missing -= 1;
}

/// Starts the all-reduce of every complete bucket, in bucket order: a bucket
/// waits for the ones before it, so every rank issues the same sequence.
fn start_ready<'a, S: Scope<'a> + Copy>(
    comm: &SimpleCommunicator,
    scope: S,
    open: &mut [Option<&'a mut Bucket>],
    pending: &mut Vec<Option<Request<'a, [f32], S>>>,
    next: &mut usize,
) {
    while *next < open.len() && open[*next].as_ref().is_some_and(|b| b.missing == 0) {
        let bucket = open[*next].take().expect("checked above");
        let Bucket { send, recv, .. } = bucket;
        let send: &'a [f32] = send;
        let recv: &'a mut [f32] = recv;
        pending.push(Some(comm.immediate_all_reduce_into(
            scope,
            send,
            recv,
            SystemOperation::sum(),
        )));
        *next += 1;
    }
}

/// Lets MPI progress the outstanding all-reduces (`MPI_Test` on each).
fn progress<'a, S: Scope<'a>>(pending: &mut [Option<Request<'a, [f32], S>>]) {
    for slot in pending.iter_mut() {
        if let Some(request) = slot.take() {
            if let Err(still) = request.test() {
                *slot = Some(still);
            }
        }
    }
}
