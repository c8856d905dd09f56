//! Validating one op of a pipeline into a [`Step`] ready to run: sizes checked against
//! the image the op applies to, `"dataset"` values resolved from the statistics.

use fast_image_resize::{FilterType, ResizeAlg};
use rand_distr::Normal;

use crate::{
    config::{ChannelValues, Filter, OpConfig, Scale},
    error::{AugmentError, Result},
    stats::ChannelStats,
};

/// A resolved op, ready to run.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Flip {
        p: f64,
    },
    RandomCrop {
        h: u32,
        w: u32,
    },
    CenterCrop {
        h: u32,
        w: u32,
    },
    Resize {
        h: u32,
        w: u32,
        alg: ResizeAlg,
    },
    RandomResizedCrop {
        h: u32,
        w: u32,
        scale: [f64; 2],
        log_ratio: [f64; 2],
        alg: ResizeAlg,
    },
    /// `v ↦ (v·unit − mean) / std` on the current value scale.
    Normalize {
        unit: f64,
        mean: [f64; 3],
        std: [f64; 3],
    },
    /// Adds `Σ αᵢ·components[i]` (raw pixel units), αᵢ ~ N(0, std).
    Pca {
        normal: Normal<f64>,
        components: [[f64; 3]; 3],
    },
    TenCrop {
        h: u32,
        w: u32,
    },
}

fn algorithm(filter: Filter) -> ResizeAlg {
    match filter {
        Filter::Bilinear => ResizeAlg::Convolution(FilterType::Bilinear),
        Filter::BilinearFixed => ResizeAlg::Interpolation(FilterType::Bilinear),
        Filter::CatmullRom => ResizeAlg::Convolution(FilterType::CatmullRom),
        Filter::Lanczos3 => ResizeAlg::Convolution(FilterType::Lanczos3),
    }
}

/// What validation carries from one op to the next: the image size the next op sees
/// and how many crops each image has become.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub h: u32,
    pub w: u32,
    pub crops: usize,
}

/// One op being validated: where it is, for error messages, and the statistics that
/// `"dataset"` values come from.
pub(crate) struct OpCheck<'a> {
    pub pipeline: &'a str,
    pub index: usize,
    pub op: &'a OpConfig,
    pub stats: Option<&'a ChannelStats>,
}

