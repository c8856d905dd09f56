//! PyTorch in and out: weights written by PyTorch (torchvision's AlexNet, the original's
//! model.py and its checkpoints) load here and give PyTorch's outputs; a model trained
//! here and exported loads in PyTorch, strictly, with the same outputs; fine-tuning
//! starts from a file's weights; the label-smoothed loss is `F.cross_entropy`'s.
//! PyTorch's side is tests/pytorch_interop.py, run by the
//! Python in `ALEXNET_TORCH_PYTHON` (torch, torchvision, safetensors); without it these
//! tests say so and pass, unless `ALEXNET_REQUIRE_TORCH` is set, as CI does.

mod common;

use std::path::{Path, PathBuf};

use alexnet::{
    augment::{ChannelValues, OpConfig, Scale},
    burn::{
        module::{Module, ModuleVisitor, Param},
        nn::{Linear, LinearConfig},
        optim::GradientsParams,
        prelude::*,
        tensor::{Distribution, FloatDType, activation::log_softmax},
    },
    model::{AlexNet, AlexNetConfig, Variant},
    train::{
        checkpoint::CheckpointStore,
        commands::export::{ExportCommand, categories_path, export_command},
        config::TrainConfig,
        device::parse_device,
        optim::OptimizerKind,
        step::{GradientOptions, batch_gradients, clip_grad_norm, gradient_norm, training_loss},
        trainer::train,
    },
};
use common::{curve, separable_dataset, serial, tiny_config};

/// The Python with torch, or `None` (with a note) when not configured.
fn torch_python() -> Option<PathBuf> {
    let Some(python) = std::env::var_os("ALEXNET_TORCH_PYTHON") else {
        assert!(
            std::env::var_os("ALEXNET_REQUIRE_TORCH").is_none(),
            "ALEXNET_REQUIRE_TORCH is set but ALEXNET_TORCH_PYTHON is not"
        );
        eprintln!("note: ALEXNET_TORCH_PYTHON unset; the PyTorch interop tests did not run");
        return None;
    };
    Some(PathBuf::from(python))
}

