//! The confusion matrix of an evaluation, and what people report from it: mean
//! per-class accuracy, the most-confused pairs, the worst classes, a CSV and a heat map.

use image::{Rgb, RgbImage};

use crate::error::{Result, TrainError};

/// `counts[truth][predicted]` over the images evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    classes: usize,
    counts: Vec<u64>,
}

/// Images of class `truth` predicted as `predicted`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfusedPair {
    /// The true class.
    pub truth: usize,
    /// What the network said.
    pub predicted: usize,
    /// How many images.
    pub count: u64,
    /// Their share of the true class's images.
    pub share: f64,
}

impl ConfusionMatrix {
    /// An empty matrix of `classes × classes`.
    pub fn new(classes: usize) -> Self {
        Self {
            classes,
            counts: vec![0; classes * classes],
        }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Counts one image of class `truth` predicted as `predicted`.
    pub fn add(&mut self, truth: usize, predicted: usize) {
        self.counts[truth * self.classes + predicted] += 1;
    }

    /// Images of class `truth` predicted as `predicted`.
    pub fn count(&self, truth: usize, predicted: usize) -> u64 {
        self.counts[truth * self.classes + predicted]
    }

    /// Images of class `truth` (the row's sum).
    pub fn total(&self, truth: usize) -> u64 {
        self.row(truth).iter().sum()
    }

    fn row(&self, truth: usize) -> &[u64] {
        &self.counts[truth * self.classes..(truth + 1) * self.classes]
    }

    /// Images counted.
    pub fn images(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Images on the diagonal.
    pub fn correct(&self) -> u64 {
        (0..self.classes).map(|c| self.count(c, c)).sum()
    }

    /// `(correct, total)` per class.
    pub fn per_class(&self) -> Vec<(u64, u64)> {
        (0..self.classes)
            .map(|c| (self.count(c, c), self.total(c)))
            .collect()
    }

    /// The mean over classes of each class's accuracy, classes with no image left out
    /// (the metric Caltech-256 results are reported in); `None` with no image at all.
    pub fn mean_per_class(&self) -> Option<f64> {
        mean_per_class(self.per_class().into_iter())
    }

    /// The `k` largest off-diagonal cells, largest first (ties: lower class ids first).
    pub fn most_confused(&self, k: usize) -> Vec<ConfusedPair> {
        let mut pairs: Vec<ConfusedPair> = (0..self.classes)
            .flat_map(|truth| (0..self.classes).map(move |predicted| (truth, predicted)))
            .filter(|&(truth, predicted)| truth != predicted && self.count(truth, predicted) > 0)
            .map(|(truth, predicted)| ConfusedPair {
                truth,
                predicted,
                count: self.count(truth, predicted),
                share: self.count(truth, predicted) as f64 / self.total(truth) as f64,
            })
            .collect();
        pairs.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then((a.truth, a.predicted).cmp(&(b.truth, b.predicted)))
        });
        pairs.truncate(k);
        pairs
    }

    /// The `k` classes with the lowest accuracy, `(class, accuracy, images)`, lowest
    /// first; classes with no image are left out.
    pub fn worst_classes(&self, k: usize) -> Vec<(usize, f64, u64)> {
        let mut classes: Vec<(usize, f64, u64)> = self
            .per_class()
            .into_iter()
            .enumerate()
            .filter(|(_, (_, total))| *total > 0)
            .map(|(class, (correct, total))| (class, correct as f64 / total as f64, total))
            .collect();
        classes.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        classes.truncate(k);
        classes
    }

    /// The matrix as CSV: a header `true\predicted` then the labels, and one row per
    /// true class, its label then its counts.
    pub fn to_csv(&self, labels: &[String]) -> Result<Vec<u8>> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let header = std::iter::once("true\\predicted").chain(labels.iter().map(String::as_str));
        writer.write_record(header)?;
        for (truth, label) in labels.iter().enumerate().take(self.classes) {
            let row =
                std::iter::once(label.clone()).chain(self.row(truth).iter().map(u64::to_string));
            writer.write_record(row)?;
        }
        writer
            .into_inner()
            .map_err(|error| TrainError::Csv(error.into_error().into()))
    }

    /// A heat map, `cell` pixels a cell: each row's share of its class, white (none)
    /// to dark blue (all); rows are true classes, columns predictions.
    pub fn to_image(&self, cell: u32) -> RgbImage {
        let side = self.classes as u32 * cell;
        let mut image = RgbImage::new(side.max(1), side.max(1));
        for truth in 0..self.classes {
            let total = self.total(truth).max(1) as f64;
            for predicted in 0..self.classes {
                let share = self.count(truth, predicted) as f64 / total;
                let shade = |full: f64| (255.0 - share * (255.0 - full)).round() as u8;
                let colour = Rgb([shade(8.0), shade(48.0), shade(107.0)]);
                for dy in 0..cell {
                    for dx in 0..cell {
                        image.put_pixel(
                            predicted as u32 * cell + dx,
                            truth as u32 * cell + dy,
                            colour,
                        );
                    }
                }
            }
        }
        image
    }
}

