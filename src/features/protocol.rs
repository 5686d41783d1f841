//! What `mimicit` and its CLIP helper process (`mimicit-clip`, the only executable that loads
//! libtorch) say to each other over the helper's stdin and stdout.
//!
//! One message is one frame: a little-endian `u32` length and that many bytes of JSON (a
//! [`Request`], or an [`Envelope`] around a [`Reply`]), then a little-endian `u64` length and
//! that many bytes of little-endian `f32` values (pixels, vectors; often none). Requests are
//! answered in order, one reply each, except [`Request::EmbedItems`], which is answered by one
//! [`Reply::Batch`] per model call and then [`Reply::Done`].

use std::io::{self, Read, Write};
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{DeviceSpec, FeaturesError, Precision, TorchReport};

/// Largest JSON part of a frame (a batch's ids, a neighbour list of a large corpus).
const MAX_JSON: u32 = 1 << 30;
/// Largest number of f32 values in a frame (16 GiB).
const MAX_VALUES: u64 = 1 << 32;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// What libtorch sees: answered by [`Reply::Report`].
    Report,
    /// Load a model (once per helper: a second request for the same model, device and precision
    /// gets the same slot). Answered by [`Reply::Loaded`].
    Load {
        model: PathBuf,
        device: DeviceSpec,
        precision: Precision,
    },
    /// Embed `n` preprocessed pictures, sent as the frame's values. Answered by
    /// [`Reply::Vectors`].
    EmbedPixels { slot: u64, n: usize },
    /// Decode, preprocess and embed pictures (on the helper's threads: as many as mimicit's),
    /// `batch` per model call.
    EmbedItems {
        slot: u64,
        items: Vec<(String, PathBuf)>,
        batch: usize,
        normalize: bool,
    },
    /// Cosine nearest neighbours of the frame's vectors (rows of `dim`): exact up to a limit,
    /// clustered beyond. Answered by [`Reply::Neighbours`].
    Knn {
        dim: usize,
        k: usize,
        band: (f32, f32),
        device: DeviceSpec,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Report {
        report: TorchReport,
    },
    Loaded {
        slot: u64,
        dim: usize,
        /// Side of the square pictures the model takes.
        input: u32,
        device: String,
        description: String,
    },
    /// The frame's values are `rows` vectors.
    Vectors {
        rows: usize,
    },
    /// One model call of [`Request::EmbedItems`]: the vectors of `ids` as the frame's values;
    /// `count` pictures done (those that failed included).
    Batch {
        ids: Vec<String>,
        count: u64,
    },
    /// The end of [`Request::EmbedItems`]: the pictures that could not be read, as
    /// (id, path, error).
    Done {
        failed: Vec<(String, String, String)>,
        /// Pictures whose vectors were not computed again: this helper had embedded them with
        /// the same model and batch size (semantic dedup, then the features stage).
        #[serde(default)]
        reused: u64,
    },
    Neighbours {
        rows: Vec<Vec<(usize, f32)>>,
    },
    /// The request failed; the helper goes on serving.
    Error {
        error: WireError,
    },
}

/// A reply and the CPU time the helper has used so far (for the CPU time of the stage that asked).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub cpu_s: f64,
    #[serde(flatten)]
    pub reply: Reply,
}

/// A [`FeaturesError`] on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireError {
    pub kind: String,
    pub message: String,
    #[serde(default)]
    pub path: Option<PathBuf>,
}

impl From<&FeaturesError> for WireError {
    fn from(e: &FeaturesError) -> Self {
        let (kind, message, path) = match e {
            FeaturesError::Io { path, source } => ("io", source.to_string(), Some(path.clone())),
            FeaturesError::Model { path, message } => {
                ("model", message.clone(), Some(path.clone()))
            }
            FeaturesError::Preprocess(m) => ("preprocess", m.clone(), None),
            FeaturesError::Device(m) => ("device", m.clone(), None),
            FeaturesError::Torch(m) => ("torch", m.clone(), None),
        };
        WireError {
            kind: kind.into(),
            message,
            path,
        }
    }
}

impl From<WireError> for FeaturesError {
    fn from(w: WireError) -> Self {
        let path = w.path.unwrap_or_default();
        match w.kind.as_str() {
            "io" => FeaturesError::io(&path, io::Error::other(w.message)),
            "model" => FeaturesError::model(&path, w.message),
            "preprocess" => FeaturesError::Preprocess(w.message),
            "device" => FeaturesError::Device(w.message),
            _ => FeaturesError::Torch(w.message),
        }
    }
}