/// Runs tests/pytorch_interop.py with `args`; its stdout.
fn interop(python: &Path, args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pytorch_interop.py");
    let output = std::process::Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .expect("run tests/pytorch_interop.py");
    assert!(
        output.status.success(),
        "pytorch_interop.py {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// PyTorch writes seeded weights of `variant` and its outputs on a seeded input;
/// `extra` may ask for He-initialized weights (`["he"]`, see the script).
fn pytorch_weights_with(
    python: &Path,
    variant: &str,
    classes: usize,
    side: usize,
    extra: &[&str],
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let (classes, side) = (classes.to_string(), side.to_string());
    let mut args = vec!["write", variant, &classes, &side, "3", out];
    args.extend_from_slice(extra);
    interop(python, &args);
    dir
}

fn pytorch_weights(python: &Path, variant: &str, classes: usize, side: usize) -> tempfile::TempDir {
    pytorch_weights_with(python, variant, classes, side, &[])
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn write_f32(path: &Path, values: &[f32]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

/// Eval-mode log-probabilities of `model` for `[2, 3, side, side]` images.
fn forward(model: &AlexNet, input: &[f32], side: usize, device: &Device) -> Vec<f32> {
    let images = Tensor::from_data(TensorData::new(input.to_vec(), [2, 3, side, side]), device);
    let model = model.clone().valid();
    let output = model.forward(images, FloatDType::F32).unwrap();
    output.into_data().try_to_vec::<f32>().unwrap()
}

/// The largest difference relative to the largest magnitude of `expected`.
fn relative_difference(ours: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(ours.len(), expected.len());
    let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = ours
        .iter()
        .zip(expected)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(worst.is_finite(), "non-finite outputs");
    worst / scale
}

/// The devices the outputs are compared on: flex, and libtorch's CPU where built.
fn devices() -> Vec<Device> {
    let mut specs = vec!["flex"];
    if cfg!(feature = "tch") {
        specs.push("tch-cpu");
    }
    specs
        .into_iter()
        .map(|spec| parse_device(spec).unwrap())
        .collect()
}

fn assert_same_outputs(config: &AlexNetConfig, dir: &Path, file: &str, side: usize) {
    let input = read_f32(&dir.join("input.f32"));
    let expected = read_f32(&dir.join("expected.f32"));
    for device in devices() {
        let model = config
            .init(&device)
            .unwrap()
            .load_pytorch(&dir.join(file), false)
            .unwrap();
        let difference = relative_difference(&forward(&model, &input, side, &device), &expected);
        eprintln!("{file} on {device:?}: relative difference {difference:e}");
        assert!(difference <= 1e-4, "{file} on {device:?}: {difference}");
    }
}

#[test]
fn torchvision_weights_give_pytorchs_outputs() {
    let Some(python) = torch_python() else { return };
    // 224, where the adaptive pool is the identity, and 99, where it spreads 2×2 to 6×6.
    for side in [224, 99] {
        let dir = pytorch_weights(&python, "torchvision", 10, side);
        let config = AlexNetConfig::torchvision(10);
        assert_same_outputs(&config, dir.path(), "weights.pth", side);
        assert_same_outputs(&config, dir.path(), "weights.safetensors", side);
    }
}

#[test]
fn the_originals_weights_and_checkpoints_give_pytorchs_outputs() {
    let Some(python) = torch_python() else { return };
    let dir = pytorch_weights(&python, "original", 10, 227);
    let config = AlexNetConfig::seed(10);
    // A state_dict, and train.py's checkpoint dict (epoch, model_state_dict, optimizer…).
    assert_same_outputs(&config, dir.path(), "weights.pth", 227);
    assert_same_outputs(&config, dir.path(), "checkpoint.pth", 227);
}

fn load_error(config: AlexNetConfig, file: &Path, new_classifier: bool) -> String {
    let device = Device::flex();
    let error = config
        .init(&device)
        .unwrap()
        .load_pytorch(file, new_classifier)
        .expect_err("the load should fail")
        .to_string();
    assert!(!error.contains('\n'), "not one line: {error}");
    error
}

fn weights_of<const D: usize>(param: &alexnet::burn::module::Param<Tensor<D>>) -> Vec<f32> {
    param.val().into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn a_file_that_does_not_fit_is_a_one_line_error_naming_the_key() {
    let Some(python) = torch_python() else { return };
    let dir = pytorch_weights(&python, "torchvision", 1000, 63);
    let file = dir.path().join("weights.pth");
    let error = load_error(AlexNetConfig::torchvision(10), &file, false);
    assert!(
        error.contains("`classifier.6.weight`")
            && error.contains("[1000, 4096]")
            && error.contains("[10, 4096]")
            && error.contains("new_classifier"),
        "{error}"
    );
    let error = load_error(AlexNetConfig::seed(1000), &file, false);
    assert!(
        error.contains("is missing") && error.contains("`model."),
        "{error}"
    );
    let garbage = dir.path().join("garbage.pth");
    std::fs::write(&garbage, b"not weights at all").unwrap();
    let error = load_error(AlexNetConfig::torchvision(10), &garbage, false);
    assert!(
        error.contains("garbage.pth") && error.contains("neither"),
        "{error}"
    );

    // With a new classifier, every other layer is the file's and the last one is fresh.
    let device = Device::flex();
    let full = AlexNetConfig::torchvision(1000)
        .init(&device)
        .unwrap()
        .load_pytorch(&file, false)
        .unwrap();
    let tuned = AlexNetConfig::torchvision(10)
        .init(&device)
        .unwrap()
        .load_pytorch(&file, true)
        .unwrap();
    assert_eq!(
        weights_of(&tuned.conv1.conv.weight),
        weights_of(&full.conv1.conv.weight)
    );
    assert_eq!(
        weights_of(&tuned.conv5.conv.weight),
        weights_of(&full.conv5.conv.weight)
    );
    assert_eq!(weights_of(&tuned.fc2.weight), weights_of(&full.fc2.weight));
    assert_eq!(tuned.fc3.weight.dims(), [10, 4096]);
    let fresh = weights_of(&tuned.fc3.weight);
    assert_ne!(fresh[..4096], weights_of(&full.fc3.weight)[..4096]);
}

/// A random `[2, 3, side, side]` input, our outputs for it from `model`, and PyTorch's
/// check of `weights` against them.
fn assert_pytorch_agrees(
    python: &Path,
    model: &AlexNet,
    weights: &Path,
    variant: &str,
    side: usize,
) {
    let device = Device::flex();
    let input: Vec<f32> = Tensor::<1>::random(
        [2 * 3 * side * side],
        alexnet::burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    )
    .into_data()
    .try_to_vec::<f32>()
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (input_file, output_file) = (dir.path().join("input.f32"), dir.path().join("ours.f32"));
    write_f32(&input_file, &input);
    write_f32(&output_file, &forward(model, &input, side, &device));
    let classes = model.num_classes().to_string();
    let reported = interop(
        python,
        &[
            "check",
            variant,
            &classes,
            &side.to_string(),
            weights.to_str().unwrap(),
            input_file.to_str().unwrap(),
            output_file.to_str().unwrap(),
        ],
    );
    let difference: f64 = reported.trim().parse().expect("a number");
    eprintln!(
        "PyTorch's outputs from {}: relative difference {difference:e}",
        weights.display()
    );
    assert!(difference <= 1e-4, "{difference}");
}

/// The run's latest model, and its export to `run/model.safetensors`.
fn export_run(run: &Path) -> (AlexNet, PathBuf) {
    let out = run.join("model.safetensors");
    let report = export_command(&ExportCommand {
        run_dir: Some(run.to_path_buf()),
        checkpoint: None,
        out: out.clone(),
    })
    .unwrap();
    assert!(report.epoch >= 1);
    let loaded = CheckpointStore::new(run, 1)
        .load_given_or_latest(None)
        .unwrap();
    let model = loaded
        .load_model(loaded.state.model.init(&Device::flex()).unwrap())
        .unwrap();
    let labels = std::fs::read_to_string(categories_path(&out)).unwrap();
    assert_eq!(labels.lines().collect::<Vec<_>>(), loaded.state.classes);
    // Nothing is overwritten.
    let again = export_command(&ExportCommand {
        run_dir: Some(run.to_path_buf()),
        checkpoint: None,
        out: out.clone(),
    })
    .expect_err("a second export to the same file is refused")
    .to_string();
    assert!(again.contains("already exists"), "{again}");
    (model, out)
}

#[test]
fn a_model_trained_here_loads_in_pytorch_with_the_same_outputs() {
    let Some(python) = torch_python() else { return };
    let _serial = serial();
    let run = tempfile::tempdir().unwrap();
    let mut config = tiny_config(run.path());
    config.train.epochs = 1;
    train(&config, &mut |_| true).unwrap();
    let (model, weights) = export_run(run.path());
    assert_eq!(model.config().variant, Variant::Seed);
    // 227: the original's network has no adaptive pool, so it takes 227 inputs only.
    assert_pytorch_agrees(&python, &model, &weights, "original", 227);
}

#[test]
fn fine_tuning_from_a_1000_class_torchvision_file_learns() {
    let Some(python) = torch_python() else { return };
    let _serial = serial();
    let weights = pytorch_weights_with(&python, "torchvision", 1000, 63, &["he"]);
    let run = tempfile::tempdir().unwrap();
    let mut config = tiny_config(run.path());
    config.model = AlexNetConfig::torchvision(4);
    config.model.num_classes = None;
    let normalize = OpConfig::Normalize {
        mean: ChannelValues::Values([0.485, 0.456, 0.406]),
        std: Some(ChannelValues::Values([0.229, 0.224, 0.225])),
        scale: Scale::Unit,
    };
    config.augment.train = vec![
        normalize.clone(),
        OpConfig::HorizontalFlip { p: 0.5 },
        OpConfig::RandomCrop { size: [67, 67] },
    ];
    config.augment.eval = vec![normalize, OpConfig::CenterCrop { size: [67, 67] }];
    config.train.data = Some(separable_dataset().to_path_buf());
    config.train.batch_size = 18;
    config.train.eval_batch_size = 30;
    config.train.epochs = 6;
    // He-initialized features give large first logits; a small rate keeps SGD stable.
    config.train.lr = 0.0005;
    config.train.checkpoint_interval = 6;
    config.train.init_from = Some(weights.path().join("weights.pth"));
    config.train.new_classifier = true;
    let summary = train(&config, &mut |_| true).unwrap();
    let curve = curve(&summary.history);
    eprintln!("loss/accuracy and validation per epoch: {curve:?}");
    let first = &summary.history[0];
    let late = &summary.history[3..];
    assert!(
        late.iter().map(|m| m.train_loss).fold(f64::MAX, f64::min) < 0.2 * first.train_loss,
        "train loss never fell fivefold: {curve:?}"
    );
    assert!(
        late.iter().map(|m| m.val_top1).fold(f64::MIN, f64::max) >= 0.9,
        "validation never reached 90 %: {curve:?}"
    );
    // A resumed run continues from its checkpoint; init_from is for new runs only.
    config.train.epochs = 7;
    let resumed = train(&config, &mut |_| true).unwrap();
    assert_eq!(resumed.history.len(), 7);
    assert_eq!(resumed.history[..6], summary.history[..]);
    assert!(
        resumed.history[6].train_loss < 0.5 * first.train_loss,
        "the resumed epoch started again from the file: {:?}",
        common::curve(&resumed.history)
    );
    let (model, exported) = export_run(run.path());
    assert_eq!(model.num_classes(), 4);
    assert_pytorch_agrees(&python, &model, &exported, "torchvision", 67);
}

/// The training loss with label smoothing (`train.label_smoothing`) is PyTorch's
/// `F.cross_entropy(logits, targets, label_smoothing=ε)` of the logits our log-softmax
/// takes, in value and in gradient (PyTorch computing in f64).
#[test]
fn label_smoothing_is_torch_cross_entropy_with_label_smoothing() {
    let Some(python) = torch_python() else { return };
    let device = Device::flex().autodiff();
    device.seed(11);
    let (rows, classes) = (6, 5);
    let logits = Tensor::<2>::random([rows, classes], Distribution::Normal(0.0, 3.0), &device);
    let values = logits.to_data().try_to_vec::<f32>().unwrap();
    let targets = [0usize, 4, 2, 2, 1, 3];
    let dir = tempfile::tempdir().unwrap();
    write_f32(&dir.path().join("logits.f32"), &values);
    let target_list: Vec<String> = targets.iter().map(usize::to_string).collect();
    for epsilon in [0.0, 0.1, 0.3] {
        let logits =
            Tensor::<2>::from_data(TensorData::new(values.clone(), [rows, classes]), &device)
                .require_grad();
        let target_ids: Vec<i64> = targets.iter().map(|&t| t as i64).collect();
        let target_tensor =
            Tensor::<1, Int>::from_data(TensorData::new(target_ids, [rows]), &device);
        let loss = training_loss(log_softmax(logits.clone(), 1), target_tensor, epsilon);
        let ours = loss.clone().into_scalar::<f32>();
        let grads = loss.backward();
        let grad = logits
            .grad(&grads)
            .unwrap()
            .to_data()
            .try_to_vec::<f32>()
            .unwrap();
        let grad_file = dir.path().join("grad.f32");
        let theirs: f64 = interop(
            &python,
            &[
                "loss",
                &epsilon.to_string(),
                &rows.to_string(),
                &classes.to_string(),
                dir.path().join("logits.f32").to_str().unwrap(),
                &target_list.join(","),
                grad_file.to_str().unwrap(),
            ],
        )
        .trim()
        .parse()
        .unwrap();
        assert!(
            (f64::from(ours) - theirs).abs() <= 1e-6 * theirs.abs().max(1.0),
            "ε {epsilon}: loss {ours}, PyTorch {theirs}"
        );
        let difference = relative_difference(&grad, &read_f32(&grad_file));
        assert!(
            difference < 1e-5,
            "ε {epsilon}: gradient differs by {difference}"
        );
    }
}

/// Every gradient of `model` in `grads`, flattened in the model's order, with each one's
/// length.
fn flat_gradients(model: &AlexNet, grads: &GradientsParams) -> (Vec<f32>, Vec<usize>) {
    struct Flatten<'a> {
        grads: &'a GradientsParams,
        values: Vec<f32>,
        lengths: Vec<usize>,
    }
    impl ModuleVisitor for Flatten<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = self.grads.get::<D>(param.id) {
                let values = grad.into_data().try_to_vec::<f32>().unwrap();
                self.lengths.push(values.len());
                self.values.extend(values);
            }
        }
    }
    let mut flatten = Flatten {
        grads,
        values: Vec::new(),
        lengths: Vec::new(),
    };
    model.visit(&mut flatten);
    (flatten.values, flatten.lengths)
}

/// `train.clip_grad_norm` is PyTorch's `clip_grad_norm_`: the same norm and the same
/// clipped gradients of the post's network, clipping (a limit of 0.3 × the norm) or not
/// (10 ×). PyTorch computes in float64 here: its float32 norm on the CPU is off by
/// about 1e-3 over the 37 M values of fc1 (ours adds each gradient's sum of squares in
/// f64 and is within 1e-6).
#[test]
fn gradient_clipping_is_torch_clip_grad_norm() {
    let Some(python) = torch_python() else { return };
    let device = Device::flex().autodiff();
    device.seed(5);
    let model = AlexNetConfig::seed(3).init(&device).unwrap();
    let images = Tensor::<4>::random([4, 3, 67, 67], Distribution::Normal(0.0, 40.0), &device);
    let targets = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 1], [4]), &device);
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("grads.f32"), dir.path().join("clipped.f32"));
    for factor in [0.3, 10.0] {
        // The same gradients each time: dropout's draws start from the same seed.
        device.seed(9);
        let grads = batch_gradients(
            &model,
            std::slice::from_ref(&device),
            images.clone(),
            targets.clone(),
            &GradientOptions::new(FloatDType::F32),
        )
        .unwrap()
        .grads;
        let limit = factor * gradient_norm(&model, &grads).unwrap();
        let (values, lengths) = flat_gradients(&model, &grads);
        write_f32(&input, &values);
        let lengths: Vec<String> = lengths.iter().map(usize::to_string).collect();
        let theirs: f64 = interop(
            &python,
            &[
                "clip",
                &limit.to_string(),
                &lengths.join(","),
                input.to_str().unwrap(),
                output.to_str().unwrap(),
            ],
        )
        .trim()
        .parse()
        .unwrap();
        let (clipped, ours) = clip_grad_norm(&model, grads, limit).unwrap();
        assert!(
            (ours - theirs).abs() <= 1e-6 * theirs,
            "norm {ours}, PyTorch {theirs}"
        );
        let difference =
            relative_difference(&flat_gradients(&model, &clipped).0, &read_f32(&output));
        assert!(
            difference < 1e-6,
            "limit {limit}: clipped gradients differ by {difference}"
        );
    }
}

