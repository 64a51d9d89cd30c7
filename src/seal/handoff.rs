//! Why this module exists: the handoff file is the one artefact users keep (docs/DESIGN.md §3). It must
//! open with plain `age -d` and no tokenfleet installed, so its plaintext is a simple CSV or
//! JSON table built here. Rows are encoded one at a time into a zeroizing buffer sized up front
//! (no reallocation leaves copies behind) and encrypted as a stream straight into the atomic
//! 0600 temp file, so memory never holds the whole plaintext or ciphertext. `open` parses the
//! same formats back and renders them for the terminal.

use super::sealer::{SealError, Sealer};
use crate::atomic::write_atomic_with;
use crate::secret::Secret;
pub use crate::time::rfc3339;
use std::io::Write;
use std::path::Path;
use zeroize::Zeroizing;

/// One new token, as the handoff file lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct HandoffRow {
    pub host: String,
    pub account: String,
    pub token_name: String,
    pub token: Secret,
    /// Where the token works: `https://ADDRESS:PORT`.
    pub url: String,
    /// Unix seconds (the server's `create_time`).
    pub created_at: i64,
    /// Unix seconds, `None` = never expires.
    pub expires_at: Option<i64>,
}

/// A handoff row borrowed from wherever the token is kept (a minted token, a journal row), so
/// writing the handoff copies no secret.
#[derive(Debug, Clone, Copy)]
pub struct RowRef<'a> {
    pub host: &'a str,
    pub account: &'a str,
    pub token_name: &'a str,
    pub token: &'a Secret,
    pub url: &'a str,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

impl HandoffRow {
    pub fn as_row_ref(&self) -> RowRef<'_> {
        RowRef {
            host: &self.host,
            account: &self.account,
            token_name: &self.token_name,
            token: &self.token,
            url: &self.url,
            created_at: self.created_at,
            expires_at: self.expires_at,
        }
    }
}

/// The plaintext layout inside the age file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HandoffFormat {
    #[default]
    Csv,
    Json,
}

pub const CSV_HEADER: &str = "host,account,token_name,token,url,created_at,expires_at";
const COLUMNS: [&str; 7] = [
    "host",
    "account",
    "token_name",
    "token",
    "url",
    "created_at",
    "expires_at",
];

fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    s.parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .map_err(|e| format!("'{s}' is not an RFC 3339 time: {e}"))
}

fn push_csv_field(out: &mut Vec<u8>, s: &str) {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        out.push(b'"');
        for b in s.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

fn row_times(r: &RowRef<'_>) -> (String, String) {
    (
        rfc3339(r.created_at),
        r.expires_at.map(rfc3339).unwrap_or_default(),
    )
}

/// An upper bound of one row's encoded size, so a row buffer never reallocates (a
/// reallocation would free a copy of the plaintext without zeroizing it).
fn row_bound(r: &RowRef<'_>, json: bool) -> usize {
    let per_char = if json { 6 } else { 2 };
    let mut n = 200;
    for f in [r.host, r.account, r.token_name, r.url, r.token.expose()] {
        n += f.len() * per_char + 2;
    }
    n
}

/// Encode one row (CSV line, or JSON object with its leading separator) into `out`.
fn encode_row(out: &mut Vec<u8>, r: &RowRef<'_>, format: HandoffFormat, first: bool) {
    let (c, e) = row_times(r);
    match format {
        HandoffFormat::Csv => {
            let fields = [
                r.host,
                r.account,
                r.token_name,
                r.token.expose(),
                r.url,
                &c,
                &e,
            ];
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_csv_field(out, f);
            }
            out.push(b'\n');
        }
        HandoffFormat::Json => {
            out.extend_from_slice(if first { b"\n  {" } else { b",\n  {" });
            let fields: [(&str, Option<&str>); 7] = [
                ("host", Some(r.host)),
                ("account", Some(r.account)),
                ("token_name", Some(r.token_name)),
                ("token", Some(r.token.expose())),
                ("url", Some(r.url)),
                ("created_at", Some(&c)),
                ("expires_at", r.expires_at.map(|_| e.as_str())),
            ];
            for (j, (k, v)) in fields.iter().enumerate() {
                if j > 0 {
                    out.extend_from_slice(b", ");
                }
                write!(out, "\"{k}\": ").expect("write to Vec");
                match v {
                    // serde_json writes strings straight into the reserved buffer.
                    Some(v) => serde_json::to_writer(&mut *out, v).expect("write to Vec"),
                    None => out.extend_from_slice(b"null"),
                }
            }
            out.push(b'}');
        }
    }
}

