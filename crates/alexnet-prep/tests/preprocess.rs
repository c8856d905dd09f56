//! End-to-end tests of preprocessing on small, deliberately messy folders.

use std::{
    collections::BTreeMap,
    fs,
    io::Cursor,
    path::{Path, PathBuf},
};

use alexnet_prep::{
    DecodeError, NestedDirs, PrepConfig, PrepError, Preprocessor, ProcessedDataset, SkipReason,
    Split, SplitRule,
};
use image::{ImageFormat, Rgb, RgbImage};

fn encode(image: &image::DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

fn jpeg(image: &RgbImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    alexnet_prep::encode_jpeg(image, 95, &mut bytes).unwrap();
    bytes
}

fn solid(width: u32, height: u32, colour: [u8; 3]) -> RgbImage {
    RgbImage::from_pixel(width, height, Rgb(colour))
}

/// A TIFF/EXIF block holding only an orientation tag.
fn exif_orientation(orientation: u16) -> Vec<u8> {
    let mut exif = vec![0x49, 0x49, 0x2A, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01, 0x00];
    exif.extend_from_slice(&[0x12, 0x01, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00]);
    exif.extend_from_slice(&orientation.to_le_bytes());
    exif.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    exif
}

fn palette_png() -> Vec<u8> {
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, 8, 8);
        encoder.set_color(png::ColorType::Indexed);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_palette(vec![10, 20, 30, 200, 100, 50]);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&[1u8; 64]).unwrap();
    }
    bytes
}

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

/// Every decodable oddity, every kind of non-image, a nested folder and stray files.
fn messy_dataset(root: &Path) {
    let red = solid(40, 30, [255, 0, 0]);
    write(root, "001.rgb/a.jpg", &jpeg(&red));
    write(root, "001.rgb/b.jpeg", &jpeg(&solid(50, 80, [0, 0, 255])));
    let gray =
        image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(30, 30, image::Luma([77])));
    write(root, "002.gray/gray.jpg", &encode(&gray, ImageFormat::Jpeg));
    write(root, "002.gray/gray.png", &encode(&gray, ImageFormat::Png));
    let mut cmyk = Vec::new();
    // Pure red as CMYK: C=0, M=255, Y=255, K=0.
    jpeg_cmyk(&mut cmyk, 24, 24, [0, 255, 255, 0]);
    write(root, "003.cmyk/cmyk.jpg", &cmyk);
    let rgba = image::RgbaImage::from_fn(20, 20, |x, _| {
        if x < 10 {
            image::Rgba([0, 0, 0, 0])
        } else {
            image::Rgba([0, 255, 0, 255])
        }
    });
    write(
        root,
        "004.alpha/rgba.png",
        &encode(&rgba.into(), ImageFormat::Png),
    );
    let sixteen = image::ImageBuffer::<Rgb<u16>, _>::from_pixel(16, 16, Rgb([65535u16, 0, 32896]));
    write(
        root,
        "005.deep/sixteen.png",
        &encode(&sixteen.into(), ImageFormat::Png),
    );
    write(root, "005.deep/palette.png", &palette_png());
    // 40×20, left half red, right half blue, stored rotated: orientation 6 means the
    // upright image is this one turned 90° clockwise (20×40, red on top).
    let sideways = RgbImage::from_fn(40, 20, |x, _| {
        if x < 20 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    });
    let mut rotated = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut rotated, 95);
    encoder.add_exif_metadata(&exif_orientation(6)).unwrap();
    encoder
        .encode(sideways.as_raw(), 40, 20, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    write(root, "006.exif/rotated.jpg", &rotated);
    let other = image::DynamicImage::ImageRgb8(solid(20, 20, [9, 99, 199]));
    write(root, "007.formats/x.gif", &encode(&other, ImageFormat::Gif));
    write(root, "007.formats/x.bmp", &encode(&other, ImageFormat::Bmp));
    write(
        root,
        "007.formats/x.tiff",
        &encode(&other, ImageFormat::Tiff),
    );
    write(
        root,
        "007.formats/x.webp",
        &encode(&other, ImageFormat::WebP),
    );
    // Not images, or not whole ones.
    write(root, "008.bad/empty.jpg", b"");
    write(root, "008.bad/RENAME2", b"rename these\n");
    let whole = jpeg(&RgbImage::from_fn(64, 64, |x, y| {
        Rgb([x as u8 * 4, y as u8 * 4, 0])
    }));
    write(root, "008.bad/truncated.jpg", &whole[..whole.len() / 2]);
    let png = encode(
        &image::DynamicImage::ImageRgb8(solid(64, 64, [1, 2, 3])),
        ImageFormat::Png,
    );
    write(root, "008.bad/truncated.png", &png[..png.len() / 2]);
    let mut garbage = vec![0xFF, 0xD8, 0xFF, 0xE0];
    garbage.extend((0..500u32).map(|i| (i * 7919 % 251) as u8));
    write(root, "008.bad/garbage.jpg", &garbage);
    write(root, "008.bad/ok.jpg", &jpeg(&solid(33, 33, [50, 60, 70])));
    // A nested folder (Caltech's 056.dog/greg) and stray top-level entries.
    write(root, "009.nested/top.jpg", &jpeg(&solid(20, 20, [5, 5, 5])));
    write(
        root,
        "009.nested/greg/deep.jpg",
        &jpeg(&solid(20, 20, [6, 6, 6])),
    );
    write(
        root,
        "009.nested/greg/more/deeper.png",
        &encode(&other, ImageFormat::Png),
    );
    write(root, "README.txt", b"not a class");
    fs::create_dir_all(root.join(".hidden")).unwrap();
}

