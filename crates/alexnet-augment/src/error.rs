//! The crate's error type.

/// What can go wrong building or applying a pipeline.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AugmentError {
    /// An op has a bad parameter; found when the pipeline is built, never mid-epoch.
    #[error("{pipeline}[{index}] ({op}): `{field}` {reason}")]
    InvalidOp {
        /// Which pipeline (`augment.train`, `augment.eval`, or `pipeline`).
        pipeline: String,
        /// Position of the op in the list.
        index: usize,
        /// The op's name, e.g. `random_crop`.
        op: &'static str,
        /// The offending parameter.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The pipeline as a whole is not valid (for example ops after `ten_crop`).
    #[error("{pipeline}: {reason}")]
    InvalidPipeline {
        /// Which pipeline.
        pipeline: String,
        /// What is wrong.
        reason: String,
    },
    /// An image does not have the size the pipeline was built for.
    #[error(
        "image is {found_h}x{found_w} but the pipeline was built for {expected_h}x{expected_w} inputs"
    )]
    WrongInputSize {
        /// Expected height.
        expected_h: u32,
        /// Expected width.
        expected_w: u32,
        /// Actual height.
        found_h: u32,
        /// Actual width.
        found_w: u32,
    },
    /// The resampler failed (it should not for valid windows; reported rather than hidden).
    #[error("resize failed: {0}")]
    Resize(String),
    /// The output buffer does not have the pipeline's output length.
    #[error("output buffer holds {found} values, the pipeline writes {expected}")]
    WrongOutputLength {
        /// Needed.
        expected: usize,
        /// Given.
        found: usize,
    },
}

/// `Result` with [`AugmentError`].
pub type Result<T, E = AugmentError> = std::result::Result<T, E>;
