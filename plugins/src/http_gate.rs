//! The gate every outgoing `wasi:http` request of a fetcher passes: only hosts the
//! route allows are reached (anything else fails in the guest with
//! `HTTP-request-denied`), and every transport timeout is capped at what is left of
//! the fetch's deadline. wasi:http follows no redirects, so every hop passes here.

use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

/// One entry of a route's `allowed_hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    /// Lower-case host name or address (IPv6 without brackets); a leading `*.` matches
    /// any subdomain.
    host: String,
    /// The port, if the rule names one; otherwise any port.
    port: Option<u16>,
}

impl HostRule {
    /// Parses `host`, `host:port`, `*.domain`, `[v6]` or `[v6]:port`.
    pub fn parse(s: &str) -> Result<HostRule, String> {
        let t = s.trim();
        let bad = |why: &str| format!("allowed host '{s}': {why}");
        let (host, port) = if let Some(rest) = t.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(|| bad("missing ']'"))?;
            match after {
                "" => (h, None),
                p => (
                    h,
                    Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?),
                ),
            }
        } else {
            match t.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h, Some(p)),
                Some(_) => return Err(bad("write IPv6 addresses in brackets")),
                None => (t, None),
            }
        };
        if host.is_empty() || host.contains('/') || host.contains(' ') {
            return Err(bad("not a host name"));
        }
        let stars_ok = match host.strip_prefix("*.") {
            Some(domain) => !domain.is_empty() && !domain.contains('*'),
            None => !host.contains('*'),
        };
        if !stars_ok {
            return Err(bad("only a leading '*.' wildcard is allowed"));
        }
        let port = match port {
            None => None,
            Some(p) => Some(p.parse::<u16>().map_err(|_| bad("bad port"))?),
        };
        Ok(HostRule {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match self.host.strip_prefix("*.") {
            Some(domain) => host
                .strip_suffix(domain)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => host == self.host,
        }
    }
}

/// Whether `rules` allow a request to `host` (lower-case, no brackets) on `port`.
pub(crate) fn allowed(rules: &[HostRule], host: &str, port: u16) -> bool {
    rules.iter().any(|r| r.matches(host, port))
}

/// The per-store hooks: the route's rules, the current call's deadline, and what was
/// refused during the call (so the host can report it whatever the guest makes of it).
pub(crate) struct Gate {
    pub(crate) rules: Arc<[HostRule]>,
    pub(crate) deadline: Instant,
    pub(crate) denied: Option<String>,
}

impl Gate {
    pub(crate) fn new(rules: Arc<[HostRule]>) -> Gate {
        Gate {
            rules,
            deadline: Instant::now(),
            denied: None,
        }
    }
}

fn cap(given: Option<Duration>, left: Duration) -> Option<Duration> {
    Some(given.map_or(left, |g| g.min(left)))
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for Gate {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        drop(fut);
        let uri = request.uri();
        let https = uri.scheme_str() == Some("https");
        let host = uri
            .host()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        if !allowed(&self.rules, &host, port) {
            self.denied = Some(format!("{host}:{port}"));
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Box::new(async { Err(wasmtime_wasi_http::Error::ConnectionTimeout) });
        }
        let given = options.unwrap_or_default();
        let options = RequestOptions {
            connect_timeout: cap(given.connect_timeout, left),
            first_byte_timeout: cap(given.first_byte_timeout, left),
            between_bytes_timeout: cap(given.between_bytes_timeout, left),
        };
        Box::new(async move {
            use http_body_util::BodyExt;
            let (res, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_match() {
        let r = |s: &str| HostRule::parse(s).expect(s);
        assert!(r("api.example.com").matches("api.example.com", 443));
        assert!(r("API.example.com").matches("api.example.com", 80));
        assert!(!r("api.example.com").matches("example.com", 80));
        assert!(r("127.0.0.1:8080").matches("127.0.0.1", 8080));
        assert!(!r("127.0.0.1:8080").matches("127.0.0.1", 8081));
        assert!(r("*.example.com").matches("a.example.com", 443));
        assert!(r("*.example.com").matches("a.b.example.com", 443));
        assert!(!r("*.example.com").matches("example.com", 443));
        assert!(!r("*.example.com").matches("badexample.com", 443));
        assert!(r("[::1]:9000").matches("::1", 9000));
        assert!(r("[::1]").matches("::1", 1));
        for bad in [
            "", ":80", "a:b", "::1", "[::1", "[::1]x", "a*.b", "*.a.*", "h/p", "a:99999",
        ] {
            assert!(HostRule::parse(bad).is_err(), "{bad}");
        }
    }
}
