//! [`ProcessGroup`]: what the training loop exchanges between ranks, on top of a
//! [`Collective`].

use std::{collections::HashMap, ops::Range};

use alexnet_model::AlexNet;
use burn::{module::Module, optim::GradientsParams};

use super::{
    Collective, DistributedBackend, DistributedConfig, Local, connect_mpi,
    fused::{Packer, Unpacker, ValueReader, ValueWriter},
};
use crate::{data::share_of, error::Result, metrics::Accumulator};

/// The ranks of a run and what the training loop exchanges between them.
pub struct ProcessGroup {
    collective: Box<dyn Collective>,
    /// Target length of a fused gradient buffer, in `f32`s.
    bucket_len: usize,
    /// The fused buffers, kept between steps so a step allocates none.
    buckets: Vec<Vec<f32>>,
}

impl std::fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessGroup")
            .field("rank", &self.rank())
            .field("size", &self.size())
            .finish()
    }
}

/// What [`ProcessGroup::reduce_gradients`] returns.
pub struct ReducedGradients {
    /// The gradient of the mean loss over the global batch.
    pub grads: GradientsParams,
    /// The mean loss over the global batch.
    pub loss: f32,
    /// Images in the global batch.
    pub images: usize,
    /// Whether any summed gradient or the loss is NaN or infinite.
    pub non_finite: bool,
}

impl ProcessGroup {
    /// A group of one process.
    pub fn local() -> Self {
        Self::new(Box::new(Local), DistributedConfig::default().bucket_mib)
    }

    /// A group over `collective`, fusing gradients into buffers of about `bucket_mib` MiB.
    pub fn new(collective: Box<dyn Collective>, bucket_mib: usize) -> Self {
        Self {
            collective,
            bucket_len: (bucket_mib.max(1) << 20) / std::mem::size_of::<f32>(),
            buckets: Vec::new(),
        }
    }

    /// The group `config` asks for: one process, or this process's place among the
    /// ranks `mpirun` started. `mpi` in a build without the feature, or outside
    /// `mpirun`, is an error naming the fix.
    pub fn connect(config: &DistributedConfig) -> Result<Self> {
        config.validate()?;
        match config.backend {
            DistributedBackend::None => Ok(Self::local()),
            DistributedBackend::Mpi => Ok(Self::new(connect_mpi(config)?, config.bucket_mib)),
        }
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.collective.rank()
    }

    /// The number of ranks.
    pub fn size(&self) -> usize {
        self.collective.size()
    }

    /// Whether this is rank 0, the one that writes the run's files.
    pub fn is_first(&self) -> bool {
        self.rank() == 0
    }

    /// This rank's contiguous share of `n` items.
    pub fn share(&self, n: usize) -> Range<usize> {
        share_of(n, self.rank(), self.size())
    }

    /// The lengths of the fused buffers of the last gradient exchange (the last one holds
    /// the loss and the image count too).
    pub fn buffer_lens(&self) -> Vec<usize> {
        self.buckets.iter().map(Vec::len).collect()
    }

    /// Waits until every rank has arrived here.
    pub fn barrier(&mut self, what: &str) -> Result<()> {
        self.collective.all_reduce_f64(&mut [0.0], what)
    }

    /// Each rank's `value`, in rank order.
    pub fn gather(&mut self, value: f64, what: &str) -> Result<Vec<f64>> {
        let mut values = vec![0.0; self.size()];
        values[self.rank()] = value;
        self.collective.all_reduce_f64(&mut values, what)?;
        Ok(values)
    }

    /// Sums `buffers` over the ranks, element by element, in place.
    pub fn sum_f32(&mut self, buffers: &mut [Vec<f32>], what: &str) -> Result<()> {
        self.collective.all_reduce_f32(buffers, what)
    }

