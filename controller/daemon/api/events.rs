//! `GET /v1/events`: recent events as NDJSON, and with `follow=true` the
//! live stream after them.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use clusvc_store::Store;

use super::{ApiQuery, App};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct EventsQuery {
    service: Option<String>,
    #[serde(default)]
    follow: bool,
    limit: Option<usize>,
}

pub(crate) async fn get<S: Store>(
    State(app): State<Arc<App<S>>>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Response {
    let recent = app
        .controller
        .events()
        .recent(q.service.as_deref(), q.limit.unwrap_or(200));
    let mut body = String::new();
    for e in &recent {
        body.push_str(&serde_json::to_string(e).unwrap_or_default());
        body.push('\n');
    }
    if !q.follow {
        return ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response();
    }
    let mut rx = app.controller.events().subscribe();
    let service = q.service.clone();
    let shutdown = app.shutdown.clone();
    let (tx, mut out) = tokio::sync::mpsc::channel::<Result<String, Infallible>>(64);
    tokio::spawn(async move {
        if !body.is_empty() && tx.send(Ok(body)).await.is_err() {
            return;
        }
        loop {
            let next = tokio::select! {
                e = rx.recv() => e,
                () = shutdown.notified() => return,
            };
            match next {
                Ok(e) if service.as_deref().is_none_or(|s| s == e.service) => {
                    let mut line = serde_json::to_string(&e).unwrap_or_default();
                    line.push('\n');
                    if tx.send(Ok(line)).await.is_err() {
                        return;
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| out.poll_recv(cx));
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response()
}
