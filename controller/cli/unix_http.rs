//! HTTP/1.1 over the daemon's Unix socket: one request per connection
//! (`Connection: close`), the answer's body read by its length, chunk by
//! chunk, or to the end of the stream.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// Largest answer head (status line and headers).
const MAX_HEAD: usize = 64 << 10;

/// Sends one request; returns the status and a reader of the body.
pub fn request(
    socket: &Path,
    method: &str,
    target: &str,
    json: Option<&[u8]>,
) -> io::Result<(u16, Box<dyn Read>)> {
    let mut stream = UnixStream::connect(socket)?;
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nUser-Agent: clusvc/{}\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(body) = json {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    let sent = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(json.unwrap_or_default()));
    if let Err(e) = sent {
        // A server that refuses a request (403, 413) may answer and close
        // before reading all of it: its answer is still there to read.
        if !matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ) {
            return Err(e);
        }
    }
    let mut reader = BufReader::new(stream);
    let mut raw = Vec::new();
    while !raw.ends_with(b"\r\n\r\n") {
        if raw.len() > MAX_HEAD {
            return Err(invalid("the answer's headers are too long"));
        }
        let n = reader.read_until(b'\n', &mut raw)?;
        if n == 0 {
            return Err(invalid("the server closed the connection before answering"));
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    parsed
        .parse(&raw)
        .map_err(|e| invalid(&format!("malformed answer: {e}")))?;
    let status = parsed
        .code
        .ok_or_else(|| invalid("answer without a status"))?;
    let header = |name: &str| {
        parsed
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let length = header("content-length").and_then(|v| v.parse::<u64>().ok());
    let body: Box<dyn Read> = if chunked {
        Box::new(Chunked {
            inner: reader,
            left: 0,
            done: false,
        })
    } else if let Some(n) = length {
        Box::new(reader.take(n))
    } else {
        Box::new(reader)
    };
    Ok((status, body))
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// A chunked body (RFC 9112 §7.1).
struct Chunked<R> {
    inner: R,
    left: u64,
    done: bool,
}

impl<R: BufRead> Chunked<R> {
    fn line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        (&mut self.inner).take(4096).read_until(b'\n', &mut line)?;
        if !line.ends_with(b"\n") {
            return Err(invalid("truncated chunk"));
        }
        Ok(String::from_utf8_lossy(&line).trim().to_string())
    }
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let line = self.line()?;
            let size = line.split(';').next().unwrap_or("").trim();
            self.left =
                u64::from_str_radix(size, 16).map_err(|_| invalid("malformed chunk size"))?;
            if self.left == 0 {
                // Trailers, then the empty line.
                while !self.line()?.is_empty() {}
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(invalid("truncated chunk"));
        }
        self.left -= n as u64;
        if self.left == 0 && !self.line()?.is_empty() {
            return Err(invalid("chunk not followed by CRLF"));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_decoded() {
        let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let mut c = Chunked {
            inner: &wire[..],
            left: 0,
            done: false,
        };
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello, world");
    }

    #[test]
    fn a_truncated_chunk_is_an_error() {
        let wire = b"a\r\nhel";
        let mut c = Chunked {
            inner: &wire[..],
            left: 0,
            done: false,
        };
        let mut out = String::new();
        assert!(c.read_to_string(&mut out).is_err());
    }
}
