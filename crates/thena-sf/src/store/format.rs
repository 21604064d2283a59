//! How a snapshot is stored (`pending.snapshot`, `dead_letters.snapshot`):
//! its JSON with the format's version first, `{"v":1,…}`. A later connector
//! reads the rows an older one wrote (and upgrades them here as the format
//! changes); an older connector, started again on a newer store, parks what
//! it cannot read with the reason instead of misreading it.
//!
//! Rows written before the version existed carry none: they are format 1
//! (the same fields).

use thiserror::Error;

use crate::domain::snapshot::Snapshot;

/// The format this connector writes.
pub const FORMAT: u32 = 1;

#[derive(Debug, Error)]
pub enum FormatError {
    #[error("stored in format {0}, written by a newer connector (this one reads up to {FORMAT})")]
    Newer(u32),
    #[error("not a stored snapshot: {0}")]
    Json(#[from] serde_json::Error),
}

/// What a stored snapshot starts with: `{` and the format's version.
const HEAD: &str = "{\"v\":1";

/// The stored text of `s`, written in one buffer (ingest writes one per event).
pub fn encode(s: &Snapshot) -> String {
    let mut buf = Vec::with_capacity(512);
    buf.extend_from_slice(HEAD.as_bytes());
    serde_json::to_writer(&mut buf, s).expect("snapshots serialise");
    // The snapshot's own `{` becomes the comma after the version (a snapshot
    // always has fields: its id and times are never skipped).
    buf[HEAD.len()] = b',';
    String::from_utf8(buf).expect("JSON is UTF-8")
}

/// The snapshot stored as `text`, in any format up to [`FORMAT`].
pub fn decode(text: &str) -> Result<Snapshot, FormatError> {
    let v = version_of(text);
    if v > FORMAT {
        return Err(FormatError::Newer(v));
    }
    // Format 1 is the snapshot's own fields (`v` is passed over).
    Ok(serde_json::from_str(text)?)
}

/// The version a stored text says it has (1 when it says none).
fn version_of(text: &str) -> u32 {
    text.strip_prefix("{\"v\":")
        .and_then(|rest| {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..digits].parse().ok()
        })
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::snapshot::Snapshot;

    fn snapshot() -> Snapshot {
        let body = br#"{"action":"UPDATE","request":{"requestId":"R-1","createdAt":1764000000000,"updatedAt":1764000001000,"status":"OPEN"},"AI_requestTitle":"T"}"#;
        crate::thena::webhook::parse(body).unwrap().snapshot
    }

    #[test]
    fn a_snapshot_reads_back_and_says_its_format_first() {
        let s = snapshot();
        let text = encode(&s);
        assert!(text.starts_with("{\"v\":1,"), "{text}");
        assert_eq!(decode(&text).unwrap(), s);
    }

    #[test]
    fn the_prefix_names_the_format_written() {
        assert_eq!(HEAD, format!("{{\"v\":{FORMAT}"));
    }

    #[test]
    fn rows_from_before_the_version_read_as_format_one() {
        let s = snapshot();
        let legacy = serde_json::to_string(&s).unwrap();
        assert_eq!(decode(&legacy).unwrap(), s);
    }

    #[test]
    fn a_newer_format_is_refused_with_a_reason() {
        let text = encode(&snapshot()).replacen("{\"v\":1,", "{\"v\":2,", 1);
        let e = decode(&text).unwrap_err();
        assert!(matches!(e, FormatError::Newer(2)), "{e}");
        assert!(e.to_string().contains("newer connector"));
    }
}
