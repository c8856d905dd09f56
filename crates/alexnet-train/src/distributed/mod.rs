//! Data-parallel training over several processes (ranks): each rank computes the
//! gradients of its contiguous share of every global batch, the gradients are summed
//! across ranks in a few fused buffers, and every rank takes the same optimizer step.
//!
//! The exchange itself sits behind [`Collective`], so that a transport other than MPI
//! (NCCL for GPU devices, see docs/design.md) can be added without touching the training
//! loop. [`ProcessGroup`] builds what the loop needs on top of it: batch shares, the
//! gradient all-reduce, rank 0's parameters and BatchNorm statistics on every rank, and
//! summed metrics.
//!
//! ```no_run
//! use alexnet_train::{config::DistributedConfig, distributed::ProcessGroup};
//!
//! // One process: a group of size 1 whose exchanges do nothing.
//! let group = ProcessGroup::connect(&DistributedConfig::default())?;
//! assert_eq!((group.rank(), group.size()), (0, 1));
//! assert_eq!(group.share(9), 0..9);
//! # Ok::<(), alexnet_train::TrainError>(())
//! ```

#[cfg(feature = "mpi")]
mod mpi;

use std::{collections::HashMap, ops::Range};

use alexnet_model::AlexNet;
use burn::{
    module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId},
    optim::GradientsParams,
    prelude::*,
};

use crate::{
    config::{DistributedBackend, DistributedConfig},
    error::{Result, TrainError, invalid},
    metrics::Accumulator,
};

/// The exchanges data-parallel training needs between ranks. Every rank calls the same
/// methods in the same order with buffers of the same lengths.
///
/// An implementation that cannot complete an exchange because a rank died or hangs ends
/// the job on every rank within its time limit, naming the rank; it does not return.
pub trait Collective {
    /// This process's rank, from 0.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// Replaces every buffer by its element-wise sum over the ranks. `what` names the
    /// exchange in a time-out message.
    fn all_reduce_f32(&mut self, buffers: &mut [Vec<f32>], what: &str) -> Result<()>;
    /// [`Collective::all_reduce_f32`] for a few `f64` values (counts and sums).
    fn all_reduce_f64(&mut self, values: &mut [f64], what: &str) -> Result<()>;
    /// Ends the job on every rank with `code`, after this rank failed.
    fn abort(&self, code: i32) -> !;
}

/// One process: every exchange is the identity.
#[derive(Debug, Default, Clone, Copy)]
pub struct Local;

impl Collective for Local {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn all_reduce_f32(&mut self, _buffers: &mut [Vec<f32>], _what: &str) -> Result<()> {
        Ok(())
    }

    fn all_reduce_f64(&mut self, _values: &mut [f64], _what: &str) -> Result<()> {
        Ok(())
    }

    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// The contiguous share of `n` items that part `part` of `parts` takes: the first
/// `n % parts` parts take one more. The shares tile `0..n` in order, so a global batch
/// split this way is the single-process batch.
pub fn share_of(n: usize, part: usize, parts: usize) -> Range<usize> {
    let parts = parts.max(1);
    let base = n / parts;
    let extra = n % parts;
    let start = part * base + part.min(extra);
    start..start + base + usize::from(part < extra)
}

/// Where one parameter's gradient sits in the fused buffers.
struct Slot {
    bucket: usize,
    offset: usize,
    dims: Vec<usize>,
    device: Device,
}

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

