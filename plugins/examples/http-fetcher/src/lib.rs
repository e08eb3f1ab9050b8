//! An origin fetcher for HTTP origins: a miss on `user:42` becomes
//! `GET {base_url}42` (with `strip_prefix: "user:"`). 200 stores the body (raw bytes, or
//! JSON checked and optionally narrowed by a JSON pointer), 404 and 410 are "not found",
//! 304 answers a revalidation, anything else is an error. The ETag is kept and sent back
//! as `If-None-Match`; `Cache-Control: max-age` sets the TTL unless told not to.
//!
//! Settings: `base_url` (required), `strip_prefix`, `format` (`raw` or `json`),
//! `json_pointer` (e.g. `/data/name`), `max_body_bytes` (default 8388608),
//! `honor_cache_control` (default true), and `header.<Name>` for extra request headers.

use caskade_plugin_sdk::http;
use caskade_plugin_sdk::{
    CachedEntry, FetchOutcome, FreshValue, OriginFetcher, PluginError, Settings,
    export_origin_fetcher, setting,
};

#[derive(PartialEq)]
enum Format {
    Raw,
    Json,
}

struct HttpFetcher {
    base_url: String,
    strip_prefix: Vec<u8>,
    format: Format,
    json_pointer: Option<String>,
    max_body: u64,
    honor_cache_control: bool,
    headers: Vec<(String, Vec<u8>)>,
}

fn invalid(msg: String) -> PluginError {
    PluginError::InvalidSettings(msg)
}

impl OriginFetcher for HttpFetcher {
    fn init(settings: &Settings) -> Result<Self, PluginError> {
        let base_url = setting(settings, "base_url")
            .ok_or_else(|| invalid("base_url is required (e.g. http://origin:8080/items/)".into()))?
            .to_string();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(invalid(format!(
                "base_url '{base_url}' must start with http:// or https://"
            )));
        }
        let format = match setting(settings, "format").unwrap_or("raw") {
            "raw" => Format::Raw,
            "json" => Format::Json,
            other => return Err(invalid(format!("format '{other}' is not raw or json"))),
        };
        let json_pointer = setting(settings, "json_pointer").map(str::to_string);
        if json_pointer.is_some() && format != Format::Json {
            return Err(invalid("json_pointer needs format: json".into()));
        }
        if let Some(p) = &json_pointer
            && !p.is_empty()
            && !p.starts_with('/')
        {
            return Err(invalid(format!("json_pointer '{p}' must start with '/'")));
        }
        let max_body = match setting(settings, "max_body_bytes") {
            None => 8 << 20,
            Some(v) => v
                .parse()
                .map_err(|_| invalid(format!("max_body_bytes '{v}' is not a number")))?,
        };
        let honor_cache_control = match setting(settings, "honor_cache_control").unwrap_or("true")
        {
            "true" => true,
            "false" => false,
            other => {
                return Err(invalid(format!(
                    "honor_cache_control '{other}' is not true or false"
                )));
            }
        };
        let headers = settings
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("header.")
                    .map(|name| (name.to_string(), v.as_bytes().to_vec()))
            })
            .collect();
        Ok(HttpFetcher {
            base_url,
            strip_prefix: setting(settings, "strip_prefix")
                .unwrap_or("")
                .as_bytes()
                .to_vec(),
            format,
            json_pointer,
            max_body,
            honor_cache_control,
            headers,
        })
    }

    fn fetch(
        &mut self,
        key: &[u8],
        cached: Option<CachedEntry>,
    ) -> Result<FetchOutcome, PluginError> {
        let name = key.strip_prefix(&self.strip_prefix[..]).unwrap_or(key);
        let url = format!("{}{}", self.base_url, percent_encode(name));
        let mut headers: Vec<(&str, &[u8])> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        let etag = cached.as_ref().and_then(|c| c.etag.clone());
        if let Some(tag) = &etag {
            headers.push(("if-none-match", tag.as_bytes()));
        }
        let resp = http::get(&url, &headers, self.max_body)
            .map_err(|e| PluginError::Failed(format!("GET {url}: {e}")))?;
        let ttl_ms = if self.honor_cache_control {
            resp.header("cache-control").and_then(max_age_ms)
        } else {
            None
        };
        match resp.status {
            200 => {
                let value = match self.format {
                    Format::Raw => resp.body.clone(),
                    Format::Json => self.json_value(&url, &resp.body)?,
                };
                Ok(FetchOutcome::Fresh(FreshValue {
                    value,
                    ttl_ms,
                    etag: resp.header("etag").map(str::to_string),
                }))
            }
            304 if etag.is_some() => Ok(FetchOutcome::NotModified(ttl_ms)),
            404 | 410 => Ok(FetchOutcome::NotFound(None)),
            status => Err(PluginError::Failed(format!(
                "GET {url}: origin answered {status}"
            ))),
        }
    }
}

impl HttpFetcher {
    fn json_value(&self, url: &str, body: &[u8]) -> Result<Vec<u8>, PluginError> {
        let doc: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| PluginError::Failed(format!("GET {url}: body is not JSON: {e}")))?;
        let Some(pointer) = &self.json_pointer else {
            return Ok(body.to_vec());
        };
        match doc.pointer(pointer) {
            None => Err(PluginError::Failed(format!(
                "GET {url}: JSON has nothing at {pointer}"
            ))),
            Some(serde_json::Value::String(s)) => Ok(s.as_bytes().to_vec()),
            Some(other) => Ok(other.to_string().into_bytes()),
        }
    }
}

/// `max-age=N` (seconds) of a Cache-Control header, in milliseconds; `no-cache` and
/// `no-store` count as 0 (stale at once, so the next read revalidates).
fn max_age_ms(cc: &str) -> Option<u64> {
    cc.split(',').map(str::trim).find_map(|d| {
        if d.eq_ignore_ascii_case("no-cache") || d.eq_ignore_ascii_case("no-store") {
            Some(0)
        } else {
            let (k, v) = d.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("max-age")
                .then(|| v.trim().parse::<u64>().ok())
                .flatten()
                .map(|s| s.saturating_mul(1000))
        }
    })
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so any key bytes make
/// a valid path segment.
fn percent_encode(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for &c in b {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            s.push(c as char);
        } else {
            s.push_str(&format!("%{c:02X}"));
        }
    }
    s
}

export_origin_fetcher!(HttpFetcher);
