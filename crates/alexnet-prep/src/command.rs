//! What the `preprocess_caltech` example calls: a dataset, or the built-in demo,
//! preprocessed as the config and the command line say.

use crate::{
    config::{PrepConfig, PrepOverrides},
    demo::{DemoConfig, DemoPrepOptions, DemoSummary, prepare_demo},
    error::{PrepError, Result},
    preprocess::Preprocessor,
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
    if let Some(demo) = demo {
        if overrides.input.is_some() {
            return Err(PrepError::InvalidConfig {
                field: "--input",
                reason: "excludes --demo: --demo generates its own input".into(),
            });
        }
        let options = DemoPrepOptions {
            reuse: false,
            ..options
        };
        let prepared = prepare_demo(demo, &config, options)?;
        let report = prepared.report.ok_or_else(|| PrepError::InvalidConfig {
            field: "--demo",
            reason: "the demo was not preprocessed".into(),
        })?;
        return Ok(PreprocessOutcome {
            report,
            demo: Some(prepared.summary),
        });
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
    let mut preprocessor = Preprocessor::new(config).overwrite(options.overwrite);
    if let Some(progress) = options.progress {
        preprocessor = preprocessor.progress(progress);
    }
    Ok(PreprocessOutcome {
        report: preprocessor.run()?,
        demo: None,
    })
}
