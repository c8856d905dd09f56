//! What `test` writes: the per-class accuracy, the confusion matrix and the
//! most-confused pairs as CSV under `<run>/eval/`, and to TensorBoard the matrix as a
//! heat map, a grid of misclassified images labelled with their true and predicted
//! classes, and the most-confused pairs as a table.

use std::path::{Path, PathBuf};

use alexnet_prep::{Category, DecodeOptions, ProcessedDataset, decode_rgb8};
use font8x8::UnicodeFonts;
use image::{Rgb, RgbImage, imageops};
use tfevents::EventWriter;

use super::Evaluation;
use crate::{
    data::ImageDataset,
    error::{IoContext, LoadCause, Result, TrainError},
    inputs::class_labels,
    io::write_atomic,
};

/// Most-confused pairs and worst classes printed.
const SHOWN: usize = 5;
/// Most-confused pairs written to their CSV.
const LISTED: usize = 100;
/// Misclassified images in the TensorBoard grid.
const GRID_IMAGES: usize = 16;
/// Side of a grid tile, in pixels.
const TILE: u32 = 112;

/// What [`write_eval_files`] wrote, and the pairs and classes to show.
#[derive(Debug, Clone)]
pub struct EvalFiles {
    /// `id,label,correct,total,accuracy` per class.
    pub per_class_csv: PathBuf,
    /// The confusion matrix, true classes in rows.
    pub confusion_csv: PathBuf,
    /// `true,predicted,count,share` of the most-confused pairs.
    pub most_confused_csv: PathBuf,
    /// The TensorBoard folder of the matrix and the grid.
    pub tensorboard: PathBuf,
    /// `(true, predicted, count, share of the true class)`, most first.
    pub most_confused: Vec<(String, String, u64, f64)>,
    /// `(class, accuracy, images)`, worst first.
    pub worst: Vec<(String, f64, u64)>,
}

impl std::fmt::Display for EvalFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "per-class accuracy: {}; confusion matrix: {}; most confused: {}; TensorBoard: {}",
            self.per_class_csv.display(),
            self.confusion_csv.display(),
            self.most_confused_csv.display(),
            self.tensorboard.display()
        )?;
        let pairs: Vec<String> = self
            .most_confused
            .iter()
            .map(|(truth, predicted, count, share)| {
                format!("{truth} → {predicted} ({count}, {:.1}%)", 100.0 * share)
            })
            .collect();
        writeln!(f, "most confused: {}", none_if_empty(&pairs))?;
        let worst: Vec<String> = self
            .worst
            .iter()
            .map(|(class, accuracy, images)| {
                format!("{class} {:.1}% of {images}", 100.0 * accuracy)
            })
            .collect();
        writeln!(f, "worst classes: {}", none_if_empty(&worst))
    }
}

fn none_if_empty(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// Writes the evaluation's files named `<stem>…` (see the module documentation);
/// `epoch` is the TensorBoard step.
pub(super) fn write_eval_files(
    run_dir: &Path,
    stem: &str,
    data: &ProcessedDataset,
    dataset: &ImageDataset,
    evaluation: &Evaluation,
    epoch: usize,
) -> Result<EvalFiles> {
    let eval_dir = run_dir.join("eval");
    std::fs::create_dir_all(&eval_dir).at(&eval_dir)?;
    let labels = class_labels(data);
    let confusion = &evaluation.confusion;
    let per_class_csv = eval_dir.join(format!("{stem}.csv"));
    write_atomic(
        &per_class_csv,
        &per_class_csv_bytes(data.categories(), &confusion.per_class())?,
    )?;
    let confusion_csv = eval_dir.join(format!("{stem}-confusion.csv"));
    write_atomic(&confusion_csv, &confusion.to_csv(&labels)?)?;
    let pairs = confusion.most_confused(LISTED);
    let most_confused: Vec<(String, String, u64, f64)> = pairs
        .iter()
        .map(|p| {
            (
                labels[p.truth].clone(),
                labels[p.predicted].clone(),
                p.count,
                p.share,
            )
        })
        .collect();
    let most_confused_csv = eval_dir.join(format!("{stem}-most-confused.csv"));
    write_atomic(&most_confused_csv, &pairs_csv(&most_confused)?)?;
    let worst = confusion
        .worst_classes(SHOWN)
        .into_iter()
        .map(|(class, accuracy, images)| (labels[class].clone(), accuracy, images))
        .collect();
    let tensorboard = run_dir.join("tensorboard").join(format!("eval-{stem}"));
    let mut board = EventWriter::create(&tensorboard, "eval")?;
    let step = epoch as u64;
    let cell = (768 / confusion.classes().max(1) as u32).clamp(1, 32);
    board.image("confusion_matrix", &confusion.to_image(cell), step)?;
    if let Some(grid) = mistakes_grid(dataset, evaluation, &labels)? {
        board.image("misclassified", &grid, step)?;
    }
    board.text(
        "most_confused",
        &markdown_table(&most_confused[..most_confused.len().min(20)]),
        step,
    )?;
    board.flush()?;
    Ok(EvalFiles {
        per_class_csv,
        confusion_csv,
        most_confused_csv,
        tensorboard,
        most_confused: most_confused.into_iter().take(SHOWN).collect(),
        worst,
    })
}

/// One row of the per-class accuracy CSV.
#[derive(serde::Serialize)]
struct ClassRow<'a> {
    id: usize,
    label: &'a str,
    correct: u64,
    total: u64,
    accuracy: String,
}

