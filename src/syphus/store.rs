//! The response store: every final response, kept as it arrives, addressed by the blake3 of
//! the whole request body.
//!
//! `STORE/responses.jsonl` is an append-only log, one [`Record`] per line, each line written
//! whole and fsynced before the request counts as done. A process killed at any moment leaves
//! at most a torn last line (bytes after the last newline): opening the store cuts it off, so
//! only that request is sent again. A line that does not parse (a damaged disk block) is
//! skipped, and its request is sent again. When one request body appears in several lines, the
//! last one counts.
//!
//! Kept: answers (HTTP 2xx with a message) and refusals that would repeat (HTTP 4xx other than
//! 408, 409 and 429). Not kept: requests whose attempts ran out on rate limits, server errors,
//! time-outs or broken responses; a later run asks them again. The API key is never part of a
//! request body, and every text kept from a response is passed through
//! [`super::client::ApiKey::redact`] first.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// The store file's name inside the store folder.
pub const LOG_NAME: &str = "responses.jsonl";

/// Token counts a response reported (`usage`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// One kept response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// blake3 (hex) of the request body.
    pub key: String,
    /// HTTP status of the final attempt.
    pub status: u16,
    /// The message text (answers); `None` for a refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The start of the response body (refusals), never holding the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// HTTP attempts it took.
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

impl Record {
    pub fn is_answer(&self) -> bool {
        self.content.is_some()
    }
}

/// The open store (see the module doc). Shared by the worker threads.
pub struct Store {
    path: PathBuf,
    file: Mutex<File>,
    records: Mutex<HashMap<String, Record>>,
    /// Lines skipped on open because they did not parse.
    pub damaged_lines: usize,
    /// Bytes of a torn last line cut off on open.
    pub torn_bytes: u64,
}

impl Store {
    /// Opens (creating) the store in `dir`, reading what earlier runs kept.
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir).at(dir)?;
        crate::atomic::clean_temps(dir)?;
        let path = dir.join(LOG_NAME);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .at(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).at(&path)?;
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let torn_bytes = (bytes.len() - whole) as u64;
        if torn_bytes > 0 {
            file.set_len(whole as u64).at(&path)?;
            file.sync_all().at(&path)?;
        }
        file.seek(SeekFrom::End(0)).at(&path)?;
        let mut records = HashMap::new();
        let mut damaged_lines = 0;
        for line in bytes[..whole].split(|&b| b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Record>(line) {
                Ok(r) => {
                    records.insert(r.key.clone(), r);
                }
                Err(_) => damaged_lines += 1,
            }
        }
        Ok(Store {
            path,
            file: Mutex::new(file),
            records: Mutex::new(records),
            damaged_lines,
            torn_bytes,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The kept response of a request body's key.
    pub fn get(&self, key: &str) -> Option<Record> {
        self.records.lock().expect("store lock").get(key).cloned()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.records.lock().expect("store lock").contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.records.lock().expect("store lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a record and makes it durable before returning.
    pub fn put(&self, record: Record) -> Result<()> {
        let mut line = serde_json::to_vec(&record).map_err(|e| Error::Json {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        line.push(b'\n');
        {
            let mut f = self.file.lock().expect("store lock");
            f.write_all(&line).at(&self.path)?;
            f.sync_data().at(&self.path)?;
        }
        self.records
            .lock()
            .expect("store lock")
            .insert(record.key.clone(), record);
        Ok(())
    }
}

/// The store address of a request body.
pub fn key_of(body: &[u8]) -> String {
    blake3::hash(body).to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: &str, content: &str) -> Record {
        Record {
            key: key.into(),
            status: 200,
            content: Some(content.into()),
            error: None,
            attempts: 1,
            usage: Some(Usage {
                prompt_tokens: 10,
                completion_tokens: 5,
            }),
        }
    }

    #[test]
    fn records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert!(s.is_empty());
        s.put(rec("k1", "one")).unwrap();
        s.put(rec("k2", "two")).unwrap();
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.get("k2").unwrap().content.as_deref(), Some("two"));
        assert_eq!((s.damaged_lines, s.torn_bytes), (0, 0));
    }

    #[test]
    fn torn_last_line_is_cut_and_appending_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.put(rec("k1", "one")).unwrap();
        drop(s);
        let path = dir.path().join(LOG_NAME);
        let whole = std::fs::read(&path).unwrap();
        // A process killed in the middle of writing the second line.
        let mut torn = whole.clone();
        torn.extend_from_slice(br#"{"key":"k2","status":200,"cont"#);
        std::fs::write(&path, &torn).unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.len(), 1);
        assert!(s.torn_bytes > 0);
        assert_eq!(std::fs::read(&path).unwrap(), whole, "torn tail removed");
        s.put(rec("k2", "two")).unwrap();
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.get("k2").unwrap().content.as_deref(), Some("two"));
    }

    #[test]
    fn damaged_lines_and_leftover_temps_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_NAME);
        let good = serde_json::to_string(&rec("k1", "one")).unwrap();
        std::fs::write(&path, format!("\0\0\0garbage\n{good}\n\n")).unwrap();
        std::fs::write(dir.path().join(".responses.jsonl.tmp-1-2"), b"x").unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!((s.len(), s.damaged_lines), (1, 1));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn keys_address_the_whole_body() {
        assert_eq!(key_of(b"{}"), key_of(b"{}"));
        assert_ne!(key_of(b"{\"a\":1}"), key_of(b"{\"a\":2}"));
        assert_eq!(key_of(b"x").len(), 64);
    }
}
