//! `clusvc create service NAME --userscript PATH` (the seed's
//! `--add_service`).

use std::path::PathBuf;

use clusvc_core::api::{APPLY_SOURCE, ApplyRequest, ApplyResult};
use clusvc_core::model::{Application, Service};
use clusvc_manifest::{self as manifest, Options};

use crate::app::CliError;
use crate::client::Client;

/// Arguments of `create service`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Always `service`.
    #[arg(value_parser = ["service"])]
    kind: String,
    /// The service name.
    name: String,
    /// A seed-style user script.
    #[arg(long)]
    userscript: PathBuf,
    /// Status check interval.
    #[arg(long)]
    check_interval: Option<clusvc_core::model::Duration>,
    /// Limit for one action.
    #[arg(long)]
    timeout: Option<clusvc_core::model::Duration>,
    /// Print the manifest instead of creating it.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format with --dry-run.
    #[arg(short = 'o', long, value_enum, default_value_t = ManifestOutput::Yaml, requires = "dry_run")]
    output: ManifestOutput,
}

/// How `create --dry-run` prints the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ManifestOutput {
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

/// `create service` (the seed's `--add_service`).
pub fn create(client: Option<&Client>, args: CreateArgs) -> Result<u8, CliError> {
    let script = std::path::absolute(&args.userscript).unwrap_or(args.userscript.clone());
    let mut svc = Service::new(&args.name);
    if let Some(c) = args.check_interval {
        svc.spec.check_interval = c;
    }
    if let Some(t) = args.timeout {
        svc.spec.timeout = t;
    }
    svc.spec.applications.push(Application {
        script: Some(script.display().to_string()),
        ..Application::default()
    });
    let text = serde_saphyr::to_string(&svc).unwrap_or_default();
    let input = manifest::Input::new("<create>", text.clone());
    manifest::load(&[input], Options::default())
        .map_err(|e| CliError::bad_input(format!("{e}\nerror: the service is invalid")))?;
    if args.dry_run {
        match args.output {
            ManifestOutput::Json => {
                println!("{}", serde_json::to_string_pretty(&svc).unwrap_or_default())
            }
            _ => print!("{text}"),
        }
        return Ok(0);
    }
    let client = client.expect("a client when not a dry run");
    let resp: ApplyResult = client.post(
        "/v1/apply",
        &ApplyRequest {
            services: vec![svc],
            source: APPLY_SOURCE.into(),
            create_only: true,
            ..ApplyRequest::default()
        },
    )?;
    for o in resp.objects {
        println!("{}/{} {}", o.kind, o.name, o.result);
    }
    Ok(0)
}
