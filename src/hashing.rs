//! Content hashes (blake3, hex) of files and strings: what the manifest records for every output,
//! what settings and input hashes are made of, and what the Syphus response store is keyed by.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{IoContext, Result};

/// blake3 of a file's bytes, hex, streaming (no whole-file buffer).
pub fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut f = File::open(path).at(path)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).at(path)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, h.finalize().to_hex().to_string()))
}

/// blake3 of a string, hex.
pub fn hash_str(s: &str) -> String {
    blake3::hash(s.as_bytes()).to_hex().to_string()
}
