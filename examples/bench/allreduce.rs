//! `bench allreduce`: what a distributed step spends exchanging the post's gradients.
//! Run under mpirun in a build with the `mpi` feature; rank 0 prints the figures.

use std::time::Instant;

use alexnet::{
    burn::{
        module::{Module, ModuleVisitor, Param},
        optim::GradientsParams,
        prelude::*,
    },
    model::AlexNetConfig,
    train::{
        config::{DistributedBackend, DistributedConfig},
        distributed::{ProcessGroup, finish},
    },
};
use anyhow::Result;

use crate::{AllreduceArgs, median};

/// A gradient of ones for every parameter, as the backward pass would hand over.
struct Ones(GradientsParams);

impl ModuleVisitor for Ones {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if param.val().is_require_grad() {
            self.0.register(param.id, param.val().inner().ones_like());
        }
    }
}

pub fn bench_allreduce(args: AllreduceArgs, reps: usize) -> Result<()> {
    let mut group = ProcessGroup::connect(&DistributedConfig {
        backend: DistributedBackend::Mpi,
        bucket_mib: args.bucket_mib,
        ..DistributedConfig::default()
    })?;
    let device =
        alexnet::train::device::parse_device(alexnet::train::device::DEFAULT_DEVICE)?.autodiff();
    let model = AlexNetConfig::seed(args.classes).init(&device)?;
    let parameters = model.num_trainable_params();
    let mut exchange = Vec::new();
    let mut mpi_alone = Vec::new();
    let mut buffer = vec![vec![1.0f32; parameters]];
    for rep in 0..reps + 2 {
        let mut ones = Ones(GradientsParams::new());
        model.visit(&mut ones);
        let started = Instant::now();
        let reduced = group.reduce_gradients(&model, ones.0, 1.0, 16)?;
        let exchanged = started.elapsed().as_secs_f64() * 1e3;
        assert!(!reduced.non_finite && reduced.images == 16 * group.size());
        let started = Instant::now();
        group.sum_f32(&mut buffer, "one buffer of every gradient")?;
        let alone = started.elapsed().as_secs_f64() * 1e3;
        if rep >= 2 {
            exchange.push(exchanged);
            mpi_alone.push(alone);
        }
    }
    let (rank, ranks) = (group.rank(), group.size());
    let buffers = group.buffer_lens();
    drop(group);
    finish(rank, Ok(()))?;
    if rank == 0 {
        let mib = parameters as f64 * 4.0 / (1u64 << 20) as f64;
        eprintln!(
            "# {parameters} parameters ({mib:.0} MiB of f32 gradients), {ranks} ranks, buffers of {} MiB; medians of {reps}",
            args.bucket_mib
        );
        eprintln!("# fused buffers (f32 values): {buffers:?}");
        println!(
            "RESULT allreduce-exchange-{ranks}ranks-ms {:.1}",
            median(exchange)
        );
        println!(
            "RESULT allreduce-mpi-alone-{ranks}ranks-ms {:.1}",
            median(mpi_alone)
        );
    }
    Ok(())
}
