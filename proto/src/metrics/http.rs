//! Just enough HTTP/1.x for a metrics scrape, sans-IO: parse a request head
//! from a slice, decide the answer, encode it.
//!
//! One request per connection (`Connection: close` always), no bodies
//! accepted, no keep-alive, no chunking: a scraper needs nothing else, and
//! everything else is answered with an error status rather than guessed at.
//! Anything malformed is an error value, never a panic.

use std::fmt::Write;

/// The largest request head we read (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;

/// A parsed request line (headers are checked for syntax and dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The path without its query string.
    pub path: String,
}

/// Why a request head is refused; each has its status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadRequest {
    #[error("request head longer than {MAX_HEAD} bytes")]
    TooLarge,
    #[error("malformed request: {0}")]
    Syntax(&'static str),
    #[error("HTTP version not supported")]
    Version,
}

impl BadRequest {
    pub fn status(&self) -> u16 {
        match self {
            BadRequest::TooLarge => 431,
            BadRequest::Syntax(_) => 400,
            BadRequest::Version => 505,
        }
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses the head at the start of `buf`: `Ok(None)` while it is incomplete
/// (and shorter than [`MAX_HEAD`]); else the head and the bytes it used.
pub fn parse_head(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, BadRequest> {
    let window = &buf[..buf.len().min(MAX_HEAD)];
    let end = window
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, p + 4))
        .or_else(|| {
            window
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|p| (p, p + 2))
        });
    let Some((head_end, used)) = end else {
        return if buf.len() >= MAX_HEAD {
            Err(BadRequest::TooLarge)
        } else {
            Ok(None)
        };
    };
    let head =
        std::str::from_utf8(&window[..head_end]).map_err(|_| BadRequest::Syntax("not UTF-8"))?;
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let line = lines.next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BadRequest::Syntax(
            "request line is not 'METHOD target HTTP/1.x'",
        ));
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(BadRequest::Syntax("bad method"));
    }
    if !target.starts_with('/') || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(BadRequest::Syntax("bad request target"));
    }
    match version {
        "HTTP/1.0" | "HTTP/1.1" => {}
        v if v.starts_with("HTTP/") => return Err(BadRequest::Version),
        _ => return Err(BadRequest::Syntax("bad version")),
    }
    for h in lines {
        let Some((name, _)) = h.split_once(':') else {
            return Err(BadRequest::Syntax("header line without ':'"));
        };
        // Also refuses obsolete line folding (a line starting with a space).
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(BadRequest::Syntax("bad header name"));
        }
    }
    let path = target.split(['?', '#']).next().unwrap_or(target);
    Ok(Some((
        RequestHead {
            method: method.to_string(),
            path: path.to_string(),
        },
        used,
    )))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// A whole response: status line, headers, and `body` unless `head_only`.
pub fn response(status: u16, content_type: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let mut h = String::new();
    let _ = write!(
        h,
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n",
        reason(status),
        body.len()
    );
    if status == 405 {
        h.push_str("Allow: GET, HEAD\r\n");
    }
    h.push_str("\r\n");
    let mut out = h.into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

/// A plain-text error answer.
pub fn error_response(status: u16, why: &str) -> Vec<u8> {
    response(
        status,
        "text/plain; charset=utf-8",
        format!("{status} {}: {why}\n", reason(status)).as_bytes(),
        false,
    )
}

/// What to do with a well-formed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /metrics` (or HEAD: `head_only`).
    Metrics {
        head_only: bool,
    },
    NotFound,
    MethodNotAllowed,
}

pub fn route(head: &RequestHead) -> Route {
    let head_only = match head.method.as_str() {
        "GET" => false,
        "HEAD" => true,
        _ => return Route::MethodNotAllowed,
    };
    match head.path.as_str() {
        "/metrics" | "/metrics/" => Route::Metrics { head_only },
        _ => Route::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Option<(RequestHead, usize)>, BadRequest> {
        parse_head(s.as_bytes())
    }

    #[test]
    fn parses_a_scrape() {
        let r = "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\nrest";
        let (h, used) = parse(r).unwrap().unwrap();
        assert_eq!((h.method.as_str(), h.path.as_str()), ("GET", "/metrics"));
        assert_eq!(&r[used..], "rest");
        assert_eq!(route(&h), Route::Metrics { head_only: false });
        let (h, _) = parse("HEAD /metrics HTTP/1.0\n\n").unwrap().unwrap();
        assert_eq!(route(&h), Route::Metrics { head_only: true });
        let (h, _) = parse("POST /metrics HTTP/1.1\r\n\r\n").unwrap().unwrap();
        assert_eq!(route(&h), Route::MethodNotAllowed);
        let (h, _) = parse("GET / HTTP/1.1\r\n\r\n").unwrap().unwrap();
        assert_eq!(route(&h), Route::NotFound);
    }

    #[test]
    fn incomplete_then_too_large() {
        assert_eq!(parse("GET /metrics HTTP/1.1\r\nHost: a\r\n"), Ok(None));
        assert_eq!(parse(""), Ok(None));
        let big = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD));
        assert_eq!(parse(&big), Err(BadRequest::TooLarge));
        // The end marker beyond the limit does not count.
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(parse(&big), Err(BadRequest::TooLarge));
    }

    #[test]
    fn refuses_garbage() {
        for (r, status) in [
            ("\x16\x03\x01\x02\x00\x01\x00\x01\x7c\x03\x03\r\n\r\n", 400),
            ("GET /metrics\r\n\r\n", 400),
            ("GET  /metrics HTTP/1.1\r\n\r\n", 400),
            ("GET metrics HTTP/1.1\r\n\r\n", 400),
            ("GET /metrics HTTP/2.0\r\n\r\n", 505),
            ("GET /metrics FTP/1.0\r\n\r\n", 400),
            ("G(T /metrics HTTP/1.1\r\n\r\n", 400),
            ("GET /metrics HTTP/1.1\r\nno colon\r\n\r\n", 400),
            ("GET /metrics HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400),
            ("GET /m\x01 HTTP/1.1\r\n\r\n", 400),
        ] {
            let e = parse(r).unwrap_err();
            assert_eq!(e.status(), status, "{r:?}: {e}");
        }
        assert!(parse_head(b"GET /\xff HTTP/1.1\r\n\r\n").is_err());
    }

    #[test]
    fn responses() {
        let r = String::from_utf8(response(200, "text/plain", b"x 1\n", false)).unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(
            r.contains("Content-Length: 4\r\n") && r.ends_with("\r\n\r\nx 1\n"),
            "{r}"
        );
        let r = String::from_utf8(response(200, "text/plain", b"x 1\n", true)).unwrap();
        assert!(
            r.ends_with(
                "Content-Length: 4\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
            ),
            "{r}"
        );
        let r = String::from_utf8(error_response(405, "use GET")).unwrap();
        assert!(
            r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n") && r.contains("Allow: GET, HEAD")
        );
    }
}
