//! A Caltech-shaped demo dataset, drawn procedurally, so everything runs on a fresh
//! machine with no download.
//!
//! Each class is a shape (circle, star, ...) or a texture (stripes, checker, ...) in a
//! hue of its own (jittered, with random saturation and brightness), at random sizes,
//! positions and rotations on varied backgrounds, written as
//! real JPEG files in `NNN.label/NNN_XXXX.jpg`. The same seed gives the same bytes.
//! With `oddities` on, the folder also holds what real downloads hold: a stray
//! non-image file, a nested folder, a truncated JPEG, and grayscale, RGBA-PNG and
//! CMYK images.

use std::{
    fs,
    path::{Path, PathBuf},
};

use image::{GrayImage, ImageFormat, RgbImage, RgbaImage};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{
    config::PrepConfig,
    error::{IoContext, PrepError, Result},
    format::REPORT_JSON,
    io::write_output,
    preprocess::Preprocessor,
    report::PrepReport,
    transform::encode_jpeg,
};

mod draw;

pub use draw::draw;

/// The drawable classes, in class-id order.
pub const DEMO_CLASSES: [&str; 12] = [
    "circle", "square", "triangle", "star", "cross", "ring", "hexagon", "crescent", "stripes",
    "checker", "dots", "grid",
];

const MARKER: &str = "demo.json";

/// Settings of the demo dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    /// Where tools put the demo: `<dir>/raw` (generated) and `<dir>/processed`.
    /// [`generate_demo`] itself writes to the folder it is given.
    pub dir: PathBuf,
    /// Number of classes, 2 to 12.
    pub classes: usize,
    /// Images drawn per class.
    pub images_per_class: usize,
    /// Smallest width or height of a drawn image.
    pub min_size: u32,
    /// Largest width or height of a drawn image.
    pub max_size: u32,
    /// Seed: the same seed gives byte-identical files.
    pub seed: u64,
    /// Add the messy files of a real download (see the module docs).
    pub oddities: bool,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("data/demo"),
            classes: 10,
            images_per_class: 120,
            min_size: 96,
            max_size: 160,
            seed: 7,
            oddities: true,
        }
    }
}

impl DemoConfig {
    /// Checks every value; the error names the offending key.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field, reason: String| Err(PrepError::InvalidConfig { field, reason });
        if !(2..=DEMO_CLASSES.len()).contains(&self.classes) {
            return invalid(
                "demo.classes",
                format!("{} is not in 2..={}", self.classes, DEMO_CLASSES.len()),
            );
        }
        if self.images_per_class == 0 {
            return invalid("demo.images_per_class", "must be positive".into());
        }
        if self.min_size < 16 || self.min_size > self.max_size || self.max_size > 4096 {
            return invalid(
                "demo.min_size",
                format!(
                    "need 16 <= min_size <= max_size <= 4096, got {}..{}",
                    self.min_size, self.max_size
                ),
            );
        }
        Ok(())
    }

    /// The folder name of class `id`, Caltech style: `001.circle`.
    pub fn folder(id: usize) -> String {
        format!("{:03}.{}", id + 1, DEMO_CLASSES[id])
    }
}

/// What [`generate_demo`] produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemoSummary {
    /// The configuration it was generated with.
    pub config: DemoConfig,
    /// Clean images written.
    pub images: usize,
    /// Paths (relative) of the odd files added.
    pub oddities: Vec<String>,
}

