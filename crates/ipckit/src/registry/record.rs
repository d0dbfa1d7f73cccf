//! The record file of one registered service instance: versioned JSON, one
//! file per instance, named `PID-START-N.json` after its owner process (so the
//! owner of a record that cannot be read is still known) and written whole
//! (a temporary file renamed into place, so a reader never sees half a record).
//!
//! ```json
//! {
//!   "format": "ipckit-service",
//!   "version": 1,
//!   "name": "billing",
//!   "address": "pipe:billing-1",
//!   "kind": "rpc",
//!   "pid": 4242,
//!   "start_time": 123456789,
//!   "process": "billing-server",
//!   "registered_at_ms": 1764763200000,
//!   "metadata": { "version": "2" }
//! }
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::Kind;
use crate::Address;

/// The value of `format`.
const FORMAT: &str = "ipckit-service";
/// The record version this ipckit writes and reads.
pub(super) const VERSION: u64 = 1;

/// A record's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Record {
    pub(super) name: String,
    pub(super) address: Address,
    pub(super) kind: Kind,
    pub(super) pid: u32,
    pub(super) start_time: u64,
    pub(super) process: String,
    pub(super) registered_at: SystemTime,
    pub(super) metadata: BTreeMap<String, String>,
}

impl Record {
    /// The record as its file holds it.
    pub(super) fn to_json(&self) -> String {
        let ms = self
            .registered_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let record = json!({
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "address": self.address.to_string(),
            "kind": self.kind.as_str(),
            "pid": self.pid,
            "start_time": self.start_time,
            "process": self.process,
            "registered_at_ms": ms,
            "metadata": self.metadata,
        });
        let mut text = serde_json::to_string_pretty(&record).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Parses a record file's text; the error says what is wrong with it.
    pub(super) fn parse(text: &str) -> Result<Record, String> {
        if text.trim().is_empty() {
            return Err("it is empty (truncated?)".into());
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("it is not valid JSON: {e}"))?;
        let obj = value
            .as_object()
            .ok_or("it is not a JSON object".to_owned())?;
        if obj.get("format").and_then(Value::as_str) != Some(FORMAT) {
            return Err(format!("its \"format\" is not {FORMAT:?}"));
        }
        let version = field(obj, "version", Value::as_u64)?;
        if version != VERSION {
            return Err(format!(
                "it is record version {version}; this ipckit reads version {VERSION}"
            ));
        }
        let name = field(obj, "name", Value::as_str)?.to_owned();
        let address_text = field(obj, "address", Value::as_str)?;
        let address: Address = address_text
            .parse()
            .map_err(|e| format!("its \"address\" is invalid: {e}"))?;
        let kind_text = field(obj, "kind", Value::as_str)?;
        let kind = Kind::from_name(kind_text)
            .ok_or_else(|| format!("its \"kind\" {kind_text:?} is unknown"))?;
        let pid = field(obj, "pid", Value::as_u64)?;
        let pid = u32::try_from(pid).map_err(|_| format!("its \"pid\" {pid} is out of range"))?;
        let mut metadata = BTreeMap::new();
        if let Some(meta) = obj.get("metadata") {
            let meta = meta
                .as_object()
                .ok_or("its \"metadata\" is not an object".to_owned())?;
            for (k, v) in meta {
                let v = v
                    .as_str()
                    .ok_or_else(|| format!("its metadata {k:?} is not a string"))?;
                metadata.insert(k.clone(), v.to_owned());
            }
        }
        Ok(Record {
            name,
            address,
            kind,
            pid,
            start_time: field(obj, "start_time", Value::as_u64)?,
            process: obj
                .get("process")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            registered_at: UNIX_EPOCH
                + Duration::from_millis(field(obj, "registered_at_ms", Value::as_u64)?),
            metadata,
        })
    }
}

/// A required field of the type `get` reads.
fn field<'a, T>(
    obj: &'a Map<String, Value>,
    key: &str,
    get: impl Fn(&'a Value) -> Option<T>,
) -> Result<T, String> {
    match obj.get(key) {
        None => Err(format!("it lacks the field {key:?}")),
        Some(v) => get(v).ok_or_else(|| format!("its field {key:?} has the wrong type: {v}")),
    }
}

/// The file name of a record: `PID-START-N.json`.
pub(super) fn file_name(pid: u32, start_time: u64, n: u64) -> String {
    format!("{pid}-{start_time}-{n}.json")
}

/// The owner named by a record's file name: `(pid, start_time)`; `None` for a
/// name that is not a record's.
pub(super) fn owner_of(file_name: &str) -> Option<(u32, u64)> {
    let stem = file_name.strip_suffix(".json")?;
    let mut parts = stem.splitn(3, '-');
    let pid = parts.next()?.parse().ok()?;
    let start = parts.next()?.parse().ok()?;
    parts.next()?.parse::<u64>().ok()?;
    Some((pid, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            name: "billing".into(),
            address: "pipe:billing-1".parse().unwrap(),
            kind: Kind::Rpc,
            pid: 42,
            start_time: 7,
            process: "srv".into(),
            registered_at: UNIX_EPOCH + Duration::from_millis(1_764_763_200_000),
            metadata: BTreeMap::from([("version".into(), "2".into())]),
        }
    }

    #[test]
    fn round_trips() {
        let r = sample();
        assert_eq!(Record::parse(&r.to_json()).unwrap(), r);
    }

    #[test]
    fn says_what_is_wrong() {
        let cases = [
            ("", "empty"),
            ("{\"format\":\"ipckit-service\",\"vers", "not valid JSON"),
            ("[1]", "not a JSON object"),
            ("{\"format\":\"x\"}", "\"format\""),
            (
                "{\"format\":\"ipckit-service\",\"version\":2}",
                "record version 2",
            ),
            (
                "{\"format\":\"ipckit-service\",\"version\":1}",
                "lacks the field \"name\"",
            ),
        ];
        for (text, needle) in cases {
            let err = Record::parse(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
        let bad_kind = sample().to_json().replace("\"rpc\"", "\"fax\"");
        assert!(Record::parse(&bad_kind).unwrap_err().contains("\"fax\""));
    }

    #[test]
    fn file_names_name_the_owner() {
        let name = file_name(42, 7, 3);
        assert_eq!(name, "42-7-3.json");
        assert_eq!(owner_of(&name), Some((42, 7)));
        assert_eq!(owner_of("42-7.json"), None);
        assert_eq!(owner_of(".42-7-3.tmp"), None);
    }
}
