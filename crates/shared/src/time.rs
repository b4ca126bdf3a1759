//! Timestamps: RFC 3339 in UTC everywhere we persist them.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::{LakehouseError, Result};

pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parse an RFC 3339 timestamp or a bare date (`2026-11-21`, read as midnight UTC).
pub fn parse_instant(text: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Ok(t.and_utc());
    }
    Err(LakehouseError::InvalidInput(format!(
        "cannot read '{text}' as a time: use RFC 3339 (2026-11-21T08:00:00Z) or a date (2026-11-21)"
    )))
}