fn jpeg_cmyk(out: &mut Vec<u8>, width: u16, height: u16, cmyk: [u8; 4]) {
    let data: Vec<u8> = (0..usize::from(width) * usize::from(height))
        .flat_map(|_| cmyk)
        .collect();
    jpeg_encoder::Encoder::new(out, 95)
        .encode(&data, width, height, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
}

fn config(input: &Path, output: &Path) -> PrepConfig {
    PrepConfig {
        input: Some(input.to_path_buf()),
        output: Some(output.to_path_buf()),
        size: 32,
        jobs: 2,
        ..PrepConfig::default()
    }
}

/// Every file under `root` with its bytes, to prove the input is never modified.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            // Links and special files are recorded, never followed or opened.
            let kind = fs::symlink_metadata(&path).unwrap().file_type();
            if kind.is_symlink() {
                let target = fs::read_link(&path).unwrap();
                files.insert(path, target.to_string_lossy().as_bytes().to_vec());
            } else if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                files.insert(path.clone(), fs::read(&path).unwrap());
            } else {
                files.insert(path, b"<special>".to_vec());
            }
        }
    }
    files
}

fn pixel(path: &Path, x: u32, y: u32) -> [u8; 3] {
    image::open(path).unwrap().to_rgb8().get_pixel(x, y).0
}

fn close(a: [u8; 3], b: [u8; 3], tolerance: i32) -> bool {
    a.iter()
        .zip(b)
        .all(|(&x, y)| (i32::from(x) - i32::from(y)).abs() <= tolerance)
}

fn find(data: &ProcessedDataset, name_part: &str) -> PathBuf {
    [Split::Train, Split::Val]
        .iter()
        .flat_map(|&split| data.items(split))
        .map(|item| item.path.clone())
        .find(|path| path.to_string_lossy().contains(name_part))
        .unwrap_or_else(|| panic!("no output image for {name_part}"))
}

