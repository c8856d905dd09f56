//! The shipped config files parse, validate and say what they claim.

use alexnet::train::{ExperimentConfig, optim::SchedulerConfig};

fn load(name: &str) -> ExperimentConfig {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("configs")
        .join(name);
    let config = ExperimentConfig::load(&path).unwrap();
    config.validate().unwrap();
    config
}

#[test]
fn caltech256_is_the_original_setup() {
    let config = load("caltech256.toml");
    assert_eq!(config.prep.size, 256);
    assert_eq!(config.prep.val_split, 0.2);
    assert_eq!(
        (
            config.train.batch_size,
            config.train.epochs,
            config.train.checkpoint_interval
        ),
        (256, 100, 10)
    );
    assert_eq!(
        (
            config.train.lr,
            config.train.momentum,
            config.train.weight_decay
        ),
        (0.01, 0.9, 5e-4)
    );
    assert!(config.train.nesterov && config.train.dampening == 0.0);
    assert!(
        matches!(config.train.scheduler, SchedulerConfig::Plateau { patience: 5, factor, .. } if factor == 0.5)
    );
    assert_eq!(config.model.num_classes, None, "read from categories.csv");
    // The defaults are the same settings: a config file only has to say what differs.
    let defaults = ExperimentConfig::default();
    assert_eq!(config.train.scheduler, defaults.train.scheduler);
    assert_eq!(config.augment, defaults.augment);
    assert_eq!(config.model, defaults.model);
}

#[test]
fn demo_is_small_and_self_contained() {
    let config = load("demo.toml");
    assert!(
        config.train.data.is_none() && config.prep.input.is_none(),
        "the demo builds its own data"
    );
    assert!(config.demo.classes >= 10);
    // A config round-trips through the run directory's config.toml.
    let text = config.to_toml().unwrap();
    assert_eq!(
        ExperimentConfig::from_toml(&text, "config.toml".as_ref()).unwrap(),
        config
    );
}

#[test]
fn caltech256_finetune_is_torchvisions_recipe() {
    use alexnet::{augment::OpConfig, model::Variant};
    let config = load("caltech256-finetune.toml");
    assert_eq!(config.model.variant, Variant::Torchvision);
    assert!(
        config.train.init_from.is_none(),
        "the user passes --init-from"
    );
    let crop = |ops: &[OpConfig]| {
        ops.iter().find_map(|op| match op {
            OpConfig::RandomResizedCrop { size, .. } | OpConfig::CenterCrop { size } => Some(*size),
            _ => None,
        })
    };
    assert_eq!(crop(&config.augment.train), Some([224, 224]));
    assert_eq!(crop(&config.augment.eval), Some([224, 224]));
    assert_eq!(config.prep.size, 256);
}

/// The library's built-in demo config (`ExperimentConfig::demo()`, what the examples
/// fall back to) is configs/demo.toml, byte for byte.
#[test]
fn the_built_in_demo_config_is_configs_demo_toml() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/demo.toml");
    let file = std::fs::read_to_string(&path).expect("configs/demo.toml");
    assert_eq!(file, alexnet::train::config::DEMO_TOML);
    assert_eq!(
        ExperimentConfig::demo(),
        ExperimentConfig::load(&path).unwrap()
    );
    ExperimentConfig::demo().validate().unwrap();
}
