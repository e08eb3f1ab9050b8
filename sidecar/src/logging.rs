//! The process' log: a `tracing` subscriber writing to stderr, as text for people
//! (coloured only on a terminal, unless told) or as JSON lines for log pipelines.

use crate::config::{LogColor, LogConfig, LogFormat};
use anyhow::Context;
use std::io::IsTerminal;

/// Whether text lines carry colour escapes.
fn colour(choice: LogColor, terminal: bool, no_color: bool) -> bool {
    match choice {
        LogColor::Always => true,
        LogColor::Never => false,
        LogColor::Auto => terminal && !no_color,
    }
}

/// Installs the subscriber for the whole process.
pub fn init(cfg: &LogConfig) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.level)
        .with_context(|| format!("log level '{}'", cfg.level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cfg.format {
        LogFormat::Text => {
            // NO_COLOR's convention: set to anything non-empty, it turns colour off.
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            builder
                .with_ansi(colour(cfg.color, std::io::stderr().is_terminal(), no_color))
                .init();
        }
        LogFormat::Json => builder
            .json()
            .with_ansi(false)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
    Ok(())
}

/// The line that tells scripts and tests on stdout that the server is ready: plain
/// text, or in the JSON format a JSON line like the log's, so a container's log (both
/// streams) stays JSON throughout.
pub fn ready_line(format: LogFormat) -> String {
    const READY: &str = "caskade ready";
    match format {
        LogFormat::Text => READY.to_string(),
        LogFormat::Json => serde_json::json!({
            "timestamp": rfc3339(std::time::SystemTime::now()),
            "level": "INFO",
            "fields": { "message": READY },
            "target": "caskade::server",
        })
        .to_string(),
    }
}

/// `2026-12-07T01:46:52.632847Z`, as the log's own timestamps.
fn rfc3339(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        d.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let at = |s: u64| std::time::UNIX_EPOCH + std::time::Duration::from_micros(s);
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339(at(1_796_607_412_632_847)),
            "2026-12-07T01:36:52.632847Z"
        );
        assert_eq!(
            rfc3339(at(951_782_400_000_001)),
            "2000-02-29T00:00:00.000001Z"
        );
    }

    #[test]
    fn the_ready_line_is_json_in_the_json_format() {
        assert_eq!(ready_line(LogFormat::Text), "caskade ready");
        let v: serde_json::Value =
            serde_json::from_str(&ready_line(LogFormat::Json)).expect("json");
        assert_eq!(v["fields"]["message"], "caskade ready");
        assert_eq!(v["level"], "INFO");
    }

    #[test]
    fn colour_only_on_a_terminal_unless_asked() {
        assert!(colour(LogColor::Auto, true, false));
        assert!(!colour(LogColor::Auto, false, false));
        assert!(!colour(LogColor::Auto, true, true));
        assert!(colour(LogColor::Always, false, true));
        assert!(!colour(LogColor::Never, true, false));
    }
}
