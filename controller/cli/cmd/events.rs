//! `clusvc events [SERVICE] [--follow]`.

use clusvc_core::model::event::Event;

use crate::app::CliError;
use crate::client::Client;
use crate::output::ListOutput;

/// Arguments of `events`.
#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Only this service's events.
    service: Option<String>,
    /// Keep printing new events.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = ListOutput::Table)]
    output: ListOutput,
}

/// `events`.
pub fn events(client: &Client, args: EventsArgs) -> Result<u8, CliError> {
    let mut path = format!("/v1/events?follow={}", args.follow);
    if let Some(s) = &args.service {
        path.push_str(&format!("&service={s}"));
    }
    let end = client.stream_lines(&path, |line| {
        match (args.output, serde_json::from_str::<Event>(line)) {
            (ListOutput::Json, _) => println!("{line}"),
            (_, Ok(e)) => println!(
                "{}  {:7}  {}  {}{}",
                e.at.map(|t| t.to_string()).unwrap_or_default(),
                format!("{:?}", e.level).to_lowercase(),
                if e.service.is_empty() {
                    "cluster".to_string()
                } else {
                    format!("service/{}", e.service)
                },
                if e.resource.is_empty() {
                    String::new()
                } else {
                    format!("{}: ", e.resource)
                },
                e.message.replace('\n', "\n    ")
            ),
            (_, Err(_)) => {}
        }
        true
    })?;
    // Following ends only when the server goes: an error, so that a
    // script waiting on the stream learns it (kubectl's `logs -f` too).
    if args.follow {
        return Err(client.stream_ended(&end));
    }
    Ok(0)
}

/// The last `limit` events, of one service or all.
pub fn read_events(
    client: &Client,
    service: Option<&str>,
    limit: usize,
) -> Result<Vec<Event>, CliError> {
    let path = match service {
        Some(s) => format!("/v1/events?service={s}&limit={limit}"),
        None => format!("/v1/events?limit={limit}"),
    };
    let mut out = Vec::new();
    let _ = client.stream_lines(&path, |line| {
        if let Ok(e) = serde_json::from_str::<Event>(line) {
            out.push(e);
        }
        true
    })?;
    Ok(out)
}