/// Stream the handoff plaintext into `w`, one row at a time through a zeroizing row buffer.
/// Anything that reads as one handoff row.
pub trait AsRow {
    fn as_row(&self) -> RowRef<'_>;
}

impl AsRow for RowRef<'_> {
    fn as_row(&self) -> RowRef<'_> {
        RowRef { ..*self }
    }
}

pub fn write_rows<W: Write, R: AsRow>(
    w: &mut W,
    rows: impl IntoIterator<Item = R>,
    format: HandoffFormat,
) -> std::io::Result<()> {
    match format {
        HandoffFormat::Csv => {
            w.write_all(CSV_HEADER.as_bytes())?;
            w.write_all(b"\n")?;
        }
        HandoffFormat::Json => w.write_all(b"[")?,
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(1024));
    let mut first = true;
    for r in rows {
        let r = r.as_row();
        let need = row_bound(&r, format == HandoffFormat::Json);
        if buf.capacity() < need {
            // A fresh buffer, never a reallocation: the old one is zeroized as it drops.
            buf = Zeroizing::new(Vec::with_capacity(need));
        }
        buf.clear();
        encode_row(&mut buf, &r, format, first);
        w.write_all(&buf)?;
        first = false;
    }
    if format == HandoffFormat::Json {
        w.write_all(if first { b"]\n" } else { b"\n]\n" })?;
    }
    Ok(())
}

/// Encode rows as the handoff plaintext, in one buffer sized up front.
pub fn encode_rows(rows: &[HandoffRow], format: HandoffFormat) -> Zeroizing<Vec<u8>> {
    let json = format == HandoffFormat::Json;
    let bound = 256
        + rows
            .iter()
            .map(|r| row_bound(&r.as_row_ref(), json))
            .sum::<usize>();
    let mut out = Zeroizing::new(Vec::with_capacity(bound));
    write_rows(&mut *out, rows.iter().map(HandoffRow::as_row_ref), format).expect("write to Vec");
    out
}

/// Parse a handoff plaintext (CSV or JSON, detected) back into rows. `what` names the source.
pub fn parse_rows(plain: &[u8], what: &str) -> Result<Vec<HandoffRow>, SealError> {
    let first = plain.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        parse_json(plain, what)
    } else {
        parse_csv(plain, what)
    }
}

fn parse_json(plain: &[u8], what: &str) -> Result<Vec<HandoffRow>, SealError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Row {
        host: String,
        account: String,
        token_name: String,
        token: String,
        url: String,
        created_at: serde_json::Value,
        expires_at: Option<serde_json::Value>,
    }
    let rows: Vec<Row> = serde_json::from_slice(plain).map_err(|e| {
        SealError::invalid(
            what,
            format!("handoff JSON line {}: {}", e.line(), classify(&e)),
        )
    })?;
    let time = |v: &serde_json::Value, i: usize, field: &str| -> Result<Option<i64>, SealError> {
        let loc = || format!("{what}: row {}", i + 1);
        match v {
            serde_json::Value::Null => Ok(None),
            serde_json::Value::Number(n) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| SealError::invalid(loc(), format!("{field}: not a time"))),
            serde_json::Value::String(s) if s.is_empty() => Ok(None),
            serde_json::Value::String(s) => parse_time(s)
                .map(Some)
                .map_err(|m| SealError::invalid(loc(), format!("{field}: {m}"))),
            _ => Err(SealError::invalid(loc(), format!("{field}: not a time"))),
        }
    };
    rows.into_iter()
        .enumerate()
        .map(|(i, r)| {
            let created = time(&r.created_at, i, "created_at")?.ok_or_else(|| {
                SealError::invalid(format!("{what}: row {}", i + 1), "created_at is missing")
            })?;
            let expires = match &r.expires_at {
                None => None,
                Some(v) => time(v, i, "expires_at")?,
            };
            Ok(HandoffRow {
                host: r.host,
                account: r.account,
                token_name: r.token_name,
                token: Secret::new(r.token),
                url: r.url,
                created_at: created,
                expires_at: expires,
            })
        })
        .collect()
}