#[test]
fn messy_folder_is_fully_accounted_for() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("out"));
    messy_dataset(&raw);
    let before = snapshot(&raw);
    let mut cfg = config(&raw, &out);
    cfg.center_crop = false;
    cfg.val_split = 0.0;
    let report = Preprocessor::new(cfg).run().unwrap();
    assert_eq!(snapshot(&raw), before, "the input folder was modified");

    let counts = &report.counts;
    assert_eq!(counts.classes, 9);
    assert_eq!(counts.files, 22);
    assert_eq!(counts.files, counts.written + counts.skipped);
    assert_eq!(counts.written, counts.train + counts.val);
    assert_eq!(counts.skipped, 5);
    assert_eq!(counts.nested_included, 2);
    assert_eq!(
        report.ignored_top_level,
        vec![".hidden".to_string(), "README.txt".to_string()]
    );
    let reasons: BTreeMap<&str, &SkipReason> = report
        .skipped
        .iter()
        .map(|s| (s.path.as_str(), &s.reason))
        .collect();
    assert_eq!(
        reasons["008.bad/empty.jpg"],
        &SkipReason::Decode(DecodeError::Empty)
    );
    assert_eq!(
        reasons["008.bad/RENAME2"],
        &SkipReason::Decode(DecodeError::NotAnImage)
    );
    assert!(matches!(
        reasons["008.bad/truncated.jpg"],
        SkipReason::Decode(DecodeError::Truncated(_))
    ));
    assert!(matches!(
        reasons["008.bad/truncated.png"],
        SkipReason::Decode(DecodeError::Truncated(_) | DecodeError::Corrupt(_))
    ));
    assert!(matches!(
        reasons["008.bad/garbage.jpg"],
        SkipReason::Decode(DecodeError::Corrupt(_) | DecodeError::Truncated(_))
    ));

    let data = ProcessedDataset::open(&out).unwrap();
    assert_eq!(data.items(Split::Train).len(), counts.written);
    for item in data.items(Split::Train) {
        let image = image::open(&item.path).unwrap();
        assert_eq!(
            image.color(),
            image::ColorType::Rgb8,
            "{}",
            item.path.display()
        );
        assert_eq!((image.width(), image.height()), (32, 32));
    }
    assert!(close(
        pixel(&find(&data, "gray__gray.png"), 16, 16),
        [77, 77, 77],
        3
    ));
    assert!(close(
        pixel(&find(&data, "cmyk__cmyk"), 16, 16),
        [255, 0, 0],
        12
    ));
    // Transparent half composited over white, opaque half green.
    assert!(close(
        pixel(&find(&data, "alpha__rgba"), 2, 16),
        [255, 255, 255],
        8
    ));
    assert!(close(
        pixel(&find(&data, "alpha__rgba"), 29, 16),
        [0, 255, 0],
        8
    ));
    assert!(close(
        pixel(&find(&data, "deep__sixteen"), 16, 16),
        [255, 0, 128],
        6
    ));
    assert!(close(
        pixel(&find(&data, "deep__palette"), 16, 16),
        [200, 100, 50],
        6
    ));
    // Upright after EXIF: red on top, blue at the bottom.
    let upright = find(&data, "exif__rotated");
    assert!(
        close(pixel(&upright, 16, 3), [255, 0, 0], 40),
        "{:?}",
        pixel(&upright, 16, 3)
    );
    assert!(
        close(pixel(&upright, 16, 28), [0, 0, 255], 40),
        "{:?}",
        pixel(&upright, 16, 28)
    );
    let formats: Vec<_> = data
        .items(Split::Train)
        .iter()
        .filter(|item| item.path.to_string_lossy().contains("007.formats"))
        .collect();
    assert_eq!(formats.len(), 4);
    for item in formats {
        assert!(close(pixel(&item.path, 16, 16), [9, 99, 199], 10));
    }
    find(&data, "009.nested__greg__more__deeper");
    // The report on disk is the report returned.
    let on_disk: alexnet_prep::PrepReport =
        serde_json::from_str(&fs::read_to_string(out.join("prep-report.json")).unwrap()).unwrap();
    assert_eq!(on_disk.counts, report.counts);
    assert_eq!(on_disk.skipped, report.skipped);
}

#[test]
fn nested_folders_can_be_skipped_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("out"));
    messy_dataset(&raw);
    let mut cfg = config(&raw, &out);
    cfg.nested = NestedDirs::Skip;
    // Some classes hold one image: no validation split.
    cfg.val_split = 0.0;
    let report = Preprocessor::new(cfg).run().unwrap();
    assert_eq!(report.counts.nested_skipped, 2);
    assert_eq!(report.counts.nested_included, 0);
    assert_eq!(
        report.counts.files,
        report.counts.written + report.counts.skipped
    );
    assert!(
        report
            .skipped
            .iter()
            .any(|s| s.path == "009.nested/greg/deep.jpg" && s.reason == SkipReason::NestedFolder)
    );
}

/// A clean dataset with `per_class[i]` images in class i.
fn clean_dataset(root: &Path, per_class: &[usize]) {
    for (class, &count) in per_class.iter().enumerate() {
        for i in 0..count {
            let image = RgbImage::from_fn(48 + (i as u32 % 5) * 7, 40, |x, y| {
                Rgb([
                    (x * 5 + class as u32 * 40) as u8,
                    (y * 6 + i as u32) as u8,
                    (class * 70) as u8,
                ])
            });
            write(
                root,
                &format!("{:03}.c{class}/{i:04}.jpg", class + 1),
                &jpeg(&image),
            );
        }
    }
}

