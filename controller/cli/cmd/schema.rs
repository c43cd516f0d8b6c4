//! `clusvc schema [KIND] [--write DIR]`

use std::path::PathBuf;

use clusvc_manifest::schema;

use crate::app::CliError;

/// Arguments of `schema`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// One kind: member, service or observed; default all.
    kind: Option<String>,
    /// Write `*.schema.json` and `*.crd.yaml` into this directory.
    #[arg(long, value_name = "DIR")]
    write: Option<PathBuf>,
}

/// Prints or writes schemas.
pub fn run(args: Args) -> Result<u8, CliError> {
    if let Some(dir) = args.write {
        let written = schema::write(&dir).map_err(|e| CliError::bad_input(e.to_string()))?;
        for path in written {
            println!("wrote {path}");
        }
        return Ok(0);
    }
    let value = match args.kind.as_deref() {
        Some(kind) => schema::json_schema(&kind.to_lowercase())
            .map_err(|e| CliError::bad_input(e.to_string()))?
            .to_value(),
        None => {
            let mut all = serde_json::Map::new();
            for (stem, kind, _) in schema::KINDS {
                let s =
                    schema::json_schema(stem).map_err(|e| CliError::bad_input(e.to_string()))?;
                all.insert(kind.to_string(), s.to_value());
            }
            serde_json::Value::Object(all)
        }
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&value).unwrap_or_default()
    );
    Ok(0)
}