/// The mean of `correct / total` over the classes with `total > 0`.
pub fn mean_per_class(per_class: impl Iterator<Item = (u64, u64)>) -> Option<f64> {
    let (sum, classes) = per_class
        .filter(|&(_, total)| total > 0)
        .fold((0.0, 0usize), |(sum, n), (correct, total)| {
            (sum + correct as f64 / total as f64, n + 1)
        });
    (classes > 0).then(|| sum / classes as f64)
}

/// The index of the largest finite score of a row (the first on ties); `None` when no
/// score is finite.
pub fn argmax(row: &[f32]) -> Option<usize> {
    row.iter()
        .enumerate()
        .filter(|(_, score)| !score.is_nan() && **score != f32::INFINITY)
        .fold(
            None,
            |best: Option<(usize, f32)>, (index, &score)| match best {
                Some((_, top)) if top >= score => best,
                _ => Some((index, score)),
            },
        )
        .map(|(index, _)| index)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unbalanced three-class example: 8 images of class 0 (6 right), 2 of class 1
    /// (1 right), 4 of class 2 (0 right).
    fn unbalanced() -> ConfusionMatrix {
        let mut matrix = ConfusionMatrix::new(3);
        for (truth, predicted, times) in [
            (0, 0, 6),
            (0, 2, 2),
            (1, 1, 1),
            (1, 0, 1),
            (2, 0, 3),
            (2, 1, 1),
        ] {
            for _ in 0..times {
                matrix.add(truth, predicted);
            }
        }
        matrix
    }

    #[test]
    fn mean_per_class_is_the_mean_of_the_class_accuracies() {
        let matrix = unbalanced();
        // By hand: (6/8 + 1/2 + 0/4) / 3 = 0.41666…, while top-1 is 7/14 = 0.5.
        let mean = matrix.mean_per_class().unwrap();
        assert!((mean - (0.75 + 0.5 + 0.0) / 3.0).abs() < 1e-12, "{mean}");
        assert_eq!((matrix.correct(), matrix.images()), (7, 14));
        // Rows sum to the class counts.
        assert_eq!(
            (0..3).map(|c| matrix.total(c)).collect::<Vec<_>>(),
            [8, 2, 4]
        );
        // A class without images does not count.
        let mut sparse = ConfusionMatrix::new(4);
        sparse.add(0, 0);
        sparse.add(1, 0);
        assert_eq!(sparse.mean_per_class(), Some(0.5));
        assert_eq!(ConfusionMatrix::new(2).mean_per_class(), None);
    }

    #[test]
    fn most_confused_and_worst() {
        let matrix = unbalanced();
        let pairs = matrix.most_confused(2);
        assert_eq!(
            (pairs[0].truth, pairs[0].predicted, pairs[0].count),
            (2, 0, 3)
        );
        assert!((pairs[0].share - 0.75).abs() < 1e-12);
        assert_eq!(
            (pairs[1].truth, pairs[1].predicted, pairs[1].count),
            (0, 2, 2)
        );
        let worst: Vec<usize> = matrix.worst_classes(3).iter().map(|w| w.0).collect();
        assert_eq!(worst, [2, 1, 0]);
    }

    #[test]
    fn csv_and_image() {
        let labels: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let text = String::from_utf8(unbalanced().to_csv(&labels).unwrap()).unwrap();
        assert_eq!(text, "true\\predicted,a,b,c\na,6,0,2\nb,1,1,0\nc,3,1,0\n");
        let image = unbalanced().to_image(4);
        assert_eq!(image.dimensions(), (12, 12));
        assert_eq!(
            image.get_pixel(11, 11).0,
            [255, 255, 255],
            "an empty cell is white"
        );
        assert!(image.get_pixel(0, 0).0[0] < 255);
    }

    #[test]
    fn argmax_skips_non_finite() {
        assert_eq!(argmax(&[0.1, 0.5, 0.5]), Some(1));
        assert_eq!(argmax(&[f32::NAN, -1.0, -2.0]), Some(1));
        assert_eq!(argmax(&[f32::NAN]), None);
    }
}