#[test]
fn split_is_stratified_and_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    let per_class = [10, 7, 23, 2, 5];
    clean_dataset(&raw, &per_class);
    let run = |name: &str, seed: u64| {
        let out = dir.path().join(name);
        let mut cfg = config(&raw, &out);
        cfg.seed = seed;
        Preprocessor::new(cfg).run().unwrap();
        (
            fs::read_to_string(out.join("train.csv")).unwrap(),
            fs::read_to_string(out.join("val.csv")).unwrap(),
            ProcessedDataset::open(&out).unwrap(),
        )
    };
    let (train_a, val_a, data) = run("a", 1);
    let (train_b, val_b, _) = run("b", 1);
    let (train_c, _, _) = run("c", 2);
    assert_eq!((&train_a, &val_a), (&train_b, &val_b));
    assert_ne!(train_a, train_c);
    for (class, &count) in per_class.iter().enumerate() {
        let val = data
            .items(Split::Val)
            .iter()
            .filter(|item| item.class == class)
            .count();
        let train = data
            .items(Split::Train)
            .iter()
            .filter(|item| item.class == class)
            .count();
        let rule = SplitRule::Fractions {
            val: 0.2,
            test: 0.0,
        };
        assert_eq!(Ok(val), rule.sizes(count).map(|s| s.val), "class {class}");
        assert_eq!(train + val, count);
        assert_eq!(data.categories()[class].count, count);
        assert_eq!(data.categories()[class].label, format!("c{class}"));
    }
}

#[test]
fn mean_matches_an_independent_computation_over_written_images() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("out"));
    clean_dataset(&raw, &[6, 9, 4]);
    Preprocessor::new(config(&raw, &out)).run().unwrap();
    let data = ProcessedDataset::open(&out).unwrap();
    let (mut sum, mut n) = ([0f64; 3], 0f64);
    for entry in fs::read_dir(out.join("train")).unwrap() {
        let image = image::open(entry.unwrap().path()).unwrap().to_rgb8();
        for p in image.pixels() {
            for c in 0..3 {
                sum[c] += f64::from(p[c]);
            }
            n += 1.0;
        }
    }
    for (c, total) in sum.iter().enumerate() {
        assert!(
            (data.stats().mean[c] - total / n).abs() < 1e-9,
            "{c}: {:?} vs {}",
            data.stats().mean,
            total / n
        );
    }
    assert_eq!(data.stats().pixels as f64, n);
}

#[test]
fn bad_invocations_are_clear_errors_and_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("out"));
    clean_dataset(&raw, &[3, 3]);
    let before = snapshot(&raw);

    let missing = Preprocessor::new(config(&dir.path().join("nope"), &out))
        .run()
        .unwrap_err();
    assert!(matches!(missing, PrepError::MissingInput(_)), "{missing}");

    let inside = Preprocessor::new(config(&raw, &raw.join("processed")))
        .run()
        .unwrap_err();
    assert!(
        matches!(inside, PrepError::OutputInsideInput { .. }),
        "{inside}"
    );
    let same = Preprocessor::new(config(&raw, &raw)).run().unwrap_err();
    assert!(
        matches!(same, PrepError::OutputInsideInput { .. }),
        "{same}"
    );

    let empty_input = dir.path().join("empty");
    fs::create_dir_all(&empty_input).unwrap();
    fs::write(empty_input.join("stray.txt"), b"x").unwrap();
    let none = Preprocessor::new(config(&empty_input, &out))
        .run()
        .unwrap_err();
    assert!(matches!(none, PrepError::NoClasses(_)), "{none}");

    let foreign = dir.path().join("foreign");
    fs::create_dir_all(&foreign).unwrap();
    fs::write(foreign.join("precious.txt"), b"keep me").unwrap();
    let not_empty = Preprocessor::new(config(&raw, &foreign)).run().unwrap_err();
    assert!(
        matches!(not_empty, PrepError::OutputNotEmpty(_)),
        "{not_empty}"
    );
    let refused = Preprocessor::new(config(&raw, &foreign))
        .overwrite(true)
        .run()
        .unwrap_err();
    assert!(matches!(refused, PrepError::NotAPrepOutput(_)), "{refused}");
    assert_eq!(fs::read(foreign.join("precious.txt")).unwrap(), b"keep me");

    // A previous run is only replaced with overwrite, and a user's own file beside it stays.
    Preprocessor::new(config(&raw, &out)).run().unwrap();
    fs::write(out.join("notes.txt"), b"mine").unwrap();
    let again = Preprocessor::new(config(&raw, &out)).run().unwrap_err();
    assert!(matches!(again, PrepError::OutputNotEmpty(_)), "{again}");
    Preprocessor::new(config(&raw, &out))
        .overwrite(true)
        .run()
        .unwrap();
    assert_eq!(fs::read(out.join("notes.txt")).unwrap(), b"mine");
    ProcessedDataset::open(&out).unwrap();

    let mut bad = config(&raw, &dir.path().join("o2"));
    bad.val_split = 1.5;
    let error = Preprocessor::new(bad).run().unwrap_err().to_string();
    assert!(error.contains("prep.val_split"), "{error}");
    assert_eq!(snapshot(&raw), before);
}