/// Writes the demo dataset into `dir`. A folder already holding the same demo is
/// reused as it is; a folder holding anything else is refused.
pub fn generate_demo(dir: &Path, config: &DemoConfig) -> Result<DemoSummary> {
    config.validate()?;
    let marker = dir.join(MARKER);
    let existing = fs::read_to_string(&marker)
        .ok()
        .and_then(|text| serde_json::from_str::<DemoSummary>(&text).ok());
    if let Some(summary) = existing.filter(|summary| summary.config == *config) {
        return Ok(summary);
    }
    if dir.exists() && fs::read_dir(dir).at(dir)?.next().is_some() {
        if !marker.exists() {
            return Err(PrepError::OutputNotEmpty(dir.to_path_buf()));
        }
        // An earlier demo with other settings: replace it.
        for id in 0..DEMO_CLASSES.len() {
            let class_dir = dir.join(DemoConfig::folder(id));
            if class_dir.is_dir() {
                fs::remove_dir_all(&class_dir).at(&class_dir)?;
            }
        }
        fs::remove_file(&marker).at(&marker)?;
    }
    for id in 0..config.classes {
        let class_dir = dir.join(DemoConfig::folder(id));
        fs::create_dir_all(&class_dir).at(&class_dir)?;
    }
    let jobs: Vec<(usize, usize)> = (0..config.classes)
        .flat_map(|class| (0..config.images_per_class).map(move |index| (class, index)))
        .collect();
    jobs.par_iter().try_for_each(|&(class, index)| {
        let image = draw(config, class, index as u64);
        let path = dir.join(DemoConfig::folder(class)).join(format!(
            "{:03}_{:04}.jpg",
            class + 1,
            index + 1
        ));
        write_jpeg(&path, &image)
    })?;
    let oddities = if config.oddities {
        write_oddities(dir, config)?
    } else {
        Vec::new()
    };
    let summary = DemoSummary {
        config: config.clone(),
        images: jobs.len(),
        oddities,
    };
    let text = serde_json::to_vec_pretty(&summary).map_err(|error| PrepError::InvalidConfig {
        field: "demo",
        reason: error.to_string(),
    })?;
    write_output(&marker, &text)?;
    Ok(summary)
}

fn write_jpeg(path: &Path, image: &RgbImage) -> Result<()> {
    let mut bytes = Vec::new();
    encode_jpeg(image, 92, &mut bytes).map_err(|reason| PrepError::InvalidConfig {
        field: "demo.max_size",
        reason,
    })?;
    write_output(path, &bytes)
}

/// The files a real download holds besides clean images; a class gets one only if the
/// demo has that many classes.
fn write_oddities(dir: &Path, config: &DemoConfig) -> Result<Vec<String>> {
    let mut written = Vec::new();
    let extra = config.images_per_class as u64 + 1000;
    // A stray non-image, as Caltech-256's 198.spider/RENAME2.
    let rel = format!("{}/RENAME2", DemoConfig::folder(0));
    write_output(&dir.join(&rel), b"rename these files\n")?;
    written.push(rel);
    // A nested folder, as Caltech-256's 056.dog/greg/.
    let nested = dir.join(DemoConfig::folder(1)).join("greg");
    fs::create_dir_all(&nested).at(&nested)?;
    for k in 0..2 {
        let path = nested.join(format!("greg_{k}.jpg"));
        write_jpeg(&path, &draw(config, 1, extra + k))?;
        written.push(format!("{}/greg/greg_{k}.jpg", DemoConfig::folder(1)));
    }
    type Make = fn(RgbImage) -> Result<Vec<u8>>;
    let odd: [(usize, &str, Make); 4] = [
        (2, "003_truncated.jpg", truncated_jpeg),
        (3, "004_gray.jpg", gray_jpeg),
        (4, "005_alpha.png", alpha_png),
        (5, "006_cmyk.jpg", cmyk_jpeg),
    ];
    for (class, name, make) in odd {
        if config.classes > class {
            let rel = format!("{}/{name}", DemoConfig::folder(class));
            write_output(&dir.join(&rel), &make(draw(config, class, extra))?)?;
            written.push(rel);
        }
    }
    Ok(written)
}

/// A demo error naming the `[demo]` section.
fn demo_error(reason: impl ToString) -> PrepError {
    PrepError::InvalidConfig {
        field: "demo",
        reason: reason.to_string(),
    }
}

/// A download cut short: the first half of a JPEG.
fn truncated_jpeg(rgb: RgbImage) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    encode_jpeg(&rgb, 92, &mut bytes).map_err(demo_error)?;
    bytes.truncate(bytes.len() / 2);
    Ok(bytes)
}

/// A one-channel (grey) JPEG.
fn gray_jpeg(rgb: RgbImage) -> Result<Vec<u8>> {
    let gray: GrayImage = image::DynamicImage::ImageRgb8(rgb).to_luma8();
    let mut bytes = Vec::new();
    jpeg_encoder::Encoder::new(&mut bytes, 92)
        .encode(
            gray.as_raw(),
            gray.width() as u16,
            gray.height() as u16,
            jpeg_encoder::ColorType::Luma,
        )
        .map_err(demo_error)?;
    Ok(bytes)
}

