//! `mimicit verify OUT`: re-hashes every file the manifest lists and reports any that is
//! missing, has another size, or other bytes.

use std::path::Path;

use serde::Serialize;

use crate::error::Result;
use crate::manifest::{hash_file, Manifest};

#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub files: u64,
    pub bytes: u64,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Serialize)]
pub struct Problem {
    pub path: String,
    pub problem: String,
}

pub fn verify(out: &Path) -> Result<VerifyReport> {
    let manifest_path = out.join(crate::manifest::FILE_NAME);
    if !manifest_path.is_file() {
        return Err(crate::Error::Manifest {
            path: manifest_path,
            message: "no manifest: nothing has run in this folder".into(),
        });
    }
    let manifest = Manifest::load(out)?;
    let mut report = VerifyReport::default();
    for entry in manifest.scenarios.values() {
        for stage in entry.stages.values() {
            for o in &stage.outputs {
                report.files += 1;
                report.bytes += o.bytes;
                let path = out.join(&o.path);
                let problem = match hash_file(&path) {
                    Err(e) => Some(format!("cannot read: {e}")),
                    Ok((n, _)) if n != o.bytes => {
                        Some(format!("size {n} bytes, manifest says {}", o.bytes))
                    }
                    Ok((_, h)) if h != o.blake3 => {
                        Some(format!("blake3 {h}, manifest says {}", o.blake3))
                    }
                    Ok(_) => None,
                };
                if let Some(problem) = problem {
                    report.problems.push(Problem {
                        path: o.path.clone(),
                        problem,
                    });
                }
            }
        }
    }
    report.ok = report.problems.is_empty();
    Ok(report)
}
