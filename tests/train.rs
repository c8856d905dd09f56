//! End-to-end tests of the training library path on a tiny generated dataset.

mod common;

use std::fs;

use alexnet::{
    augment::{ChannelValues, OpConfig, Scale},
    model::Variant,
    prep::{ProcessedDataset, Split},
    train::{
        ExperimentConfig, TrainError,
        checkpoint::CheckpointStore,
        config::Resume,
        eval::{TestRequest, TestView, test},
        metrics::EpochMetrics,
        optim::{EarlyStoppingConfig, schedule::Metric},
        tfevents::read_event_dir,
        trainer::train,
    },
};
use common::{
    assert_one_point_per_epoch, curve, separable_dataset, serial, tensorboard_graph, tiny_config,
    tiny_dataset,
};

#[test]
fn a_few_epochs_learn() {
    let _serial = serial();
    let run = tempfile::tempdir().unwrap();
    let mut config = tiny_config(run.path());
    // 88 training images in batches of 18: four steps an epoch (drop_last), 24 in all, on
    // four classes of one colour each, which any correct training learns completely.
    config.train.data = Some(separable_dataset().to_path_buf());
    config.train.batch_size = 18;
    config.train.eval_batch_size = 30;
    config.train.epochs = 6;
    config.train.checkpoint_interval = 3;
    let summary = train(&config, &mut |_| true).unwrap();
    assert_eq!(summary.history.len(), 6);
    let curve = curve(&summary.history);
    eprintln!("loss/accuracy and validation per epoch: {curve:?}");
    let first = &summary.history[0];
    let last = &summary.history[5];
    let late = &summary.history[3..];
    let best = |value: fn(&EpochMetrics) -> f64| late.iter().map(value).fold(f64::MIN, f64::max);
    let least = |value: fn(&EpochMetrics) -> f64| late.iter().map(value).fold(f64::MAX, f64::min);
    // Wide margins: measured over seeds 42, 1, 2 (and more, see the closing note), the first
    // epoch's loss is 1.2–1.7 and the last three epochs' lowest 0.000–0.003 with 100 %
    // validation accuracy; chance is a loss of 1.39 and 25 %.
    assert!(
        least(|m| m.train_loss) < 0.1 * first.train_loss,
        "train loss never fell tenfold: {curve:?}"
    );
    assert!(
        best(|m| m.val_top1) == 1.0,
        "never classified all 32 validation images: {curve:?}"
    );
    assert!(
        best(|m| m.train_accuracy) > 0.9,
        "train loss/accuracy per epoch: {curve:?}"
    );
    assert_eq!(summary.parameters, 58_316_868);

    // The run directory holds what the architecture promises.
    let dir = run.path();
    assert!(dir.join("config.toml").is_file());
    let resolved = ExperimentConfig::load(&dir.join("config.toml")).unwrap();
    assert_eq!(resolved.model.num_classes, Some(4));
    assert_eq!(
        fs::read_to_string(dir.join("checkpoints/latest"))
            .unwrap()
            .trim(),
        "epoch-0006"
    );
    assert!(dir.join("checkpoints/best/model.bpk").is_file());
    let events = read_event_dir(&dir.join("tensorboard")).unwrap();
    for tag in [
        "loss/train",
        "loss/val",
        "accuracy/train",
        "accuracy/val",
        "learning_rate",
    ] {
        let steps: Vec<u64> = events.scalars[tag].iter().map(|p| p.0).collect();
        assert_eq!(steps, vec![1, 2, 3, 4, 5, 6], "{tag}");
    }
    assert!(
        events.texts["model/summary"][0]
            .1
            .contains("trainable parameters: 58316868")
    );
    assert_eq!(events.images["augmented_training_images"], vec![0]);
    // The graph: one node per layer, named as the module's layers, as TensorBoard sees it.
    let layers = [
        "input",
        "conv1/conv",
        "conv1/norm",
        "conv1/pool",
        "conv5/pool",
        "avgpool",
        "fc1",
        "norm2",
        "fc3",
        "log_softmax",
    ];
    for layer in layers {
        assert!(
            events.graph_nodes.iter().any(|n| n == layer),
            "{layer}: {:?}",
            events.graph_nodes
        );
    }
    if let Some(nodes) = tensorboard_graph(&dir.join("tensorboard")) {
        assert_eq!(nodes, events.graph_nodes, "TensorBoard's reader");
    }

    // summary.csv: a header and one row an epoch, as in the history.
    let summary_csv = fs::read_to_string(dir.join("summary.csv")).unwrap();
    let rows: Vec<&str> = summary_csv.lines().collect();
    assert_eq!(rows.len(), 7, "{summary_csv}");
    assert!(rows[0].starts_with(
        "epoch,train_loss,train_acc,val_loss,val_top1,val_top5,val_mean_per_class,lr,images_per_s"
    ));
    assert!(rows[6].starts_with("6,"), "{summary_csv}");
    let mean = last.val_mean_per_class.expect("measured every epoch");
    let field: f64 = rows[6].split(',').nth(6).unwrap().parse().unwrap();
    assert_eq!(field, mean, "{summary_csv}");
    assert_eq!(events.scalars["accuracy/val_mean_per_class"].len(), 6);

    // test_caltech's path: the latest checkpoint on the validation split, which chose
    // it: the numbers are labelled val and said not to be a test result.
    let request = TestRequest {
        split: Some(Split::Val),
        ..TestRequest::default()
    };
    let report = test(&config, dir, &request).unwrap();
    assert_eq!(report.images, 32);
    assert_eq!(report.epoch, 6);
    assert!(
        (report.top1 - last.val_top1).abs() < 1e-9,
        "{} vs {}",
        report.top1,
        last.val_top1
    );
    assert!(
        (report.mean_per_class - mean).abs() < 1e-9,
        "{} vs {mean}",
        report.mean_per_class
    );
    assert!(report.top5 >= report.top1);
    assert!(report.selected_on);
    let printed = report.to_string();
    assert!(printed.contains("not a test result"), "{printed}");
    assert!(printed.ends_with(" split=val"), "{printed}");
    let csv = fs::read_to_string(&report.files.per_class_csv).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    // The confusion matrix: rows sum to the class counts, the trace is top-1 × images.
    let matrix = fs::read_to_string(&report.files.confusion_csv).unwrap();
    let cells: Vec<Vec<u64>> = matrix
        .lines()
        .skip(1)
        .map(|line| {
            line.split(',')
                .skip(1)
                .map(|n| n.parse().unwrap())
                .collect()
        })
        .collect();
    let mut class_counts = [0u64; 4];
    for item in ProcessedDataset::open(config.train.data.as_ref().unwrap())
        .unwrap()
        .items(Split::Val)
    {
        class_counts[item.class] += 1;
    }
    let row_sums: Vec<u64> = cells.iter().map(|row| row.iter().sum()).collect();
    assert_eq!(row_sums, class_counts, "{matrix}");
    let trace: u64 = (0..4).map(|c| cells[c][c]).sum();
    assert_eq!(
        trace as f64,
        (report.top1 * report.images as f64).round(),
        "{matrix}"
    );
    let eval_events = read_event_dir(&report.files.tensorboard).unwrap();
    assert_eq!(eval_events.images["confusion_matrix"], vec![6]);
    if report.top1 < 1.0 {
        assert_eq!(eval_events.images["misclassified"], vec![6]);
    }
    let ten_crop = TestRequest {
        split: Some(Split::Val),
        view: Some(TestView::TenCrop),
        ..TestRequest::default()
    };
    let ten = test(&config, dir, &ten_crop).unwrap();
    assert_eq!(ten.images, 32);
    assert!(
        ten.files
            .per_class_csv
            .to_string_lossy()
            .contains("tencrop")
    );
    // No test split in this dataset: asking for it is an error, not val's numbers.
    let asked = TestRequest {
        split: Some(Split::Test),
        ..TestRequest::default()
    };
    let error = test(&config, dir, &asked).unwrap_err().to_string();
    assert!(error.contains("no test split"), "{error}");
}