    /// Ends the job on every rank (this rank failed).
    pub fn abort(&self, code: i32) -> ! {
        self.collective.abort(code)
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

    /// Sums `values` over the ranks, in place.
    pub fn sum_f64(&mut self, values: &mut [f64], what: &str) -> Result<()> {
        self.collective.all_reduce_f64(values, what)
    }

    /// Sums the accumulators of every rank (each counted its own images).
    pub fn sum_accumulator(&mut self, accumulator: &mut Accumulator, what: &str) -> Result<()> {
        if self.size() == 1 {
            return Ok(());
        }
        let mut values = [
            accumulator.count as f64,
            accumulator.loss_sum,
            accumulator.top1 as f64,
            accumulator.top5 as f64,
        ];
        self.collective.all_reduce_f64(&mut values, what)?;
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

/// Ends this rank's part of a distributed job (one process: returns `result`). After a
/// success MPI is finalized; a failure is printed as one `error: rank N: …` line and
/// ends the job on every rank at once (`MPI_Abort`), rather than leaving the others to
/// wait for this rank until their time limit.
pub fn finish<T>(rank: usize, result: Result<T>) -> Result<T> {
    #[cfg(feature = "mpi")]
    match &result {
        Ok(_) => mpi::finish(),
        Err(error) => {
            let message = error.to_string();
            if message.starts_with("rank ") {
                eprintln!("error: {message}");
            } else {
                eprintln!("error: rank {rank}: {message}");
            }
            mpi::abort_job(1);
        }
    }
    let _ = rank;
    result
}

/// This process's rank as an MPI launcher (Open MPI's, MPICH's, PMIx) told it, before
/// MPI is initialized; `None` outside a launcher.
pub fn launcher_rank() -> Option<usize> {
    ["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"]
        .iter()
        .find_map(|name| std::env::var(name).ok()?.parse().ok())
}

#[cfg(feature = "mpi")]
fn connect_mpi(config: &DistributedConfig) -> Result<Box<dyn Collective>> {
    if launcher_rank().is_none() {
        return Err(invalid(
            "--distributed",
            "`mpi` runs one process per rank, started by mpirun: mpirun -np N target/release/examples/train_caltech --distributed mpi ...",
        ));
    }
    Ok(Box::new(mpi::MpiCollective::init(
        std::time::Duration::from_secs_f64(config.timeout_secs),
    )?))
}

#[cfg(not(feature = "mpi"))]
fn connect_mpi(_config: &DistributedConfig) -> Result<Box<dyn Collective>> {
    Err(invalid(
        "--distributed",
        "`mpi` needs a build with the `mpi` feature: cargo build --release --features mpi --example train_caltech (Open MPI installed: apt-get install libopenmpi-dev openmpi-bin libclang-dev)",
    ))
}

/// Copies each parameter's gradient, times `weight`, into the fused buffers.
struct Packer<'a> {
    grads: &'a mut GradientsParams,
    buckets: Vec<Vec<f32>>,
    slots: HashMap<ParamId, Slot>,
    bucket_len: usize,
    weight: f32,
    error: Option<TrainError>,
}

impl ModuleVisitor for Packer<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.error.is_some() {
            return;
        }
        let Some(grad) = self.grads.remove::<D>(param.id) else {
            return;
        };
        let dims = grad.dims().to_vec();
        let device = grad.device();
        let data = match grad.try_into_data_as::<f32>() {
            Ok(data) => data,
            Err(source) => {
                self.error = Some(TrainError::TensorRead {
                    what: "a gradient",
                    source,
                });
                return;
            }
        };
        let values = match data.as_slice::<f32>() {
            Ok(values) => values,
            Err(error) => {
                self.error = Some(TrainError::TensorRead {
                    what: "a gradient",
                    source: error.into(),
                });
                return;
            }
        };
        // A new buffer once the current one is full; a large parameter fills one alone.
        let open = self.buckets.iter().rposition(|b| !b.is_empty());
        let bucket = match open {
            Some(k) if self.buckets[k].len() < self.bucket_len => k,
            Some(k) => k + 1,
            None => 0,
        };
        if self.buckets.len() <= bucket {
            self.buckets.push(Vec::new());
        }
        let buffer = &mut self.buckets[bucket];
        let offset = buffer.len();
        let weight = self.weight;
        buffer.extend(values.iter().map(|&x| x * weight));
        self.slots.insert(
            param.id,
            Slot {
                bucket,
                offset,
                dims,
                device,
            },
        );
    }
}

/// Builds the summed gradients, times `scale`, from the fused buffers.
struct Unpacker<'a> {
    buckets: &'a [Vec<f32>],
    slots: &'a HashMap<ParamId, Slot>,
    scale: f32,
    out: GradientsParams,
}

impl ModuleVisitor for Unpacker<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(slot) = self.slots.get(&param.id) else {
            return;
        };
        let len: usize = slot.dims.iter().product();
        let values: Vec<f32> = self.buckets[slot.bucket][slot.offset..slot.offset + len]
            .iter()
            .map(|&x| x * self.scale)
            .collect();
        let grad = Tensor::<D>::from_data(TensorData::new(values, slot.dims.clone()), &slot.device);
        self.out.register(param.id, grad);
    }
}

/// Reads every float value of a module (parameters and BatchNorm statistics) in visiting
/// order.
struct ValueReader {
    values: Vec<f32>,
    error: Option<TrainError>,
}

impl ModuleVisitor for ValueReader {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.error.is_some() {
            return;
        }
        match param.val().try_into_vec_as::<f32>() {
            Ok(values) => self.values.extend(values),
            Err(source) => {
                self.error = Some(TrainError::TensorRead {
                    what: "the parameters",
                    source,
                });
            }
        }
    }
}

/// Replaces every float value of a module by the next ones of `values`, in the order
/// [`ValueReader`] read them, keeping each parameter's id, device and gradient tracking.
struct ValueWriter<'a> {
    values: &'a [f32],
    offset: usize,
}

impl ModuleMapper for ValueWriter<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let values = self.values;
        let offset = &mut self.offset;
        param.map(|tensor| {
            let dims = tensor.dims();
            let len: usize = dims.iter().product();
            let device = tensor.device();
            let require_grad = tensor.is_require_grad();
            let data = TensorData::new(values[*offset..*offset + len].to_vec(), dims);
            *offset += len;
            Tensor::<D>::from_data(data, &device).set_require_grad(require_grad)
        })
    }
}

#[cfg(test)]
mod tests {
    use alexnet_model::AlexNetConfig;

    use super::*;