/// `id,label,correct,total,accuracy` rows, one per class.
fn per_class_csv_bytes(categories: &[Category], per_class: &[(u64, u64)]) -> Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for (category, &(correct, total)) in categories.iter().zip(per_class) {
        let accuracy = if total == 0 {
            0.0
        } else {
            correct as f64 / total as f64
        };
        writer.serialize(ClassRow {
            id: category.id,
            label: &category.label,
            correct,
            total,
            accuracy: format!("{accuracy:.6}"),
        })?;
    }
    writer
        .into_inner()
        .map_err(|error| TrainError::Csv(error.into_error().into()))
}

/// `true,predicted,count,share` rows.
fn pairs_csv(pairs: &[(String, String, u64, f64)]) -> Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(["true", "predicted", "count", "share"])?;
    for (truth, predicted, count, share) in pairs {
        writer.write_record([truth, predicted, &count.to_string(), &format!("{share:.6}")])?;
    }
    writer
        .into_inner()
        .map_err(|error| TrainError::Csv(error.into_error().into()))
}

fn markdown_table(pairs: &[(String, String, u64, f64)]) -> String {
    let mut text =
        String::from("| true | predicted | images | share of class |\n|---|---|---|---|\n");
    for (truth, predicted, count, share) in pairs {
        text.push_str(&format!(
            "| {truth} | {predicted} | {count} | {:.1}% |\n",
            100.0 * share
        ));
    }
    text
}

/// The first misclassified images in dataset order, each with `T: <true>` and
/// `P: <predicted>` under it; `None` when there is no mistake.
fn mistakes_grid(
    dataset: &ImageDataset,
    evaluation: &Evaluation,
    labels: &[String],
) -> Result<Option<RgbImage>> {
    let shown = &evaluation.mistakes[..evaluation.mistakes.len().min(GRID_IMAGES)];
    if shown.is_empty() {
        return Ok(None);
    }
    let columns = (shown.len() as f64).sqrt().ceil() as u32;
    let rows = (shown.len() as u32).div_ceil(columns);
    let (cell_w, cell_h) = (TILE + 4, TILE + 24);
    let mut grid = RgbImage::from_pixel(columns * cell_w, rows * cell_h, Rgb([255, 255, 255]));
    for (k, mistake) in shown.iter().enumerate() {
        let path = &dataset.items()[mistake.index].path;
        let failed = |source: LoadCause| TrainError::Image {
            path: path.clone(),
            source,
        };
        let bytes = std::fs::read(path).map_err(|error| failed(error.into()))?;
        let image = decode_rgb8(&bytes, &DecodeOptions::default())
            .map_err(|error| failed(error.into()))?
            .image;
        let tile = imageops::resize(&image, TILE, TILE, imageops::FilterType::Triangle);
        let (x, y) = (
            (k as u32 % columns) * cell_w + 2,
            (k as u32 / columns) * cell_h + 2,
        );
        imageops::replace(&mut grid, &tile, i64::from(x), i64::from(y));
        let line = |prefix: &str, class: usize| format!("{prefix}{}", labels[class]);
        draw_text(
            &mut grid,
            x,
            y + TILE + 2,
            &line("T:", mistake.truth),
            Rgb([0, 100, 0]),
        );
        draw_text(
            &mut grid,
            x,
            y + TILE + 11,
            &line("P:", mistake.predicted),
            Rgb([180, 0, 0]),
        );
    }
    Ok(Some(grid))
}

/// Draws `text` in an 8×8 bitmap font at `(x, y)`, cut at the image's right edge and
/// at the tile's width; characters the font lacks are drawn as `?`.
fn draw_text(image: &mut RgbImage, x: u32, y: u32, text: &str, colour: Rgb<u8>) {
    let fits = (TILE / 8) as usize;
    for (k, c) in text.chars().take(fits).enumerate() {
        let glyph = font8x8::BASIC_FONTS
            .get(c)
            .or_else(|| font8x8::BASIC_FONTS.get('?'))
            .unwrap_or([0; 8]);
        for (row, bits) in glyph.iter().enumerate() {
            for column in 0..8u32 {
                let (px, py) = (x + k as u32 * 8 + column, y + row as u32);
                if bits & (1 << column) != 0 && px < image.width() && py < image.height() {
                    image.put_pixel(px, py, colour);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_drawn_inside_their_tile() {
        let mut image = RgbImage::from_pixel(TILE + 40, 10, Rgb([255, 255, 255]));
        let long = "T:".to_string() + &"w".repeat(40);
        draw_text(&mut image, 0, 1, &long, Rgb([0, 100, 0]));
        let inked = |x0: u32, x1: u32| {
            (x0..x1)
                .flat_map(|x| (0..10).map(move |y| (x, y)))
                .filter(|&(x, y)| image.get_pixel(x, y).0 != [255, 255, 255])
                .count()
        };
        assert!(inked(0, 8) > 5, "`T` is drawn");
        assert!(
            inked(TILE / 8 * 8 - 8, TILE) > 5,
            "the last character that fits"
        );
        assert_eq!(inked(TILE, TILE + 40), 0, "nothing past the tile's width");
        if let Ok(path) = std::env::var("ALEXNET_SAVE_LABEL_TEST") {
            image.save(path).unwrap();
        }
    }
}