/// Writes one frame and flushes it.
pub fn write_frame<T: Serialize>(w: &mut impl Write, head: &T, values: &[f32]) -> io::Result<()> {
    let json = serde_json::to_vec(head).map_err(io::Error::other)?;
    let len = u32::try_from(json.len())
        .ok()
        .filter(|n| *n <= MAX_JSON)
        .ok_or_else(|| io::Error::other("message too large"))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(&json)?;
    w.write_all(&(values.len() as u64).to_le_bytes())?;
    // In pieces, so a large matrix is not copied whole.
    let mut buf = Vec::with_capacity(values.len().min(1 << 16) * 4);
    for chunk in values.chunks(1 << 16) {
        buf.clear();
        chunk
            .iter()
            .for_each(|v| buf.extend_from_slice(&v.to_le_bytes()));
        w.write_all(&buf)?;
    }
    w.flush()
}

/// Reads one frame; None at a clean end of the stream (before a frame begins).
pub fn read_frame<T: DeserializeOwned>(r: &mut impl Read) -> io::Result<Option<(T, Vec<f32>)>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len);
    if len > MAX_JSON {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a message of {len} bytes: not a mimicit-clip frame"),
        ));
    }
    let mut json = vec![0u8; len as usize];
    r.read_exact(&mut json)?;
    let head = serde_json::from_slice(&json).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not a message this mimicit understands: {e}"),
        )
    })?;
    let mut count = [0u8; 8];
    r.read_exact(&mut count)?;
    let count = u64::from_le_bytes(count);
    if count > MAX_VALUES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{count} values in one message: not a mimicit-clip frame"),
        ));
    }
    let mut values = Vec::with_capacity(count as usize);
    let mut buf = vec![0u8; (count as usize).min(1 << 16) * 4];
    let mut left = count as usize;
    while left > 0 {
        let take = left.min(1 << 16);
        let bytes = &mut buf[..take * 4];
        r.read_exact(bytes)?;
        values.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        left -= take;
    }
    Ok(Some((head, values)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_with_their_values() {
        let mut wire = Vec::new();
        let values: Vec<f32> = (0..200_000).map(|i| i as f32 * 0.5 - 3.0).collect();
        let req = Request::Knn {
            dim: 8,
            k: 3,
            band: (0.5, 1.0),
            device: DeviceSpec::Cpu,
        };
        write_frame(&mut wire, &req, &values).unwrap();
        write_frame(&mut wire, &Request::Report, &[]).unwrap();
        let mut r = wire.as_slice();
        let (got, v): (Request, Vec<f32>) = read_frame(&mut r).unwrap().unwrap();
        assert!(matches!(got, Request::Knn { dim: 8, k: 3, .. }));
        assert_eq!(v, values);
        let (got, v): (Request, Vec<f32>) = read_frame(&mut r).unwrap().unwrap();
        assert!(matches!(got, Request::Report) && v.is_empty());
        assert!(read_frame::<Request>(&mut r).unwrap().is_none());
    }

    #[test]
    fn a_cut_or_foreign_stream_is_an_error() {
        let mut wire = Vec::new();
        write_frame(&mut wire, &Request::Report, &[1.0, 2.0]).unwrap();
        wire.truncate(wire.len() - 3);
        assert!(read_frame::<Request>(&mut wire.as_slice()).is_err());
        let junk = b"GET / HTTP/1.1\r\n\r\n".to_vec();
        assert!(read_frame::<Request>(&mut junk.as_slice()).is_err());
    }

    #[test]
    fn errors_keep_their_kind_and_path() {
        let e = FeaturesError::model(std::path::Path::new("/m/config.json"), "bad");
        let back = FeaturesError::from(WireError::from(&e));
        assert_eq!(back.to_string(), e.to_string());
        let e = FeaturesError::Device("no cuda".into());
        assert_eq!(
            FeaturesError::from(WireError::from(&e)).to_string(),
            "no cuda"
        );
        let reply = Envelope {
            cpu_s: 1.5,
            reply: Reply::Error {
                error: WireError::from(&e),
            },
        };
        let json = serde_json::to_string(&reply).unwrap();
        let back: Envelope = serde_json::from_str(&json).unwrap();
        assert!(matches!(back.reply, Reply::Error { .. }) && back.cpu_s == 1.5);
    }
}