    #[test]
    fn shares_tile_the_batch_in_order() {
        for n in 0..40 {
            for parts in 1..6 {
                let shares: Vec<Range<usize>> =
                    (0..parts).map(|part| share_of(n, part, parts)).collect();
                let mut next = 0;
                for share in &shares {
                    assert_eq!(share.start, next, "{n} in {parts}: {shares:?}");
                    next = share.end;
                }
                assert_eq!(next, n);
                let lens: Vec<usize> = shares.iter().map(ExactSizeIterator::len).collect();
                assert!(lens.windows(2).all(|w| w[0] >= w[1] && w[0] - w[1] <= 1));
            }
        }
        assert_eq!(share_of(9, 0, 2), 0..5);
        assert_eq!(share_of(9, 1, 2), 5..9);
    }

    /// Rank 0 of two whose peer sends what `peer` makes of rank 0's buffers.
    struct FakePeer {
        peer: fn(&[f32]) -> Vec<f32>,
    }

    impl Collective for FakePeer {
        fn rank(&self) -> usize {
            0
        }

        fn size(&self) -> usize {
            2
        }

        fn all_reduce_f32(&mut self, buffers: &mut [Vec<f32>], _what: &str) -> Result<()> {
            for buffer in buffers {
                let theirs = (self.peer)(buffer);
                for (mine, theirs) in buffer.iter_mut().zip(theirs) {
                    *mine += theirs;
                }
            }
            Ok(())
        }

        fn all_reduce_f64(&mut self, _values: &mut [f64], _what: &str) -> Result<()> {
            Ok(())
        }

        fn abort(&self, code: i32) -> ! {
            panic!("abort {code}")
        }
    }

    /// Every parameter's gradient set to `value`.
    struct Fill(GradientsParams, f32);

    impl ModuleVisitor for Fill {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if param.val().is_require_grad() {
                self.0
                    .register(param.id, param.val().inner().ones_like().mul_scalar(self.1));
            }
        }
    }

    /// torchvision's network for 3 classes, and a gradient of `value` for each parameter.
    fn model_with_gradients(value: f32) -> (AlexNet, GradientsParams) {
        let device = crate::device::parse_device(crate::device::DEFAULT_DEVICE)
            .expect("device")
            .autodiff();
        let model = AlexNetConfig::torchvision(3).init(&device).expect("model");
        let mut fill = Fill(GradientsParams::new(), value);
        model.visit(&mut fill);
        (model, fill.0)
    }

    /// Every gradient value of `grads`, in the model's order.
    struct Read<'a>(&'a GradientsParams, Vec<f32>);

    impl ModuleVisitor for Read<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = self.0.get::<D>(param.id) {
                self.1.extend(grad.into_data().iter::<f32>());
            }
        }
    }

    #[test]
    fn gradients_are_weighted_by_images_fused_and_restored() {
        let (model, grads) = model_with_gradients(2.0);
        let tensors = grads.len();
        // 1 MiB buffers: several, so values cross buffer boundaries.
        let mut group = ProcessGroup::new(
            Box::new(FakePeer {
                // The other rank had 3 images, gradient 3 everywhere and loss 2.0: its
                // buffer holds 3 · 3 = 9 per value, then loss · images = 6 and 3. This
                // rank's buffers hold 5 · 2 = 10 per value; its last ends with 5 and 5.
                peer: |mine| {
                    let mut theirs = vec![9.0; mine.len()];
                    if mine.ends_with(&[5.0, 5.0]) {
                        let n = theirs.len();
                        theirs[n - 2] = 6.0;
                        theirs[n - 1] = 3.0;
                    }
                    theirs
                },
            }),
            1,
        );
        // This rank: 5 images, gradient 2, loss 1.0.
        let reduced = group
            .reduce_gradients(&model, grads, 1.0, 5)
            .expect("reduce");
        assert!(group.buffer_lens().len() > 3, "{:?}", group.buffer_lens());
        assert_eq!(reduced.images, 8);
        assert!(!reduced.non_finite);
        // (5 · 2 + 3 · 3) / 8 and (5 · 1.0 + 3 · 2.0) / 8.
        assert!((reduced.loss - 11.0 / 8.0).abs() < 1e-6, "{}", reduced.loss);
        assert_eq!(reduced.grads.len(), tensors);
        let mut read = Read(&reduced.grads, Vec::new());
        model.visit(&mut read);
        assert_eq!(read.1.len(), model.num_trainable_params());
        assert!(read.1.iter().all(|&g| (g - 19.0 / 8.0).abs() < 1e-6));
    }

    #[test]
    fn a_non_finite_gradient_on_any_rank_is_seen_by_every_rank() {
        let (model, grads) = model_with_gradients(1.0);
        let mut group = ProcessGroup::new(
            Box::new(FakePeer {
                peer: |mine| {
                    let mut theirs = vec![0.0; mine.len()];
                    theirs[0] = f32::NAN;
                    theirs
                },
            }),
            64,
        );
        let reduced = group
            .reduce_gradients(&model, grads, 1.0, 5)
            .expect("reduce");
        assert!(reduced.non_finite);
    }
}
