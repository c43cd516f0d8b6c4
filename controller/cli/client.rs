//! The HTTP client of the CLI: one request per call, bearer token when
//! given, exit 3 with a hint when the server cannot be reached.

use serde::Serialize;

use clusvc_core::api::{ApiError, ErrorCode};
use serde::de::DeserializeOwned;

use crate::app::{CliError, EXIT_BAD_INPUT, EXIT_UNREACHABLE};

/// Talks to one server.
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

/// How client commands reach the server (offline commands do not take
/// these).
#[derive(Debug, Clone, clap::Args)]
pub struct Conn {
    /// The server's URL.
    #[arg(
        long,
        value_name = "URL",
        env = "CLUSVC_SERVER",
        default_value = "http://127.0.0.1:7450"
    )]
    pub server: String,
    /// File holding the bearer token the server wants (or the token itself
    /// in CLUSVC_TOKEN).
    #[arg(long, value_name = "FILE", env = "CLUSVC_TOKEN_FILE")]
    pub token_file: Option<std::path::PathBuf>,
}

impl Conn {
    /// A client for these settings.
    pub fn client(&self) -> Result<Client, CliError> {
        Client::new(&self.server, self)
    }
}

impl Client {
    /// A client for `server` (`http://127.0.0.1:7450`).
    pub fn new(server: &str, conn: &Conn) -> Result<Self, CliError> {
        let uri: Option<ureq::http::Uri> = server.parse().ok();
        let valid = uri.as_ref().is_some_and(|u| {
            matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some()
        });
        if !valid {
            return Err(CliError::bad_input(format!(
                "error: invalid server URL {server:?} (--server / CLUSVC_SERVER): expected http://HOST:PORT"
            )));
        }
        let token = match &conn.token_file {
            Some(f) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| {
                        CliError::bad_input(format!(
                            "error: cannot read token file {}: {e}",
                            f.display()
                        ))
                    })?
                    .trim()
                    .to_string(),
            ),
            None => std::env::var("CLUSVC_TOKEN").ok(),
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Self {
            base: server.trim_end_matches('/').to_string(),
            token,
            agent,
        })
    }

    fn unreachable(&self, e: &ureq::Error) -> CliError {
        CliError {
            code: EXIT_UNREACHABLE,
            message: format!(
                "error: cannot reach the clusvc server at {}: {e}\nhint: start it with `clusvc run`, or point --server / CLUSVC_SERVER at it",
                self.base
            ),
        }
    }

    fn finish<T: DeserializeOwned>(
        &self,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, CliError> {
        let mut resp = r.map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| self.unreachable(&e))?;
        if status.is_success() {
            serde_json::from_str(&text).map_err(|e| CliError {
                code: 1,
                message: format!("error: unexpected answer from the server: {e}"),
            })
        } else {
            let err = serde_json::from_str::<ApiError>(&text).unwrap_or_else(|_| {
                ApiError::new(ErrorCode::from_status(status.as_u16()), text.trim())
            });
            let code = match err.code {
                // Bad input, including not-found and conflicts (SPEC §6).
                ErrorCode::BadRequest
                | ErrorCode::MethodNotAllowed
                | ErrorCode::NotFound
                | ErrorCode::Conflict
                | ErrorCode::Invalid => EXIT_BAD_INPUT,
                _ => 1,
            };
            Err(CliError {
                code,
                message: format!("error: {}", err.message),
            })
        }
    }

    fn auth<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => req.header("Authorization", &format!("Bearer {t}")),
            None => req,
        }
    }

    /// GET a JSON document.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        let req = self.auth(self.agent.get(&format!("{}{path}", self.base)));
        self.finish(req.call())
    }

    /// POST JSON, read JSON.
    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CliError> {
        let req = self.auth(self.agent.post(&format!("{}{path}", self.base)));
        self.finish(req.send_json(body))
    }

    /// DELETE, read JSON.
    pub fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        let req = self.auth(self.agent.delete(&format!("{}{path}", self.base)));
        self.finish(req.call())
    }

    /// GET a stream of lines, calling `f` for each until it returns false.
    pub fn stream_lines(
        &self,
        path: &str,
        mut f: impl FnMut(&str) -> bool,
    ) -> Result<(), CliError> {
        use std::io::BufRead;
        let req = self.auth(self.agent.get(&format!("{}{path}", self.base)));
        let resp = req.call().map_err(|e| self.unreachable(&e))?;
        if !resp.status().is_success() {
            // An error answer (a wrong token, a bad query) is an error, not
            // an empty stream.
            return self.finish::<serde_json::Value>(Ok(resp)).map(|_| ());
        }
        let mut resp = resp;
        let reader = std::io::BufReader::new(resp.body_mut().as_reader());
        for line in reader.lines() {
            let Ok(line) = line else { break };
            if !f(&line) {
                break;
            }
        }
        Ok(())
    }
}