    /// Sums the accumulators of every rank (each counted its own images).
    pub fn sum_accumulator(&mut self, accumulator: &mut Accumulator, what: &str) -> Result<()> {
        if self.size() == 1 {
            return Ok(());
        }
        // Every rank evaluates the same model, so per-class counts have one length.
        let mut values = vec![
            accumulator.count as f64,
            accumulator.loss_sum,
            accumulator.top1 as f64,
            accumulator.top5 as f64,
        ];
        for &(correct, total) in &accumulator.per_class {
            values.extend([correct as f64, total as f64]);
        }
        self.collective.all_reduce_f64(&mut values, what)?;
        for (class, pair) in accumulator
            .per_class
            .iter_mut()
            .zip(values[4..].chunks_exact(2))
        {
            *class = (pair[0] as u64, pair[1] as u64);
        }
        // Counts below 2^53 are exact in f64.
        accumulator.count = values[0] as usize;
        accumulator.loss_sum = values[1];
        accumulator.top1 = values[2] as usize;
        accumulator.top5 = values[3] as usize;
        Ok(())
    }

    /// Sums `grads` (the gradient of this rank's mean loss `loss` over its `images`
    /// images) over the ranks, weighted by each rank's images, in a few fused buffers:
    /// the gradient of the mean loss over the global batch on every rank. The loss and the
    /// image count travel in the last buffer, so a step makes one exchange.
    pub fn reduce_gradients(
        &mut self,
        model: &AlexNet,
        mut grads: GradientsParams,
        loss: f32,
        images: usize,
    ) -> Result<ReducedGradients> {
        let weight = images as f32;
        let mut buckets = std::mem::take(&mut self.buckets);
        for bucket in &mut buckets {
            bucket.clear();
        }
        let mut packer = Packer {
            grads: &mut grads,
            buckets,
            slots: HashMap::new(),
            bucket_len: self.bucket_len,
            weight,
            error: None,
        };
        model.visit(&mut packer);
        let Packer {
            mut buckets,
            slots,
            error,
            ..
        } = packer;
        if let Some(error) = error {
            return Err(error);
        }
        if buckets.is_empty() {
            buckets.push(Vec::new());
        }
        buckets.truncate(slots.values().map(|s| s.bucket + 1).max().unwrap_or(1));
        if let Some(last) = buckets.last_mut() {
            last.extend([loss * weight, weight]);
        }
        self.collective
            .all_reduce_f32(&mut buckets, "the gradient all-reduce")?;
        let (loss_sum, total) = match buckets.last_mut() {
            Some(last) if last.len() >= 2 => {
                let total = last.pop().unwrap_or(0.0);
                let loss_sum = last.pop().unwrap_or(f32::NAN);
                (loss_sum, total)
            }
            _ => (f32::NAN, 0.0),
        };
        let scale = 1.0 / total;
        let non_finite =
            !(loss_sum.is_finite() && buckets.iter().all(|b| b.iter().all(|x| x.is_finite())));
        let mut unpacker = Unpacker {
            buckets: &buckets,
            slots: &slots,
            scale,
            out: GradientsParams::new(),
        };
        model.visit(&mut unpacker);
        let grads = unpacker.out;
        self.buckets = buckets;
        Ok(ReducedGradients {
            grads,
            loss: loss_sum * scale,
            images: total as usize,
            non_finite,
        })
    }

    /// Rank 0's parameters and BatchNorm statistics on every rank. BatchNorm statistics
    /// are first committed on every rank (Burn keeps a thread's last update pending), so
    /// that no rank's own pending update later replaces rank 0's.
    pub fn broadcast_model(&mut self, model: AlexNet) -> Result<AlexNet> {
        if self.size() == 1 {
            return Ok(model);
        }
        // `valid()` commits every pending running-statistics update (they share their
        // state with `model`).
        drop(model.valid());
        let mut reader = ValueReader {
            values: Vec::new(),
            error: None,
        };
        model.visit(&mut reader);
        if let Some(error) = reader.error {
            return Err(error);
        }
        let mut buffers = vec![if self.is_first() {
            reader.values
        } else {
            // A sum of zeros and rank 0's values is rank 0's values, exactly.
            vec![0.0; reader.values.len()]
        }];
        self.collective
            .all_reduce_f32(&mut buffers, "the broadcast of rank 0's parameters")?;
        let mut writer = ValueWriter {
            values: &buffers[0],
            offset: 0,
        };
        Ok(model.map(&mut writer))
    }
}