impl OpCheck<'_> {
    fn invalid(&self, field: &'static str, reason: impl Into<String>) -> AugmentError {
        AugmentError::InvalidOp {
            pipeline: self.pipeline.into(),
            index: self.index,
            op: self.op.name(),
            field,
            reason: reason.into(),
        }
    }

    /// `size` must be in 1..=16384 and, for a crop, fit the `fits` image.
    fn check_size(&self, size: [u32; 2], fits: Option<(u32, u32)>) -> Result<()> {
        if size[0] == 0 || size[1] == 0 || size[0] > 16_384 || size[1] > 16_384 {
            return Err(self.invalid("size", format!("{size:?} is not in 1..=16384")));
        }
        if let Some((h, w)) = fits
            && (size[0] > h || size[1] > w)
        {
            return Err(self.invalid(
                "size",
                format!("{size:?} is larger than the {h}x{w} image it applies to"),
            ));
        }
        Ok(())
    }

    /// Given values, or the dataset's (`from_stats`) for `"dataset"`.
    fn resolve(
        &self,
        values: ChannelValues,
        field: &'static str,
        from_stats: fn(&ChannelStats) -> [f64; 3],
    ) -> Result<[f64; 3]> {
        match values {
            ChannelValues::Values(values) => Ok(values),
            ChannelValues::Dataset => self.stats.map(from_stats).ok_or_else(|| {
                self.invalid(field, "is \"dataset\" but no dataset statistics were given")
            }),
        }
    }

    /// The op as a step, `shape` updated to what the next op sees.
    pub(crate) fn step(&self, shape: &mut Shape) -> Result<Step> {
        if shape.crops > 1
            && !matches!(
                self.op,
                OpConfig::Normalize { .. } | OpConfig::PcaLighting { .. }
            )
        {
            return Err(self.invalid("op", "only normalize and pca_lighting may follow ten_crop"));
        }
        let fits = Some((shape.h, shape.w));
        Ok(match *self.op {
            OpConfig::HorizontalFlip { p } => {
                if !(0.0..=1.0).contains(&p) {
                    return Err(self.invalid("p", format!("{p} is not in [0, 1]")));
                }
                Step::Flip { p }
            }
            OpConfig::RandomCrop { size } => {
                self.check_size(size, fits)?;
                [shape.h, shape.w] = size;
                Step::RandomCrop {
                    h: size[0],
                    w: size[1],
                }
            }
            OpConfig::CenterCrop { size } => {
                self.check_size(size, fits)?;
                [shape.h, shape.w] = size;
                Step::CenterCrop {
                    h: size[0],
                    w: size[1],
                }
            }
            OpConfig::TenCrop { size } => {
                self.check_size(size, fits)?;
                [shape.h, shape.w] = size;
                shape.crops = 10;
                Step::TenCrop {
                    h: size[0],
                    w: size[1],
                }
            }
            OpConfig::Resize { size, filter } => {
                self.check_size(size, None)?;
                [shape.h, shape.w] = size;
                Step::Resize {
                    h: size[0],
                    w: size[1],
                    alg: algorithm(filter),
                }
            }
            OpConfig::RandomResizedCrop {
                size,
                scale,
                ratio,
                filter,
            } => {
                self.check_size(size, None)?;
                [shape.h, shape.w] = size;
                self.random_resized_crop(size, scale, ratio, filter)?
            }
            OpConfig::Normalize { mean, std, scale } => self.normalize(mean, std, scale)?,
            OpConfig::PcaLighting {
                std,
                eigenvalues,
                eigenvectors,
            } => self.pca(std, eigenvalues, eigenvectors)?,
        })
    }

    fn random_resized_crop(
        &self,
        size: [u32; 2],
        scale: [f64; 2],
        ratio: [f64; 2],
        filter: Filter,
    ) -> Result<Step> {
        if !(scale[0] > 0.0 && scale[0] <= scale[1] && scale[1] <= 1.0) {
            return Err(self.invalid("scale", format!("{scale:?} is not 0 < low <= high <= 1")));
        }
        if !(ratio[0] > 0.0 && ratio[0] <= ratio[1] && ratio[1].is_finite()) {
            return Err(self.invalid("ratio", format!("{ratio:?} is not 0 < low <= high")));
        }
        Ok(Step::RandomResizedCrop {
            h: size[0],
            w: size[1],
            scale,
            log_ratio: [ratio[0].ln(), ratio[1].ln()],
            alg: algorithm(filter),
        })
    }

    fn normalize(
        &self,
        mean: ChannelValues,
        std: Option<ChannelValues>,
        scale: Scale,
    ) -> Result<Step> {
        let unit = match scale {
            Scale::Byte => 1.0,
            Scale::Unit => 1.0 / 255.0,
        };
        // Dataset statistics are on 0–255; bring them to the op's scale.
        let mean = match mean {
            ChannelValues::Dataset => self.resolve(mean, "mean", |s| s.mean)?.map(|m| m * unit),
            given => self.resolve(given, "mean", |s| s.mean)?,
        };
        let std = match std {
            None => [1.0; 3],
            Some(ChannelValues::Dataset) => self
                .resolve(ChannelValues::Dataset, "std", |s| s.std)?
                .map(|s| s * unit),
            Some(given) => self.resolve(given, "std", |s| s.std)?,
        };
        if mean.iter().any(|m| !m.is_finite()) {
            return Err(self.invalid("mean", format!("{mean:?} is not finite")));
        }
        if std.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return Err(self.invalid("std", format!("{std:?} must be positive")));
        }
        Ok(Step::Normalize { unit, mean, std })
    }

    fn pca(
        &self,
        std: f64,
        eigenvalues: Option<[f64; 3]>,
        eigenvectors: Option<[[f64; 3]; 3]>,
    ) -> Result<Step> {
        let normal = Normal::new(0.0, std)
            .ok()
            .filter(|_| std.is_finite() && std >= 0.0)
            .ok_or_else(|| {
                self.invalid("std", format!("{std} is not a finite non-negative number"))
            })?;
        let values = match eigenvalues {
            Some(values) => values,
            None => self.stats.map(|s| s.eigenvalues).ok_or_else(|| {
                self.invalid("eigenvalues", "not given and no dataset statistics")
            })?,
        };
        let vectors = match eigenvectors {
            Some(vectors) => vectors,
            None => self.stats.map(|s| s.eigenvectors).ok_or_else(|| {
                self.invalid("eigenvectors", "not given and no dataset statistics")
            })?,
        };
        if values.iter().any(|v| !v.is_finite() || *v < 0.0) {
            return Err(self.invalid(
                "eigenvalues",
                format!("{values:?} must be finite and non-negative"),
            ));
        }
        if vectors.iter().flatten().any(|v| !v.is_finite()) {
            return Err(self.invalid("eigenvectors", "must be finite"));
        }
        Ok(Step::Pca {
            normal,
            components: [0, 1, 2].map(|i| vectors[i].map(|p| p * values[i].sqrt())),
        })
    }
}
