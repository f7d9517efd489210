//! Why a distributed run could not start.

/// Why [`crate::World::init`] or the start-up checks failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The program was built without the `mpi` feature.
    NotBuilt,
    /// The process was not started by `mpiexec` (no process-manager
    /// variables such as `PMI_RANK` in its environment).
    NotLaunched,
    /// MPI was already initialised in this process.
    AlreadyInitialized,
    /// The ranks disagree on the model or the options.
    Mismatch(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NotBuilt => write!(
                f,
                "--distributed: this program was built without MPI; build it with \
                 `cargo build --release --features mpi --examples` (needs an MPI such as MPICH)"
            ),
            Error::NotLaunched => write!(
                f,
                "--distributed: not started by mpiexec; launch every rank with \
                 `mpiexec -n N <program> --distributed ...`"
            ),
            Error::AlreadyInitialized => write!(f, "--distributed: MPI is already initialised"),
            Error::Mismatch(what) => write!(f, "the ranks disagree: {what}"),
        }
    }
}

impl std::error::Error for Error {}

/// Whether a process manager (MPICH's Hydra, PMIx, Open MPI) started this
/// process: the documented variables `PMI_RANK`, `PMI_SIZE`, `PMIX_RANK`,
/// `OMPI_COMM_WORLD_SIZE`.
pub fn launched_by_mpiexec() -> bool {
    ["PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}