fn processed(dir: &Path) -> PathBuf {
    let (raw, out) = (dir.join("raw"), dir.join("out"));
    clean_dataset(&raw, &[3, 3]);
    Preprocessor::new(config(&raw, &out)).run().unwrap();
    out
}

fn open_error(out: &Path) -> String {
    ProcessedDataset::open(out).unwrap_err().to_string()
}

#[test]
fn reader_rejects_malformed_lists_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = processed(dir.path());
    let train = fs::read_to_string(out.join("train.csv")).unwrap();
    let first = train
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    let cases = [
        (
            format!("image,class\n{first},7\n"),
            "class 7 is not in categories.csv",
        ),
        (
            format!("image,class\n{first},x\n"),
            "is not a non-negative integer",
        ),
        ("image,class\nmissing.jpg,0\n".to_string(), "does not exist"),
        (
            "image,class\n../raw/001.c0/0000.jpg,0\n".to_string(),
            "not a plain file name",
        ),
        (
            "image,class\n/etc/passwd,0\n".to_string(),
            "not a plain file name",
        ),
        (
            format!("image,class\nsub/{first},0\n"),
            "not a plain file name",
        ),
        (format!("image,class\n{first}\n"), "expected `image,class`"),
        (format!("file,label\n{first},0\n"), "header is"),
        (
            format!("image,class\n{first},0\n{first},0\n"),
            "listed twice",
        ),
    ];
    for (content, expected) in cases {
        fs::write(out.join("train.csv"), &content).unwrap();
        let error = open_error(&out);
        assert!(error.contains("train.csv:"), "{error}");
        assert!(error.contains(expected), "{content:?}: {error}");
    }
    fs::write(out.join("train.csv"), &train).unwrap();
    ProcessedDataset::open(&out).unwrap();

    fs::write(out.join("categories.csv"), "id,label\n0,a\n5,b\n").unwrap();
    let error = open_error(&out);
    assert!(
        error.contains("categories.csv:3") && error.contains("out of order"),
        "{error}"
    );
    fs::write(out.join("rgb_mean.json"), "{\"mean\": [1, 2]}").unwrap();
    fs::write(out.join("categories.csv"), "id,label\n0,a\n1,b\n").unwrap();
    assert!(open_error(&out).contains("rgb_mean.json"));
    fs::remove_file(out.join("val.csv")).unwrap();
    assert!(open_error(&out).contains("val.csv"));
}

#[test]
fn an_unfinished_run_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let out = processed(dir.path());
    fs::write(
        out.join(alexnet_prep::MARKER_FILE),
        "alexnet-prep: in progress\n",
    )
    .unwrap();
    assert!(open_error(&out).contains("did not finish"));
}

#[test]
fn demo_dataset_is_deterministic_and_preprocesses() {
    let dir = tempfile::tempdir().unwrap();
    let config_demo = alexnet_prep::DemoConfig {
        images_per_class: 6,
        ..Default::default()
    };
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    let summary = alexnet_prep::generate_demo(&a, &config_demo).unwrap();
    alexnet_prep::generate_demo(&b, &config_demo).unwrap();
    assert_eq!(
        snapshot(&a).into_values().collect::<Vec<_>>(),
        snapshot(&b).into_values().collect::<Vec<_>>()
    );
    assert_eq!(summary.images, 60);
    // Reused as it is the second time.
    assert_eq!(
        alexnet_prep::generate_demo(&a, &config_demo).unwrap(),
        summary
    );
    let out = dir.path().join("out");
    let report = Preprocessor::new(config(&a, &out)).run().unwrap();
    assert_eq!(report.counts.classes, 10);
    assert_eq!(report.counts.skipped, 2, "{:?}", report.skipped); // RENAME2 and the truncated JPEG
    assert_eq!(report.counts.nested_included, 2);
    assert_eq!(report.counts.written, 60 + summary.oddities.len() - 2);
    assert_eq!(report.ignored_top_level, vec!["demo.json".to_string()]);
}