/// serde_json error text without the offending input (it may hold a token).
fn classify(e: &serde_json::Error) -> &'static str {
    use serde_json::error::Category;
    match e.classify() {
        Category::Io => "read error",
        Category::Syntax => "invalid JSON",
        Category::Data => "wrong field names or types (expected the handoff columns)",
        Category::Eof => "truncated JSON",
    }
}

fn parse_csv(plain: &[u8], what: &str) -> Result<Vec<HandoffRow>, SealError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(plain);
    let headers = rdr
        .headers()
        .map_err(|e| SealError::invalid(what, format!("unreadable CSV header: {e}")))?
        .clone();
    let got: Vec<&str> = headers.iter().map(str::trim).collect();
    if got != COLUMNS {
        return Err(
            SealError::invalid(what, format!("unexpected CSV header '{}'", got.join(",")))
                .with_hint(format!("a handoff CSV starts with '{CSV_HEADER}'")),
        );
    }
    let mut rows = Vec::new();
    let mut rec = csv::StringRecord::new();
    loop {
        let line = rdr.position().line();
        match rdr.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            // The csv error text names positions, never field contents.
            Err(e) => {
                return Err(SealError::invalid(
                    format!("{what}: line {line}"),
                    e.to_string(),
                ));
            }
        }
        let loc = || format!("{what}: line {}", rec.position().map_or(line, |p| p.line()));
        let created = parse_time(&rec[5])
            .map_err(|m| SealError::invalid(loc(), format!("created_at: {m}")))?;
        let expires = if rec[6].trim().is_empty() {
            None
        } else {
            Some(
                parse_time(&rec[6])
                    .map_err(|m| SealError::invalid(loc(), format!("expires_at: {m}")))?,
            )
        };
        rows.push(HandoffRow {
            host: rec[0].to_string(),
            account: rec[1].to_string(),
            token_name: rec[2].to_string(),
            token: Secret::new(&rec[3]),
            url: rec[4].to_string(),
            created_at: created,
            expires_at: expires,
        });
    }
    Ok(rows)
}

#[cfg(test)]
/// Seal `rows` and write the handoff file atomically (0600, fsynced; refuses to overwrite an
/// existing file unless `force`).
pub fn write_handoff(
    path: &Path,
    rows: &[HandoffRow],
    format: HandoffFormat,
    sealer: &Sealer,
    armor: bool,
    force: bool,
) -> Result<(), SealError> {
    write_handoff_rows(
        path,
        rows.iter().map(HandoffRow::as_row_ref),
        format,
        sealer,
        armor,
        force,
    )
}

/// [`write_handoff`] for borrowed rows. The plaintext is encrypted as it is produced, straight
/// into the temp file: memory holds one row of plaintext and one age chunk, not the whole file.
pub fn write_handoff_rows<R: AsRow>(
    path: &Path,
    rows: impl IntoIterator<Item = R>,
    format: HandoffFormat,
    sealer: &Sealer,
    armor: bool,
    force: bool,
) -> Result<(), SealError> {
    write_atomic_with(path, force, |file| {
        let mut w = sealer
            .seal_to(std::io::BufWriter::new(file), armor)
            .map_err(std::io::Error::other)?;
        write_rows(&mut w, rows, format)?;
        w.finish()?.flush()
    })
    .map_err(|e| SealError::io(path, e))
}