#[test]
fn kill_and_resume_equals_an_uninterrupted_run() {
    let _serial = serial();
    let straight_dir = tempfile::tempdir().unwrap();
    let mut straight = tiny_config(straight_dir.path());
    straight.train.epochs = 4;
    straight.train.checkpoint_interval = 2;
    let reference = train(&straight, &mut |_| true).unwrap();

    let resumed_dir = tempfile::tempdir().unwrap();
    let mut config = tiny_config(resumed_dir.path());
    config.train.epochs = 4;
    config.train.checkpoint_interval = 2;
    // "Killed" right after epoch 3: its curve points are written, its checkpoint is not.
    let first = train(&config, &mut |metrics| metrics.epoch < 3).unwrap();
    assert!(first.interrupted);
    assert_eq!(
        fs::read_to_string(resumed_dir.path().join("checkpoints/latest"))
            .unwrap()
            .trim(),
        "epoch-0002"
    );
    let summary_epochs = || -> Vec<String> {
        let text = fs::read_to_string(resumed_dir.path().join("summary.csv")).unwrap();
        text.lines()
            .skip(1)
            .map(|line| line.split(',').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(summary_epochs(), ["1", "2", "3"]);
    let second = train(&config, &mut |_| true).unwrap();
    // summary.csv: one row an epoch, the killed run's epoch 3 replaced.
    assert_eq!(summary_epochs(), ["1", "2", "3", "4"]);
    let summary = fs::read_to_string(resumed_dir.path().join("summary.csv")).unwrap();
    let row3: f64 = summary
        .lines()
        .nth(3)
        .unwrap()
        .split(',')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(row3, second.history[2].train_loss, "{summary}");
    assert_eq!(second.history.len(), 4);
    for (a, b) in reference.history.iter().zip(&second.history) {
        for (name, x, y) in [
            ("train loss", a.train_loss, b.train_loss),
            ("val loss", a.val_loss, b.val_loss),
        ] {
            let relative = (x - y).abs() / x.abs().max(1e-12);
            assert!(relative < 1e-3, "epoch {} {name}: {x} vs {y}", a.epoch);
        }
        assert_eq!(a.train_accuracy, b.train_accuracy, "epoch {}", a.epoch);
        assert_eq!(a.lr, b.lr);
    }
    // One point per epoch per tag: the interrupted run's epoch-3 points were purged.
    let events = assert_one_point_per_epoch(&resumed_dir.path().join("tensorboard"), 4);
    assert_eq!(events.session_starts, vec![0, 3]);
    let resumed_loss = events.scalars["loss/train"][2].1;
    assert!((f64::from(resumed_loss) - second.history[2].train_loss).abs() < 1e-5);
}

#[test]
fn a_damaged_latest_checkpoint_falls_back_to_the_previous_one() {
    let _serial = serial();
    let run = tempfile::tempdir().unwrap();
    let mut config = tiny_config(run.path());
    config.train.epochs = 2;
    train(&config, &mut |_| true).unwrap();
    let latest = run.path().join("checkpoints/epoch-0002/model.bpk");
    let mut bytes = fs::read(&latest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xFF;
    fs::write(&latest, bytes).unwrap();
    let store = CheckpointStore::new(run.path(), 3);
    let checkpoint = store.load_latest().unwrap().expect("a checkpoint");
    assert_eq!(checkpoint.state.epoch, 1);
    // Nothing usable at all is an error, never a silent restart.
    fs::remove_dir_all(run.path().join("checkpoints/epoch-0001")).unwrap();
    let error = store.load_latest().err().expect("an error").to_string();
    assert!(
        error.contains("no usable checkpoint") && error.contains("damaged"),
        "{error}"
    );
    let error = train(&config, &mut |_| true).unwrap_err().to_string();
    assert!(error.contains("no usable checkpoint"), "{error}");
}

fn error_of(config: &ExperimentConfig) -> String {
    train(config, &mut |_| true).unwrap_err().to_string()
}

#[test]
fn bad_inputs_are_one_line_errors() {
    let _serial = serial();
    let run = tempfile::tempdir().unwrap();
    let base = tiny_config(run.path());

    let unknown = ExperimentConfig::from_toml("[train]\nepocs = 3\n", "x.toml".as_ref())
        .unwrap_err()
        .to_string();
    assert!(
        unknown.contains("x.toml") && unknown.contains("epocs"),
        "{unknown}"
    );
    let wrong_type = ExperimentConfig::from_toml("[train]\nepochs = \"many\"\n", "x.toml".as_ref())
        .unwrap_err()
        .to_string();
    assert!(wrong_type.contains("epochs"), "{wrong_type}");
    assert!(!wrong_type.contains('\n'));

    let mut missing = base.clone();
    missing.train.data = Some(run.path().join("nope"));
    assert!(error_of(&missing).contains("nope"));
    let mut not_prepared = base.clone();
    not_prepared.train.data = Some(run.path().to_path_buf());
    assert!(
        error_of(&not_prepared).contains("not a processed dataset"),
        "{}",
        error_of(&not_prepared)
    );

    let mut classes = base.clone();
    classes.model.num_classes = Some(256);
    let error = error_of(&classes);
    assert!(
        error.contains("model.num_classes") && error.contains("lists 3 classes"),
        "{error}"
    );

    let mut zero = base.clone();
    zero.train.batch_size = 0;
    assert!(error_of(&zero).contains("train.batch_size"));
    let mut too_big = base.clone();
    too_big.train.batch_size = 1000;
    let error = error_of(&too_big);
    assert!(
        error.contains("train.batch_size") && error.contains("27 training images"),
        "{error}"
    );

    let mut no_weights = base.clone();
    no_weights.train.init_from = Some(run.path().join("absent.pth"));
    let error = error_of(&no_weights);
    assert!(
        error.contains("train.init_from") && error.contains("absent.pth"),
        "{error}"
    );
    let mut fresh_without_file = base.clone();
    fresh_without_file.train.new_classifier = true;
    let error = error_of(&fresh_without_file);
    assert!(error.contains("train.new_classifier"), "{error}");
    let mut not_weights = base.clone();
    let bogus = run.path().join("bogus.pth");
    fs::write(&bogus, b"no tensors here").unwrap();
    not_weights.train.init_from = Some(bogus.clone());
    let error = error_of(&not_weights);
    assert!(error.contains("bogus.pth"), "{error}");
    fs::remove_file(&bogus).unwrap();

    for error in [
        error_of(&missing),
        error_of(&classes),
        error_of(&too_big),
        error_of(&no_weights),
        error_of(&fresh_without_file),
    ] {
        assert!(!error.contains('\n'), "{error}");
    }
    // None of the failed starts wrote anything.
    assert!(!run.path().join("checkpoints").exists());
    let _ = tiny_dataset();
}

#[test]
fn a_checkpoint_of_another_model_is_refused() {
    let _serial = serial();
    let run = tempfile::tempdir().unwrap();
    let mut config = tiny_config(run.path());
    config.train.epochs = 1;
    train(&config, &mut |_| true).unwrap();
    let before = fs::read(run.path().join("checkpoints/epoch-0001/model.bpk")).unwrap();
    let mut other = config.clone();
    other.train.epochs = 2;
    other.model.variant = Variant::Paper;
    let error = error_of(&other);
    assert!(
        error.contains("different model config") && error.contains("variant"),
        "{error}"
    );
    other.model.variant = Variant::Seed;
    other.train.resume = Resume::Never;
    let error = error_of(&other);
    assert!(
        error.contains("train.resume") && error.contains("already holds checkpoints"),
        "{error}"
    );
    assert_eq!(
        fs::read(run.path().join("checkpoints/epoch-0001/model.bpk")).unwrap(),
        before
    );
}

#[test]
fn a_diverging_loss_stops_and_keeps_the_last_good_checkpoint() {
    let _serial = serial();
    let run = tempfile::tempdir().unwrap();
    let mut config = tiny_config(run.path());
    config.train.epochs = 1;
    train(&config, &mut |_| true).unwrap();
    // Resumed with a normalization that overflows f32: the very next batch is infinite.
    let mut wild = config.clone();
    wild.train.epochs = 3;
    wild.augment.train[0] = OpConfig::Normalize {
        mean: ChannelValues::Dataset,
        std: Some(ChannelValues::Values([1e-300; 3])),
        scale: Scale::Byte,
    };
    match train(&wild, &mut |_| true) {
        Err(error @ TrainError::NonFinite { .. }) => {
            let text = error.to_string();
            let TrainError::NonFinite {
                epoch,
                batch,
                last_checkpoint,
                ..
            } = error
            else {
                unreachable!()
            };
            assert_eq!((epoch, batch), (2, 1), "{text}");
            assert!(text.contains("epoch 2, batch 1"), "{text}");
            assert!(last_checkpoint.ends_with("epoch-0001"), "{last_checkpoint}");
        }
        other => panic!("expected a non-finite loss error, got {other:?}"),
    }
    assert_eq!(
        fs::read_to_string(run.path().join("checkpoints/latest"))
            .unwrap()
            .trim(),
        "epoch-0001"
    );
    CheckpointStore::load(&run.path().join("checkpoints/epoch-0001")).unwrap();
}

/// The preview of augmented training images is drawn from epoch 1's shuffled order: on
/// a dataset listed class by class (24 red images first) its 16 tiles show several of
/// the four colours, not only the first class's.
#[test]
fn the_preview_shows_a_shuffled_batch() {
    let _serial = serial();
    let run = tempfile::tempdir().unwrap();
    let mut config = tiny_config(run.path());
    config.train.data = Some(separable_dataset().to_path_buf());
    config.train.epochs = 1;
    config.train.preview_images = 16;
    train(&config, &mut |_| true).unwrap();
    let events = read_event_dir(&run.path().join("tensorboard")).unwrap();
    let (step, png) = &events.encoded_images["augmented_training_images"][0];
    assert_eq!(*step, 0);
    let grid = image::load_from_memory(png).unwrap().to_rgb8();
    // 4 × 4 tiles of 67 × 67 with 2-pixel gaps.
    assert_eq!(grid.dimensions(), (4 * 69 - 2, 4 * 69 - 2));
    let mut colours = std::collections::BTreeSet::new();
    for k in 0..16u32 {
        let (x0, y0) = ((k % 4) * 69, (k / 4) * 69);
        let mut sum = [0u64; 3];
        for y in y0..y0 + 67 {
            for x in x0..x0 + 67 {
                for (c, value) in grid.get_pixel(x, y).0.iter().enumerate() {
                    sum[c] += u64::from(*value);
                }
            }
        }
        // Which channels are bright: red, green, blue or red + green (yellow).
        let bright: Vec<bool> = sum.iter().map(|&s| s > 120 * 67 * 67).collect();
        colours.insert(bright);
    }
    assert!(
        colours.len() >= 2,
        "every tile has the colour {colours:?}: the preview shows one class"
    );
}

/// `train.early_stopping` ends the run when its metric stops improving, checkpoints the
/// epoch it stops on (not a checkpoint-interval epoch here), keeps best/, and a second
/// run finds the training done.
#[test]
fn early_stopping_ends_the_run_and_a_resume_finds_it_done() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut config = tiny_config(dir.path());
    config.train.epochs = 6;
    config.train.checkpoint_interval = 5;
    // No epoch can improve on the first by a million: the run stops after epoch 2.
    config.train.early_stopping = Some(EarlyStoppingConfig {
        metric: Metric::ValLoss,
        mode: None,
        patience: 1,
        min_delta: 1e6,
    });
    let summary = train(&config, &mut |_| true).unwrap();
    assert_eq!(summary.history.len(), 2);
    let stop = summary.stopped_early.expect("stopped early");
    assert_eq!((stop.epoch, stop.best.1), (2, 1));
    assert!(
        stop.to_string().contains("val_loss has not improved"),
        "{stop}"
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("checkpoints/latest"))
            .unwrap()
            .trim(),
        "epoch-0002"
    );
    assert!(dir.path().join("checkpoints/best/model.bpk").is_file());
    let again = train(&config, &mut |_| true).unwrap();
    assert_eq!(again.history.len(), 2, "no epoch after the stop");
    assert_eq!(again.stopped_early.map(|s| s.epoch), Some(2));
}
