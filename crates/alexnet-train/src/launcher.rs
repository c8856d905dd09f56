//! What an MPI launcher tells a process through its environment, read before MPI is
//! initialized (by the distributed module, and by the fault-injection pause points that
//! pause one rank).

/// This process's rank as an MPI launcher (Open MPI's, MPICH's, PMIx) told it, before
/// MPI is initialized; `None` outside a launcher.
pub fn launcher_rank() -> Option<usize> {
    ["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"]
        .iter()
        .find_map(|name| std::env::var(name).ok()?.parse().ok())
}
