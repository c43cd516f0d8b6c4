//! The HTTP client of the CLI: one request per call, over the local
//! daemon's Unix socket by default or HTTP(S) with a bearer token; exit 3
//! with a hint when the server cannot be reached.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use clusvc_core::api::{ApiError, ErrorCode, paths};

use crate::app::{CliError, EXIT_BAD_INPUT, EXIT_UNREACHABLE};
use crate::unix_http;

/// Talks to one server.
pub struct Client {
    /// How the server was named, for messages (`unix:/run/clusvc/clusvc.sock`).
    base: String,
    transport: Transport,
}

enum Transport {
    /// The daemon's Unix socket: the kernel tells it who we are.
    Unix(PathBuf),
    /// HTTP or HTTPS, with the bearer token.
    Http {
        agent: ureq::Agent,
        token: Option<String>,
    },
}

/// How client commands reach the server (offline commands do not take
/// these).
#[derive(Debug, Clone, clap::Args)]
pub struct Conn {
    /// The server: `unix:PATH` or `http(s)://HOST:PORT` (default: the local
    /// daemon's socket).
    #[arg(long, value_name = "URL", env = "CLUSVC_SERVER")]
    pub server: Option<String>,
    /// File holding the bearer token a TCP server wants (or the token
    /// itself in CLUSVC_TOKEN).
    #[arg(long, value_name = "FILE", env = "CLUSVC_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// CA certificate(s) (PEM) to trust for an https:// server, instead of
    /// the public roots.
    #[arg(long, value_name = "FILE", env = "CLUSVC_CA_FILE")]
    pub ca_file: Option<PathBuf>,
}

impl Conn {
    /// A client for these settings.
    pub fn client(&self) -> Result<Client, CliError> {
        match &self.server {
            Some(s) => Client::new(s, self),
            None => Client::new(&format!("unix:{}", default_socket().display()), self),
        }
    }
}

/// The local daemon's socket: the caller's own daemon's (not root), then
/// the system one; the first that exists, else the first.
fn default_socket() -> PathBuf {
    let root = nix_is_root();
    let mut candidates = Vec::new();
    if !root {
        let state = paths::default_state_dir(
            false,
            std::env::var_os("XDG_STATE_HOME").map(PathBuf::from),
            std::env::var_os("HOME").map(PathBuf::from),
        );
        candidates.push(paths::default_socket(false, &state));
    }
    candidates.push(PathBuf::from(paths::SYSTEM_SOCKET));
    candidates
        .iter()
        .find(|p| p.exists())
        .unwrap_or(&candidates[0])
        .clone()
}

/// Talks only to a socket that root or the caller made: another user
/// could otherwise put their own server where the daemon's socket was and
/// read what the caller sends.
fn check_socket_owner(socket: &Path) -> Result<(), CliError> {
    use std::os::unix::fs::MetadataExt;
    let Ok(md) = std::fs::metadata(socket) else {
        // Missing: the connect says so, with its hint.
        return Ok(());
    };
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if md.uid() != 0 && md.uid() != me {
        return Err(CliError {
            code: 1,
            message: format!(
                "error: refusing to talk to {}: the socket belongs to uid {}, not to root or you",
                socket.display(),
                md.uid()
            ),
        });
    }
    Ok(())
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid cannot fail and has no side effects.
    unsafe { libc::geteuid() == 0 }
}