/// The values of a linear layer's weight and bias, one after the other.
fn linear_values(layer: &Linear) -> Vec<f32> {
    let mut values = layer.weight.val().into_data().try_to_vec::<f32>().unwrap();
    if let Some(bias) = &layer.bias {
        values.extend(bias.val().into_data().try_to_vec::<f32>().unwrap());
    }
    values
}

/// `train.optimizer = "adamw"` is `torch.optim.AdamW`: five steps on a layer's weight
/// and bias with the same gradients end at the same parameters.
#[test]
fn adamw_takes_torch_adamw_steps() {
    let Some(python) = torch_python() else { return };
    let device = Device::flex().autodiff();
    device.seed(21);
    let mut layer = LinearConfig::new(6, 4).init(&device);
    let start = linear_values(&layer);
    let config = TrainConfig {
        optimizer: OptimizerKind::Adamw,
        betas: [0.8, 0.99],
        eps: 1e-6,
        weight_decay: 0.05,
        ..TrainConfig::default()
    };
    config.validate().unwrap();
    let mut optimizer = config.build_optimizer();
    let (lr, steps) = (0.01, 5);
    let mut all_grads = Vec::new();
    for _ in 0..steps {
        let weight = Tensor::<2>::random([6, 4], Distribution::Normal(0.0, 1.0), &device);
        let bias = Tensor::<1>::random([4], Distribution::Normal(0.0, 1.0), &device);
        all_grads.extend(weight.to_data().try_to_vec::<f32>().unwrap());
        all_grads.extend(bias.to_data().try_to_vec::<f32>().unwrap());
        let mut grads = GradientsParams::new();
        grads.register(layer.weight.id, weight);
        grads.register(layer.bias.as_ref().unwrap().id, bias);
        layer = optimizer.step(lr, layer, grads);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    write_f32(Path::new(&path("params.f32")), &start);
    write_f32(Path::new(&path("grads.f32")), &all_grads);
    interop(
        &python,
        &[
            "adamw",
            &lr.to_string(),
            "0.8",
            "0.99",
            "1e-6",
            "0.05",
            &steps.to_string(),
            "24,4",
            &path("params.f32"),
            &path("grads.f32"),
            &path("after.f32"),
        ],
    );
    let theirs = read_f32(Path::new(&path("after.f32")));
    let ours = linear_values(&layer);
    let difference = relative_difference(&ours, &theirs);
    assert!(difference < 1e-6, "parameters differ by {difference}");
    // And they moved: five steps of 0.01 each.
    assert!(relative_difference(&start, &theirs) > 1e-3);
}