/// `-o -`: the handoff streamed into `out` (standard output: no temporary file, no rename, a
/// pipe has neither). A reader that goes away mid-way is an error: the journal still holds
/// every secret.
pub fn write_handoff_rows_to<W: Write, R: AsRow>(
    out: W,
    rows: impl IntoIterator<Item = R>,
    format: HandoffFormat,
    sealer: &Sealer,
    armor: bool,
) -> Result<(), SealError> {
    let stdout = Path::new("standard output");
    let mut w = sealer.seal_to(std::io::BufWriter::new(out), armor)?;
    write_rows(&mut w, rows, format).map_err(|e| SealError::io(stdout, e))?;
    w.finish()
        .and_then(|mut b| b.flush())
        .map_err(|e| SealError::io(stdout, e))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::seal::{Keys, Recipients};
    use age::x25519;
    use std::os::unix::fs::PermissionsExt;

    pub(crate) fn sample_rows() -> Vec<HandoffRow> {
        vec![
            HandoffRow {
                host: "web1".into(),
                account: "alice".into(),
                token_name: "deploy-20250101".into(),
                token: Secret::new("JPQNSRU0DH448UJLGXH7KVJECC5QN9N9"),
                url: "https://203.0.113.10:2083".into(),
                created_at: 1_549_467_298,
                expires_at: Some(1_609_372_800),
            },
            HandoffRow {
                host: "web,2 \"quoted\"".into(),
                account: "bob".into(),
                token_name: "deploy-20250101".into(),
                token: Secret::new("ZZZZSRU0DH448UJLGXH7KVJECC5QN9N9"),
                url: "https://web2.example:2087".into(),
                created_at: 1_700_000_000,
                expires_at: None,
            },
        ]
    }

    #[test]
    fn csv_shape_and_roundtrip() {
        let rows = sample_rows();
        let plain = encode_rows(&rows, HandoffFormat::Csv);
        let text = std::str::from_utf8(&plain).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next().unwrap(), CSV_HEADER);
        assert_eq!(
            lines.next().unwrap(),
            "web1,alice,deploy-20250101,JPQNSRU0DH448UJLGXH7KVJECC5QN9N9,https://203.0.113.10:2083,\
             2019-02-06T15:34:58Z,2020-12-31T00:00:00Z"
        );
        assert!(lines.next().unwrap().ends_with(",2023-11-14T22:13:20Z,"));
        assert_eq!(parse_rows(&plain, "t").unwrap(), rows);
    }

    #[test]
    fn json_shape_and_roundtrip() {
        let rows = sample_rows();
        let plain = encode_rows(&rows, HandoffFormat::Json);
        let v: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        let arr = v.as_array().unwrap();
        assert_eq!(arr.len(), 2);
        assert_eq!(arr[0]["token"], "JPQNSRU0DH448UJLGXH7KVJECC5QN9N9");
        assert_eq!(arr[0]["created_at"], "2019-02-06T15:34:58Z");
        assert_eq!(arr[1]["expires_at"], serde_json::Value::Null);
        assert_eq!(arr[1]["host"], "web,2 \"quoted\"");
        assert_eq!(arr[0].as_object().unwrap().len(), 7);
        assert_eq!(parse_rows(&plain, "t").unwrap(), rows);
        assert_eq!(&encode_rows(&[], HandoffFormat::Json)[..], b"[]\n");
        assert!(
            parse_rows(&encode_rows(&[], HandoffFormat::Json), "t")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn buffers_never_reallocate() {
        let rows = sample_rows();
        for f in [HandoffFormat::Csv, HandoffFormat::Json] {
            let json = f == HandoffFormat::Json;
            // Each row fits the bound its buffer is sized to, so no reallocation ever leaves
            // an unzeroized copy of a token behind.
            for r in &rows {
                let mut one = Vec::new();
                encode_row(&mut one, &r.as_row_ref(), f, false);
                assert!(one.len() <= row_bound(&r.as_row_ref(), json));
            }
            let plain = encode_rows(&rows, f);
            let bound = 256
                + rows
                    .iter()
                    .map(|r| row_bound(&r.as_row_ref(), json))
                    .sum::<usize>();
            assert_eq!(plain.capacity(), bound, "sized once, never grown");
        }
    }

    /// The streamed handoff decrypts to exactly the buffered plaintext.
    #[test]
    fn streamed_handoff_matches_the_buffered_plaintext() {
        let id = age::x25519::Identity::generate();
        let sealer = Sealer::to_keys(vec![id.to_public()]);
        let rows = sample_rows();
        let d = tempfile::tempdir().unwrap();
        for (f, armor) in [(HandoffFormat::Csv, false), (HandoffFormat::Json, true)] {
            let path = d.path().join(format!("h-{armor}.age"));
            write_handoff(&path, &rows, f, &sealer, armor, false).unwrap();
            let keys = super::super::Keys::from_identities(vec![id.clone()]);
            let plain = keys.decrypt(&std::fs::read(&path).unwrap(), "h").unwrap();
            assert_eq!(&plain[..], &encode_rows(&rows, f)[..]);
        }
    }

    #[test]
    fn bad_csv_is_reported_by_line() {
        let e = parse_rows(b"host,account\nweb1,alice\n", "h.age")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unexpected CSV header"), "{e}");
        let bad = format!("{CSV_HEADER}\nweb1,a,n,TOKEN,u,yesterday,\n");
        let e = parse_rows(bad.as_bytes(), "h.age").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("created_at"), "{e}");
    }

    #[test]
    fn handoff_file_roundtrip_0600_and_no_plaintext() {
        let d = tempfile::tempdir().unwrap();
        let id = x25519::Identity::generate();
        let sealer = Sealer::to_keys(vec![id.to_public()]);
        let rows = sample_rows();
        for (armor, format) in [(false, HandoffFormat::Csv), (true, HandoffFormat::Json)] {
            let p = d.path().join(format!("out-{armor}.age"));
            write_handoff(&p, &rows, format, &sealer, armor, false).unwrap();
            let bytes = std::fs::read(&p).unwrap();
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
            for r in &rows {
                let tok = r.token.expose().as_bytes();
                assert!(
                    !bytes.windows(tok.len()).any(|w| w == tok),
                    "plaintext token in file"
                );
            }
            assert!(!bytes.windows(5).any(|w| w == b"alice"));
            let keys = Keys::from_identities(vec![id.clone()]);
            let plain = keys.decrypt(&bytes, "out").unwrap();
            assert_eq!(parse_rows(&plain, "out").unwrap(), rows);
            // Refuses to overwrite without force.
            let e = write_handoff(&p, &rows, format, &sealer, armor, false).unwrap_err();
            assert!(e.to_string().contains("already exists"), "{e}");
        }
        let mut names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        names.retain(|e| e.file_name().to_string_lossy().contains("tmp"));
        assert!(names.is_empty(), "temp files left behind");
    }

    #[test]
    fn passphrase_handoff() {
        let d = tempfile::tempdir().unwrap();
        let mut r = Recipients::passphrase(Secret::new("hunter2 hunter2"));
        r.set_scrypt_work_factor(10);
        let p = d.path().join("out.age");
        write_handoff(
            &p,
            &sample_rows(),
            HandoffFormat::Csv,
            &Sealer::new(&r),
            true,
            false,
        )
        .unwrap();
        let keys = Keys::new().with_passphrase(Secret::new("hunter2 hunter2"));
        let plain = keys.decrypt(&std::fs::read(&p).unwrap(), "out").unwrap();
        assert_eq!(parse_rows(&plain, "out").unwrap(), sample_rows());
    }

    /// Interop: the real `age` CLI must open the handoff. Skipped only when `age` is missing
    /// and `CI` is unset; in CI a missing `age` is a failure.
    #[test]
    fn age_cli_opens_the_handoff() {
        if !crate::seal::age_cli_available() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let id = x25519::Identity::generate();
        let key = d.path().join("key.txt");
        let sk = age::secrecy::ExposeSecret::expose_secret(&id.to_string()).to_string();
        std::fs::write(&key, format!("{sk}\n")).unwrap();
        let rows = sample_rows();
        let sealer = Sealer::to_keys(vec![id.to_public()]);
        for armor in [false, true] {
            let out = d.path().join(format!("out-{armor}.age"));
            write_handoff(&out, &rows, HandoffFormat::Csv, &sealer, armor, false).unwrap();
            let o = std::process::Command::new("age")
                .arg("-d")
                .arg("-i")
                .arg(&key)
                .arg(&out)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "age -d failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert_eq!(o.stdout, &encode_rows(&rows, HandoffFormat::Csv)[..]);
        }
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        fn row() -> impl Strategy<Value = HandoffRow> {
            (
                "[ -~]{0,20}",
                "[a-z0-9]{1,16}",
                "[A-Za-z0-9_-]{1,50}",
                "[A-Z0-9]{32}",
                "https://[a-z0-9.]{1,20}:[0-9]{4}",
                0i64..4_000_000_000,
                proptest::option::of(0i64..4_000_000_000),
            )
                .prop_map(|(host, account, token_name, token, url, c, e)| HandoffRow {
                    host,
                    account,
                    token_name,
                    token: Secret::new(token),
                    url,
                    created_at: c,
                    expires_at: e,
                })
        }

        proptest! {
            #[test]
            fn rows_roundtrip_in_both_formats(rows in proptest::collection::vec(row(), 0..8)) {
                for f in [HandoffFormat::Csv, HandoffFormat::Json] {
                    let plain = encode_rows(&rows, f);
                    prop_assert!(plain.len() <= plain.capacity());
                    prop_assert_eq!(parse_rows(&plain, "p").unwrap(), rows.clone());
                }
            }

            #[test]
            fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
                let _ = parse_rows(&bytes, "p");
            }
        }
    }
}