fn read_ca(path: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>, CliError> {
    let bad = |why: String| {
        CliError::bad_input(format!(
            "error: cannot use the CA file {} (--ca-file): {why}",
            path.display()
        ))
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    Ok(certs)
}

impl Client {
    /// A client for `server` (`unix:/run/clusvc/clusvc.sock`,
    /// `http://127.0.0.1:7450`, `https://10.0.0.5:7450`).
    pub fn new(server: &str, conn: &Conn) -> Result<Self, CliError> {
        Self::with_timeout(server, conn, None)
    }

    /// A client whose HTTP requests give up after `timeout` (the agent's
    /// heartbeats must not hang past its lease).
    pub fn with_timeout(
        server: &str,
        conn: &Conn,
        timeout: Option<std::time::Duration>,
    ) -> Result<Self, CliError> {
        if let Some(path) = server.strip_prefix("unix:") {
            // `unix:/p`, `unix:///p` and the relative `unix:dir/p`.
            let path = PathBuf::from(path.strip_prefix("//").unwrap_or(path));
            return Ok(Self {
                base: format!("unix:{}", path.display()),
                transport: Transport::Unix(path),
            });
        }
        let uri: Option<ureq::http::Uri> = server.parse().ok();
        let valid = uri.as_ref().is_some_and(|u| {
            matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some()
        });
        if !valid {
            return Err(CliError::bad_input(format!(
                "error: invalid server URL {server:?} (--server / CLUSVC_SERVER): expected unix:PATH or http(s)://HOST:PORT"
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
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(ca) = &conn.ca_file {
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&read_ca(ca)?));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls.build())
            .timeout_global(timeout)
            .build()
            .into();
        Ok(Self {
            base: server.trim_end_matches('/').to_string(),
            transport: Transport::Http { agent, token },
        })
    }

    /// Sends a request; returns the status and the body.
    fn send(
        &self,
        method: &str,
        path: &str,
        json: Option<Vec<u8>>,
    ) -> Result<(u16, Box<dyn std::io::Read>), CliError> {
        match &self.transport {
            Transport::Unix(socket) => {
                check_socket_owner(socket)?;
                unix_http::request(socket, method, path, json.as_deref())
                    .map_err(|e| self.unreachable(&e))
            }
            Transport::Http { agent, token } => {
                let url = format!("{}{path}", self.base);
                let auth = token.as_ref().map(|t| format!("Bearer {t}"));
                let result = match (method, json) {
                    ("POST", body) => {
                        let mut req = agent.post(&url).header("Content-Type", "application/json");
                        if let Some(a) = &auth {
                            req = req.header("Authorization", a);
                        }
                        req.send(body.unwrap_or_default())
                    }
                    ("DELETE", _) => {
                        let mut req = agent.delete(&url);
                        if let Some(a) = &auth {
                            req = req.header("Authorization", a);
                        }
                        req.call()
                    }
                    _ => {
                        let mut req = agent.get(&url);
                        if let Some(a) = &auth {
                            req = req.header("Authorization", a);
                        }
                        req.call()
                    }
                };
                let resp = result.map_err(|e| self.unreachable(&e))?;
                let status = resp.status().as_u16();
                Ok((status, Box::new(resp.into_body().into_reader())))
            }
        }
    }

    fn unreachable(&self, e: &dyn std::fmt::Display) -> CliError {
        let hint = match &self.transport {
            Transport::Unix(p) if !p.exists() => format!(
                "hint: no daemon socket at {}: start one with `clusvc run`, or point --server / CLUSVC_SERVER at a server",
                p.display()
            ),
            Transport::Unix(_) if e.to_string().contains("ermission denied") => {
                "hint: only root and members of the daemon's admin group may use its socket".into()
            }
            _ => "hint: start it with `clusvc run`, or point --server / CLUSVC_SERVER at it".into(),
        };
        CliError {
            code: EXIT_UNREACHABLE,
            message: format!(
                "error: cannot reach the clusvc server at {}: {e}\n{hint}",
                self.base
            ),
        }
    }

    fn finish<T: DeserializeOwned>(
        &self,
        (status, mut body): (u16, Box<dyn std::io::Read>),
    ) -> Result<T, CliError> {
        let mut text = String::new();
        body.read_to_string(&mut text)
            .map_err(|e| self.unreachable(&e))?;
        if (200..300).contains(&status) {
            serde_json::from_str(&text).map_err(|e| CliError {
                code: 1,
                message: format!("error: unexpected answer from the server: {e}"),
            })
        } else {
            let err = serde_json::from_str::<ApiError>(&text)
                .unwrap_or_else(|_| ApiError::new(ErrorCode::from_status(status), text.trim()));
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

    fn json<B: Serialize>(body: &B) -> Result<Vec<u8>, CliError> {
        serde_json::to_vec(body).map_err(|e| CliError {
            code: 1,
            message: format!("error: cannot encode the request: {e}"),
        })
    }

    /// GET a JSON document.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.finish(self.send("GET", path, None)?)
    }

    /// POST JSON, read JSON.
    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CliError> {
        self.finish(self.send("POST", path, Some(Self::json(body)?))?)
    }

    /// DELETE, read JSON.
    pub fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.finish(self.send("DELETE", path, None)?)
    }

    /// GET a stream of lines, calling `f` for each until it returns false.
    pub fn stream_lines(
        &self,
        path: &str,
        mut f: impl FnMut(&str) -> bool,
    ) -> Result<StreamEnd, CliError> {
        use std::io::BufRead;
        let (status, body) = self.send("GET", path, None)?;
        if !(200..300).contains(&status) {
            // An error answer (a wrong token, a bad query) is an error, not
            // an empty stream.
            return self
                .finish::<serde_json::Value>((status, body))
                .map(|_| StreamEnd::Closed);
        }
        let reader = std::io::BufReader::new(body);
        for line in reader.lines() {
            match line {
                Ok(line) if !f(&line) => return Ok(StreamEnd::Stopped),
                Ok(_) => {}
                Err(e) => return Ok(StreamEnd::Broken(e.to_string())),
            }
        }
        Ok(StreamEnd::Closed)
    }

    /// The error for a followed stream that ended: the server stopped or
    /// the connection broke (exit 3, as for an unreachable server).
    pub fn stream_ended(&self, end: &StreamEnd) -> CliError {
        let why = match end {
            StreamEnd::Broken(e) => format!("the connection broke: {e}"),
            _ => "the server closed it (it stopped?)".to_string(),
        };
        CliError {
            code: EXIT_UNREACHABLE,
            message: format!(
                "error: the stream from the clusvc server at {} ended: {why}",
                self.base
            ),
        }
    }
}

/// How a stream of lines ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The reader stopped it.
    Stopped,
    /// The server ended it.
    Closed,
    /// The connection broke.
    Broken(String),
}

/// Percent-encodes a query parameter's value (all but RFC 3986's
/// unreserved characters).
pub fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
