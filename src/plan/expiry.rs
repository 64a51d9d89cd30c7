//! `--expires-in` and `--expires-at`: a duration or a time, checked to be in the future
//! before any request (cPanel refuses past expiry dates).

use crate::error::Problem;

/// `--expires-in` / `--expires-at` to unix seconds, checked to be in the future.
pub fn expiry(expires_in: Option<&str>, expires_at: Option<&str>) -> Result<Option<i64>, Problem> {
    let now = jiff::Timestamp::now();
    if let Some(d) = expires_in {
        let span: jiff::Span = d.trim().parse().map_err(|_| {
            Problem::new("--expires-in", format!("\"{d}\" is not a duration"))
                .hint("write it like 90d, 12h, 2w, \"1 week\" or P90D")
        })?;
        let at = now
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .checked_add(span)
            .map_err(|e| Problem::new("--expires-in", format!("\"{d}\" is out of range: {e}")))?
            .timestamp();
        if at <= now {
            return Err(
                Problem::new("--expires-in", format!("\"{d}\" is not in the future"))
                    .hint("give a positive duration"),
            );
        }
        return Ok(Some(at.as_second()));
    }
    if let Some(w) = expires_at {
        let w = w.trim();
        let at = if let Ok(ts) = w.parse::<jiff::Timestamp>() {
            ts
        } else if let Ok(date) = w.parse::<jiff::civil::Date>() {
            date.to_zoned_datetime(jiff::tz::TimeZone::UTC)
                .map_err(|e| Problem::new("--expires-at", e.to_string()))?
                .timestamp()
        } else {
            return Err(
                Problem::new("--expires-at", format!("\"{w}\" is not a time")).hint(
                    "use RFC 3339 (2027-01-31T00:00:00Z) or a date (2027-01-31, midnight UTC)",
                ),
            );
        };
        if at <= now {
            return Err(Problem::new("--expires-at", format!("{at} is in the past"))
                .hint("cPanel refuses expiry dates that are not in the future; pick a later time or use --expires-in"));
        }
        return Ok(Some(at.as_second()));
    }
    Ok(None)
}
