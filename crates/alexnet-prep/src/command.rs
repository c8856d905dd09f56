//! What the `preprocess_caltech` example calls: a dataset, or the built-in demo,
//! preprocessed as the config and the command line say.

use crate::{
    config::{PrepConfig, PrepOverrides},
    demo::{DemoConfig, DemoPrepOptions, DemoSummary, demo_input},
    error::{PrepError, Result},
    report::PrepReport,
};

/// What [`preprocess_command`] did.
#[derive(Debug, Clone)]
pub struct PreprocessOutcome {
    /// The preprocessing report.
    pub report: PrepReport,
    /// The demo generated first, with `--demo`.
    pub demo: Option<DemoSummary>,
}

/// Preprocesses with `config` as `overrides` change it. With `demo`, the demo dataset is
/// generated first and is the input (`overrides.input` must then be unset), written to
/// `<demo.dir>/processed` unless an output is given. `options.reuse` is ignored: a
/// command always preprocesses.
pub fn preprocess_command(
    config: &PrepConfig,
    overrides: &PrepOverrides,
    demo: Option<&DemoConfig>,
    options: DemoPrepOptions,
) -> Result<PreprocessOutcome> {
    let mut config = config.clone();
    config.apply(overrides);
    let mut generated = None;
    if let Some(demo) = demo {
        if overrides.input.is_some() {
            return Err(PrepError::InvalidConfig {
                field: "--input",
                reason: "excludes --demo: --demo generates its own input".into(),
            });
        }
        let (summary, demo_config) = demo_input(demo, &config)?;
        config = demo_config;
        generated = Some(summary);
    }
    if config.input.is_none() {
        return Err(PrepError::InvalidConfig {
            field: "--input",
            reason: "no input folder: pass --input (or --demo for the built-in demo dataset)"
                .into(),
        });
    }
    if config.output.is_none() {
        return Err(PrepError::InvalidConfig {
            field: "--output",
            reason: "no output folder: pass --output".into(),
        });
    }
    Ok(PreprocessOutcome {
        report: options.preprocessor(config).run()?,
        demo: generated,
    })
}
