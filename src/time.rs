//! Why this module exists: times cross every layer as unix seconds and are shown one way,
//! RFC 3339 UTC, in the handoff, the journal, the report and on the terminal; the conversions
//! live here once.

/// RFC 3339 UTC (`2019-02-06T15:34:58Z`) for unix seconds; out-of-range values print as numbers.
pub fn rfc3339(secs: i64) -> String {
    match jiff::Timestamp::from_second(secs) {
        Ok(t) => t.to_string(),
        Err(_) => secs.to_string(),
    }
}

/// Now, RFC 3339 UTC with millisecond precision.
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    let ms = now.as_millisecond();
    jiff::Timestamp::from_millisecond(ms)
        .unwrap_or(now)
        .to_string()
}

/// Unix seconds as `2019-02-06T15:34:58Z` (whole seconds), or empty for none or out of range:
/// the form `list` prints.
pub fn seconds(t: Option<i64>) -> String {
    match t.and_then(|s| jiff::Timestamp::from_second(s).ok()) {
        Some(ts) => ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => String::new(),
    }
}