/// A folder linking to its own ancestor, a FIFO where an image should be, and a file
/// over the byte limit: each is skipped with its reason, without blocking or reading.
#[cfg(unix)]
#[test]
fn hostile_folders_are_skipped_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    clean_dataset(&raw, &[4, 4]);
    std::os::unix::fs::symlink("..", raw.join("001.c0/loop")).unwrap();
    std::os::unix::fs::symlink("../001.c0", raw.join("002.c1/sideways")).unwrap();
    let fifo = raw.join("002.c1/blocking.jpg");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // Noise does not compress: well above the limit as a JPEG.
    let noise =
        |x: u32, y: u32, c: u32| ((x * 7919 + y * 104_729 + c * 31) % 251) as u8 ^ (x * y) as u8;
    let big = RgbImage::from_fn(400, 300, |x, y| {
        Rgb([noise(x, y, 0), noise(x, y, 1), noise(x, y, 2)])
    });
    let big_bytes = jpeg(&big);
    write(&raw, "001.c0/huge.jpg", &big_bytes);
    let before = snapshot(&raw);
    let out = dir.path().join("out");
    let prep = PrepConfig {
        nested: NestedDirs::Include,
        max_file_bytes: 20_000,
        ..config(&raw, &out)
    };
    assert!(big_bytes.len() > 20_000, "the big image is above the limit");
    let report = Preprocessor::new(prep).run().unwrap();
    let reasons: BTreeMap<String, SkipReason> = report
        .skipped
        .iter()
        .map(|file| (file.path.clone(), file.reason.clone()))
        .collect();
    assert_eq!(
        reasons.get("001.c0/loop"),
        Some(&SkipReason::FolderLoop(".".into())),
        "{reasons:?}"
    );
    assert_eq!(
        reasons.get("002.c1/blocking.jpg"),
        Some(&SkipReason::NotAFile("a FIFO".into())),
        "{reasons:?}"
    );
    assert!(
        matches!(
            reasons.get("001.c0/huge.jpg"),
            Some(SkipReason::TooLarge { limit: 20_000, .. })
        ),
        "{reasons:?}"
    );
    assert_eq!(
        reasons.get("002.c1/sideways/loop"),
        Some(&SkipReason::FolderLoop(".".into())),
        "{reasons:?}"
    );
    // The sideways link is no loop: its four images count again, under 002.c1.
    assert_eq!(report.counts.written, 4 + 4 + 4, "{:?}", report.counts);
    assert_eq!(snapshot(&raw), before, "the input was modified");
}

#[test]
fn a_stop_request_leaves_an_output_marked_incomplete_that_nothing_trusts() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    clean_dataset(&raw, &[6, 6]);
    let out = dir.path().join("out");
    let before = snapshot(&raw);
    let stop = runfiles::StopRequest::new();
    // As SIGTERM would, through `StopRequest::on_signals`, in the examples.
    stop.request(runfiles::stop::SIGTERM);
    let error = Preprocessor::new(config(&raw, &out))
        .stop_on(stop)
        .run()
        .unwrap_err();
    assert!(
        matches!(error, PrepError::Stopped { signal: 15, .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("stopped by SIGTERM") && message.contains("--overwrite"),
        "{message}"
    );
    // The output is marked incomplete: a training run refuses it, a rerun needs
    // --overwrite, and the input is untouched.
    assert!(ProcessedDataset::open(&out).is_err());
    assert!(matches!(
        Preprocessor::new(config(&raw, &out)).run(),
        Err(PrepError::OutputNotEmpty(_))
    ));
    assert_eq!(snapshot(&raw), before);
    Preprocessor::new(config(&raw, &out))
        .overwrite(true)
        .run()
        .unwrap();
    assert_eq!(ProcessedDataset::open(&out).unwrap().num_classes(), 2);
}