/// A PNG with a transparent stripe.
fn alpha_png(rgb: RgbImage) -> Result<Vec<u8>> {
    let rgba = RgbaImage::from_fn(rgb.width(), rgb.height(), |x, y| {
        let [r, g, b] = rgb.get_pixel(x, y).0;
        image::Rgba([r, g, b, if x < 4 { 0 } else { 255 }])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    rgba.write_to(&mut bytes, ImageFormat::Png)
        .map_err(demo_error)?;
    Ok(bytes.into_inner())
}

/// A CMYK JPEG, as some photo tools write.
fn cmyk_jpeg(rgb: RgbImage) -> Result<Vec<u8>> {
    let cmyk: Vec<u8> = rgb
        .pixels()
        .flat_map(|p| {
            let [r, g, b] = p.0.map(f64::from);
            let k = 255.0 - r.max(g).max(b);
            let scale = if k >= 255.0 { 0.0 } else { 255.0 / (255.0 - k) };
            let c = |v: f64| ((255.0 - v - k) * scale).round().clamp(0.0, 255.0) as u8;
            [c(r), c(g), c(b), k.round() as u8]
        })
        .collect();
    let mut bytes = Vec::new();
    jpeg_encoder::Encoder::new(&mut bytes, 95)
        .encode(
            &cmyk,
            rgb.width() as u16,
            rgb.height() as u16,
            jpeg_encoder::ColorType::Cmyk,
        )
        .map_err(demo_error)?;
    Ok(bytes)
}

/// How [`prepare_demo`] preprocesses.
#[derive(Debug, Clone, Default)]
pub struct DemoPrepOptions {
    /// Keep an output that an earlier run wrote with the same settings.
    pub reuse: bool,
    /// Replace an earlier run's output (see [`Preprocessor::overwrite`]).
    pub overwrite: bool,
    /// Show this progress bar while preprocessing.
    pub progress: Option<indicatif::ProgressBar>,
    /// Stop cleanly once this is requested ([`Preprocessor::stop_on`]).
    pub stop: Option<runfiles::StopRequest>,
}

/// What [`prepare_demo`] did.
#[derive(Debug, Clone)]
pub struct PreparedDemo {
    /// The generated raw dataset.
    pub summary: DemoSummary,
    /// Its folder (`<demo.dir>/raw`).
    pub raw: PathBuf,
    /// The processed dataset's folder.
    pub processed: PathBuf,
    /// The preprocessing report; `None` when an earlier output was reused.
    pub report: Option<PrepReport>,
}

impl DemoPrepOptions {
    /// A [`Preprocessor`] for `config` with these options' overwrite, progress bar and
    /// stop request.
    pub fn preprocessor<'a>(self, config: PrepConfig) -> Preprocessor<'a> {
        let mut preprocessor = Preprocessor::new(config).overwrite(self.overwrite);
        if let Some(stop) = self.stop {
            preprocessor = preprocessor.stop_on(stop);
        }
        match self.progress {
            Some(progress) => preprocessor.progress(progress),
            None => preprocessor,
        }
    }
}

/// Generates the demo dataset in `<demo.dir>/raw` ([`generate_demo`]) and returns `prep`
/// pointed at it: that folder as the input, `prep.output` or `<demo.dir>/processed` as
/// the output.
pub fn demo_input(demo: &DemoConfig, prep: &PrepConfig) -> Result<(DemoSummary, PrepConfig)> {
    let raw = demo.dir.join("raw");
    let summary = generate_demo(&raw, demo)?;
    let output = prep
        .output
        .clone()
        .unwrap_or_else(|| demo.dir.join("processed"));
    let prep = PrepConfig {
        input: Some(raw),
        output: Some(output),
        ..prep.clone()
    };
    Ok((summary, prep))
}

/// Generates the demo dataset ([`demo_input`]) and preprocesses it with `prep`'s
/// settings, unless `options.reuse` finds an output an identical earlier run wrote.
pub fn prepare_demo(
    demo: &DemoConfig,
    prep: &PrepConfig,
    options: DemoPrepOptions,
) -> Result<PreparedDemo> {
    let (summary, prep) = demo_input(demo, prep)?;
    let raw = prep.input.clone().unwrap_or_default();
    let processed = prep.output.clone().unwrap_or_default();
    let previous: Option<PrepReport> = fs::read_to_string(processed.join(REPORT_JSON))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    let reusable = options.reuse
        && previous.is_some_and(|report| report.config == prep)
        && crate::ProcessedDataset::open(&processed).is_ok();
    let report = if reusable {
        None
    } else {
        Some(options.preprocessor(prep).run()?)
    };
    Ok(PreparedDemo {
        summary,
        raw,
        processed,
        report,
    })
}
