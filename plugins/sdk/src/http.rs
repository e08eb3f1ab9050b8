//! A small blocking HTTP client over `wasi:http` outgoing requests, for origin fetchers.
//! caskade's host sends the request only if the route allows the host (otherwise the
//! call fails with `HTTP-request-denied`) and caps every timeout at the route's.

use std::fmt;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::streams::StreamError;

/// A response: status, headers (names lower-case) and the whole body.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header (name, value) pairs in the order received.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive), as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// Why a request failed.
#[derive(Debug, Clone)]
pub enum Error {
    /// The URL is not `http://` or `https://` with a host.
    BadUrl(String),
    /// A header name or value was refused.
    BadHeader(String),
    /// The host refused the request (not in the route's allowed hosts).
    Denied,
    /// The response body was larger than the limit given.
    TooLarge(u64),
    /// Anything the transport reported (connection refused, timeout, ...).
    Transport(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadUrl(u) => write!(f, "bad URL '{u}'"),
            Error::BadHeader(h) => write!(f, "bad header {h}"),
            Error::Denied => write!(f, "request denied by caskade (host not allowed)"),
            Error::TooLarge(n) => write!(f, "response body over {n} bytes"),
            Error::Transport(e) => write!(f, "{e}"),
        }
    }
}

fn transport(e: ErrorCode) -> Error {
    match e {
        ErrorCode::HttpRequestDenied => Error::Denied,
        other => Error::Transport(other.to_string()),
    }
}

/// A URL split into what an outgoing request needs.
struct Target<'a> {
    https: bool,
    authority: &'a str,
    path_with_query: &'a str,
}

fn split_url(url: &str) -> Result<Target<'_>, Error> {
    let (https, rest) = if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        return Err(Error::BadUrl(url.to_string()));
    };
    let slash = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(slash);
    if authority.is_empty() {
        return Err(Error::BadUrl(url.to_string()));
    }
    Ok(Target {
        https,
        authority,
        path_with_query: if path.is_empty() { "/" } else { path },
    })
}

/// `GET url` with `headers`; reads at most `max_body` bytes of body.
pub fn get(url: &str, headers: &[(&str, &[u8])], max_body: u64) -> Result<Response, Error> {
    let target = split_url(url)?;
    let entries: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_vec()))
        .collect();
    let fields =
        Fields::from_list(&entries).map_err(|e| Error::BadHeader(format!("{e:?}")))?;
    let req = OutgoingRequest::new(fields);
    let scheme = if target.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let bad = || Error::BadUrl(url.to_string());
    req.set_method(&Method::Get).map_err(|()| bad())?;
    req.set_scheme(Some(&scheme)).map_err(|()| bad())?;
    req.set_authority(Some(target.authority))
        .map_err(|()| bad())?;
    req.set_path_with_query(Some(target.path_with_query))
        .map_err(|()| bad())?;
    let pending = outgoing_handler::handle(req, None::<RequestOptions>).map_err(transport)?;
    pending.subscribe().block();
    let resp = match pending.get() {
        Some(Ok(Ok(r))) => r,
        Some(Ok(Err(e))) => return Err(transport(e)),
        Some(Err(())) | None => {
            return Err(Error::Transport("response already taken".into()));
        }
    };
    let status = resp.status();
    let headers = resp.headers().entries();
    let body = resp
        .consume()
        .map_err(|()| Error::Transport("response body already taken".into()))?;
    let bytes = read_body(&body, max_body);
    IncomingBody::finish(body);
    Ok(Response {
        status,
        headers,
        body: bytes?,
    })
}

fn read_body(body: &IncomingBody, max: u64) -> Result<Vec<u8>, Error> {
    let stream = body
        .stream()
        .map_err(|()| Error::Transport("response body stream already taken".into()))?;
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                if out.len() as u64 + chunk.len() as u64 > max {
                    return Err(Error::TooLarge(max));
                }
                out.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => return Ok(out),
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(Error::Transport(e.to_debug_string()));
            }
        }
    }
}
