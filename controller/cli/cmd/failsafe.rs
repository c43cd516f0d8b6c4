//! `clusvc agent --failsafe`: keep the services when *every* member has
//! lost the servers (Patroni's `failsafe_mode`), instead of stopping them.
//!
//! An agent that cannot renew its lease asks every other member's agent
//! directly (`--peers NAME=HOST:PORT,...`, the members the servers last
//! named) whether it has lost the servers too. Only when each one answers
//! and confirms does it keep its services, for one more poll period (a
//! fifth of the lease); otherwise it fences itself as without failsafe.
//! Nobody can be relocating then: a member that reaches a server answers
//! no, and an agent that confirmed runs no new work for a lease's time
//! after it (`hold`), longer than the asker's next poll plus its bounded
//! stop, so an asker that learns a peer is back has stopped before that
//! peer starts anything. Questions and answers are authenticated with a
//! key the agents share (`--peer-token-file`) without sending it: each
//! question carries a fresh nonce and an HMAC-SHA256 of it, each answer an
//! HMAC of the nonce, the member and the answer, so nobody without the key
//! can ask, forge an answer or replay an old one. (A member that holds the
//! key can still lie for another: the key is the cluster's.)

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What an agent answers a peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    /// The answering member.
    pub member: String,
    /// It has no acknowledged lease renewal for a renewal period.
    pub servers_lost: bool,
    /// HMAC-SHA256 (hex) of `answer|NONCE|MEMBER|LOST` under the shared key.
    pub mac: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn mac(key: &str, message: &str) -> String {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    hex(ring::hmac::sign(&k, message.as_bytes()).as_ref())
}

/// Compares two MACs in constant time.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

fn nonce() -> String {
    let mut b = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    hex(&b)
}

/// The failsafe side of an agent.
pub struct Failsafe {
    member: String,
    peers: Vec<(String, SocketAddr)>,
    token: String,
    /// Until when this agent runs no new work (it confirmed to a peer).
    hold: Duration,
    vouched: Mutex<Option<Instant>>,
}

impl Failsafe {
    /// `peers`: every other member's peer endpoint.
    pub fn new(
        member: &str,
        peers: Vec<(String, SocketAddr)>,
        token: String,
        hold: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            member: member.to_string(),
            // The same list serves every member: leave this one out.
            peers: peers.into_iter().filter(|(n, _)| n != member).collect(),
            token,
            hold,
            // A restarted agent may have confirmed just before it died.
            vouched: Mutex::new(Some(Instant::now())),
        })
    }

    /// Answers peers on `listen` (a thread per connection, bounded reads);
    /// `lost` says whether this agent has lost the servers now.
    pub fn serve(
        self: &Arc<Self>,
        listen: SocketAddr,
        lost: Arc<dyn Fn() -> bool + Send + Sync>,
    ) -> std::io::Result<()> {
        let l = TcpListener::bind(listen)?;
        let this = self.clone();
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let (this, lost) = (this.clone(), lost.clone());
                std::thread::spawn(move || this.answer(conn, lost.as_ref()));
            }
        });
        Ok(())
    }

    fn answer(&self, mut conn: TcpStream, lost: &dyn Fn() -> bool) {
        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
        let mut buf = [0u8; 4096];
        let mut n = 0;
        // The head only (a GET has no body), at most 4 KiB.
        while n < buf.len() {
            match conn.read(&mut buf[n..]) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
            if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut req = httparse::Request::new(&mut headers);
        // GET /v1/failsafe?nonce=N&from=MEMBER&mac=HMAC(ask|N|MEMBER)
        let question = match req.parse(&buf[..n]) {
            Ok(httparse::Status::Complete(_)) => req
                .path
                .and_then(|p| p.strip_prefix("/v1/failsafe?"))
                .map(|q| {
                    q.split('&')
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect::<std::collections::HashMap<_, _>>()
                }),
            _ => None,
        };
        let asked = question.and_then(|q| {
            let (nonce, from, m) = (q.get("nonce")?, q.get("from")?, q.get("mac")?);
            (nonce.len() <= 64
                && from.len() <= 253
                && same(m, &mac(&self.token, &format!("ask|{nonce}|{from}"))))
            .then(|| nonce.clone())
        });
        let (status, body) = match asked {
            Some(nonce) => {
                let servers_lost = lost();
                if servers_lost {
                    *self.vouched.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                }
                let a = Answer {
                    member: self.member.clone(),
                    servers_lost,
                    mac: mac(
                        &self.token,
                        &format!("answer|{nonce}|{}|{servers_lost}", self.member),
                    ),
                };
                ("200 OK", serde_json::to_string(&a).unwrap_or_default())
            }
            None => ("403 Forbidden", "{}".to_string()),
        };
        let _ = write!(
            conn,
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
    }

    /// Asks every peer, at once, within `limit`: `Ok` when each one
    /// confirms it lost the servers too, else why not.
    pub fn all_lost(&self, members: &[String], limit: Duration) -> Result<usize, String> {
        // Every member the servers last named must be a peer.
        if let Some(m) = members
            .iter()
            .find(|m| **m != self.member && !self.peers.iter().any(|(p, _)| p == *m))
        {
            return Err(format!("member {m} has no --peers endpoint"));
        }
        let asks: Vec<_> = self
            .peers
            .iter()
            .map(|(name, addr)| {
                let (name, addr, token, me) =
                    (name.clone(), *addr, self.token.clone(), self.member.clone());
                std::thread::spawn(move || {
                    let answer = ask(addr, &token, &me, &name, limit);
                    (name, answer)
                })
            })
            .collect();
        for a in asks {
            let (name, answer) = a.join().map_err(|_| "a peer query failed".to_string())?;
            match answer {
                Ok(a) if a.servers_lost => {}
                Ok(_) => return Err(format!("{name} still reaches the servers")),
                Err(e) => return Err(format!("{name} did not answer ({e})")),
            }
        }
        Ok(self.peers.len())
    }

    /// When this agent may run new work again (it confirmed to a peer that
    /// it had lost the servers; the peer may still run what it ran).
    pub fn hold_until(&self) -> Option<Instant> {
        self.vouched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|v| v + self.hold)
            .filter(|t| *t > Instant::now())
    }
}

