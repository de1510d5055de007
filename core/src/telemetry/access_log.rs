//! Access log lines: one per request, JSON or text.

use std::fmt::Write;

use super::record::RequestRecord;
use crate::expr::datetime::parts;

/// How access log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// No access log.
    #[default]
    Off,
    /// One JSON object per line (the record's upload form).
    Json,
    /// `time client "METHOD path" status ...` in `key=value` pairs.
    Text,
}

/// Which requests are logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    /// Every request.
    #[default]
    All,
    /// Only requests answered with 4xx or 5xx, or that failed.
    Errors,
}

/// The access log's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccessLog {
    /// Line format.
    pub format: LogFormat,
    /// Which requests.
    pub level: LogLevel,
}

/// An unknown format or level name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown access log {what} `{value}` (expected {expected})")]
pub struct UnknownSetting {
    what: &'static str,
    value: String,
    expected: &'static str,
}

impl std::str::FromStr for LogFormat {
    type Err = UnknownSetting;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "off" | "none" => Ok(LogFormat::Off),
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            _ => Err(UnknownSetting {
                what: "format",
                value: s.into(),
                expected: "off, json or text",
            }),
        }
    }
}

impl std::str::FromStr for LogLevel {
    type Err = UnknownSetting;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "all" => Ok(LogLevel::All),
            "errors" | "error" => Ok(LogLevel::Errors),
            _ => Err(UnknownSetting {
                what: "level",
                value: s.into(),
                expected: "all or errors",
            }),
        }
    }
}

impl AccessLog {
    /// Whether the log is on at all.
    pub fn enabled(&self) -> bool {
        self.format != LogFormat::Off
    }

    /// Whether `record` is logged at this level.
    pub fn wants(&self, record: &RequestRecord) -> bool {
        match self.level {
            LogLevel::All => self.enabled(),
            LogLevel::Errors => {
                self.enabled()
                    && (record.status >= 400 || record.status == 0 || record.error.is_some())
            }
        }
    }

    /// Appends the line of `record` (with its newline) to `out`.
    pub fn write_line(&self, record: &RequestRecord, out: &mut String) {
        match self.format {
            LogFormat::Off => {}
            LogFormat::Json => {
                if let Ok(json) = serde_json::to_string(record) {
                    out.push_str(&json);
                    out.push('\n');
                }
            }
            LogFormat::Text => write_text(record, out),
        }
    }
}

/// RFC 3339 UTC with milliseconds.
pub fn rfc3339_ms(ms: i64) -> String {
    let p = parts(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        p.year, p.month, p.day, p.hour, p.minute, p.second, p.milli
    )
}

fn millis(us: u64) -> String {
    format!("{}.{:03}ms", us / 1000, us % 1000)
}

/// Whether a value can go in a text line as is.
fn plain(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

fn field(out: &mut String, key: &str, value: &str) {
    if plain(value) {
        let _ = write!(out, " {key}={value}");
    } else {
        // Quoted with JSON escapes, so a line never splits and never lies.
        let quoted = serde_json::to_string(value).unwrap_or_default();
        let _ = write!(out, " {key}={quoted}");
    }
}

fn write_text(r: &RequestRecord, out: &mut String) {
    let request = format!("{} {}", r.method, r.path);
    let quoted = serde_json::to_string(&request).unwrap_or_default();
    let _ = write!(
        out,
        "{} {} {} {} in={} out={} total={} backend={} gateway={}",
        rfc3339_ms(r.timestamp_ms),
        r.client_ip,
        quoted,
        r.status,
        r.bytes_in,
        r.bytes_out,
        millis(r.total_us),
        millis(r.backend_us),
        millis(r.gateway_us),
    );
    if !r.api.is_empty() {
        field(out, "api", &r.api);
    }
    if !r.operation.is_empty() {
        field(out, "operation", &r.operation);
    }
    if let Some(p) = &r.product {
        field(out, "product", p);
    }
    if let Some(s) = &r.subscription {
        field(out, "subscription", s);
    }
    if !r.cache.is_none() {
        field(out, "cache", r.cache.as_str());
    }
    if let Some(e) = &r.error {
        field(out, "error_source", &e.source);
        field(out, "error_reason", &e.reason);
    }
    field(out, "request_id", &r.request_id);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::record::{CacheStatus, ErrorInfo};

    fn record() -> RequestRecord {
        RequestRecord {
            timestamp_ms: 1_764_684_000_123,
            request_id: "id-1".into(),
            gateway: "gw".into(),
            instance: "i".into(),
            api: "echo".into(),
            operation: "get".into(),
            product: None,
            subscription: Some("s 1".into()),
            method: "GET".into(),
            path: "/echo/\"x\"\n".into(),
            status: 200,
            client_ip: "127.0.0.1".into(),
            bytes_in: 1,
            bytes_out: 2,
            total_us: 1_500,
            backend_us: 1_000,
            gateway_us: 500,
            cache: CacheStatus::Hit,
            error: None,
            weight: 1,
            trace_id: None,
            span_id: None,
            parent_span_id: None,
        }
    }

    #[test]
    fn text_lines_are_one_line_and_quote_what_needs_it() {
        let log = AccessLog {
            format: LogFormat::Text,
            level: LogLevel::All,
        };
        let mut out = String::new();
        log.write_line(&record(), &mut out);
        assert_eq!(
            out,
            "2025-12-02T14:00:00.123Z 127.0.0.1 \"GET /echo/\\\"x\\\"\\n\" 200 in=1 out=2 total=1.500ms backend=1.000ms gateway=0.500ms api=echo operation=get subscription=\"s 1\" cache=hit request_id=id-1\n"
        );
    }

    #[test]
    fn json_lines_parse_back() {
        let log = AccessLog {
            format: LogFormat::Json,
            level: LogLevel::All,
        };
        let mut out = String::new();
        log.write_line(&record(), &mut out);
        assert_eq!(out.matches('\n').count(), 1);
        let back: RequestRecord = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(back, record());
    }

    #[test]
    fn the_errors_level_keeps_failures_only() {
        let log = AccessLog {
            format: LogFormat::Json,
            level: LogLevel::Errors,
        };
        let mut r = record();
        assert!(!log.wants(&r));
        r.status = 404;
        assert!(log.wants(&r));
        r.status = 200;
        r.error = Some(ErrorInfo {
            source: "p".into(),
            reason: "r".into(),
        });
        assert!(log.wants(&r));
        assert!(!AccessLog::default().wants(&r), "off logs nothing");
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert!("xml".parse::<LogFormat>().is_err());
    }
}