/// Asks peer `peer` at `addr`; the answer counts only if its MAC proves
/// that peer's key made it for this question.
fn ask(
    addr: SocketAddr,
    key: &str,
    me: &str,
    peer: &str,
    limit: Duration,
) -> Result<Answer, String> {
    let nonce = nonce();
    let m = mac(key, &format!("ask|{nonce}|{me}"));
    let mut s = TcpStream::connect_timeout(&addr, limit).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(limit)).map_err(|e| e.to_string())?;
    let request = format!(
        "GET /v1/failsafe?nonce={nonce}&from={me}&mac={m} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    );
    s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.take(64 << 10)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no answer")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(head.lines().next().unwrap_or("").to_string());
    }
    let a: Answer = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let expected = mac(key, &format!("answer|{nonce}|{peer}|{}", a.servers_lost));
    if a.member != peer || !same(&a.mac, &expected) {
        return Err("its answer is not signed with the cluster's key".into());
    }
    Ok(a)
}

/// Parses `--peers NAME=HOST:PORT`.
pub fn parse_peer(s: &str) -> Result<(String, SocketAddr), String> {
    let (name, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=HOST:PORT"))?;
    let addr = addr
        .parse()
        .map_err(|e| format!("{s:?}: {addr:?} is not an address: {e}"))?;
    Ok((name.to_string(), addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_answer_only_with_the_token_and_a_confirmation_holds_new_work() {
        let free = || {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
        };
        let (a_addr, b_addr) = (free(), free());
        let b = Failsafe::new(
            "b",
            vec![("a".into(), a_addr)],
            "secret".into(),
            Duration::from_millis(300),
        );
        *b.vouched.lock().unwrap() = None;
        let lost = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let l = lost.clone();
        b.serve(
            b_addr,
            Arc::new(move || l.load(std::sync::atomic::Ordering::SeqCst)),
        )
        .unwrap();
        let a = Failsafe::new(
            "a",
            vec![("b".into(), b_addr)],
            "secret".into(),
            Duration::from_secs(1),
        );
        let members = vec!["a".to_string(), "b".to_string()];
        let limit = Duration::from_secs(2);
        // The listener thread may need a moment: the first answer comes
        // within the limit.
        assert_eq!(a.all_lost(&members, limit), Ok(1));
        // b confirmed: it holds new work for its hold time.
        assert!(b.hold_until().is_some());
        lost.store(false, std::sync::atomic::Ordering::SeqCst);
        assert!(
            a.all_lost(&members, limit)
                .unwrap_err()
                .contains("b still reaches the servers")
        );
        // A member with no endpoint, a wrong token, a silent peer: no.
        let more = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        assert!(
            a.all_lost(&more, limit)
                .unwrap_err()
                .contains("member c has no --peers endpoint")
        );
        let wrong = Failsafe::new(
            "a",
            vec![("b".into(), b_addr)],
            "guess".into(),
            Duration::from_secs(1),
        );
        assert!(wrong.all_lost(&members, limit).unwrap_err().contains("403"));
        let silent = Failsafe::new(
            "a",
            vec![("b".into(), free())],
            "secret".into(),
            Duration::from_secs(1),
        );
        assert!(
            silent
                .all_lost(&members, Duration::from_millis(200))
                .unwrap_err()
                .contains("did not answer")
        );
        // A fake peer that says "lost" without the key is not believed.
        let fake = TcpListener::bind("127.0.0.1:0").unwrap();
        let fake_addr = fake.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut c in fake.incoming().flatten() {
                let mut got = Vec::new();
                let mut b = [0u8; 1024];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut b) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&b[..n]),
                    }
                }
                let body = r#"{"member":"b","serversLost":true,"mac":"00"}"#;
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        let fooled = Failsafe::new(
            "a",
            vec![("b".into(), fake_addr)],
            "secret".into(),
            Duration::from_secs(1),
        );
        let err = fooled.all_lost(&members, limit).unwrap_err();
        assert!(err.contains("not signed"), "{err}");
        assert!(parse_peer("node2=10.0.0.12:7451").is_ok());
        assert!(parse_peer("node2").is_err());
        assert!(parse_peer("node2=host").is_err());
    }
}
