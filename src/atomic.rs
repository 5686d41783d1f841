//! Atomic file writes: write to a temporary name in the destination folder, fsync, rename, then
//! fsync the folder. A reader (or a resumed run) sees either the old file or the whole new one,
//! never a truncated one, whatever moment the process dies at.
//!
//! Frames are many small files: [`write_unsynced`] keeps the temporary name and the rename (so a
//! dying process still never leaves half a file under the real name) but skips the two fsyncs
//! (it only starts the kernel writing the data back, without waiting), and the stage makes the
//! files its table lists durable with [`sync_files`] before it writes that table. After a
//! machine crash a frame the journal lists may be missing or short; resume checks each file's
//! size and makes it again.
//!
//! [`sync_files`] syncs only those files and their folders, not the whole filesystem: a
//! `syncfs(2)` also waits for every dirty page other processes left on the same disk (another
//! tool's output, a large copy), which made a run wait seconds on data not its own (see
//! BENCHMARKS.md, "Durability").

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};

/// Writes `bytes` to `path` atomically, creating parent folders as needed.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |f| f.write_all(bytes))
}

/// Writes a value as pretty JSON with a trailing newline, atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| crate::Error::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    bytes.push(b'\n');
    write(path, &bytes)
}

/// Calls `fill` with a temporary file next to `path`, then makes it `path` atomically.
/// On any error the temporary file is removed and `path` is left as it was.
pub fn write_with(path: &Path, fill: impl FnOnce(&mut File) -> io::Result<()>) -> Result<()> {
    write_inner(path, fill, true)
}

/// [`write`] without the fsyncs (see the module doc): the caller calls [`sync_files`] on the
/// files after its last such write and before anything records them as done for good.
pub fn write_unsynced(path: &Path, bytes: &[u8]) -> Result<()> {
    write_inner(
        path,
        |f| {
            f.write_all(bytes)?;
            start_writeback(f);
            Ok(())
        },
        false,
    )
}

/// Asks the kernel to start writing `f`'s dirty pages to disk now, without waiting
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`): the writing overlaps the rest of the run, so the
/// [`sync_files`] at the end mostly finds it done. Only a hint; errors show at that sync.
fn start_writeback(f: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall on a descriptor `f` keeps open for the call.
    unsafe {
        libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// Threads that wait on the disk in [`sync_files`]: the waits overlap (the filesystem batches
/// concurrent syncs into one journal commit), and the threads use no CPU while they wait.
const SYNC_THREADS: usize = 4;

/// Makes the files `rels` (relative to `dir`, written by [`write_unsynced`], or left by an
/// earlier process of the same run) and the folders holding them durable: `fdatasync` on each
/// file, then `fsync` on each folder for the renames. Repeated names are synced once. The
/// first error is returned, naming its file (a full disk can first show here, when the kernel
/// places the data).
pub fn sync_files<'a>(dir: &Path, rels: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let files: std::collections::BTreeSet<&str> = rels.into_iter().collect();
    let files: Vec<&str> = files.into_iter().collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let first_error: std::sync::Mutex<Option<crate::Error>> = std::sync::Mutex::new(None);
    let work = || loop {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(rel) = files.get(i) else { return };
        let path = dir.join(rel);
        if let Err(e) = File::open(&path).and_then(|f| f.sync_data()) {
            let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert(crate::Error::io(&path, e));
            return;
        }
    };
    let threads = SYNC_THREADS.min(files.len());
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(work);
        }
        work();
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let folders: std::collections::BTreeSet<PathBuf> =
        files.iter().map(|rel| parent_of(&dir.join(rel))).collect();
    for folder in &folders {
        sync_dir(folder);
    }
    Ok(())
}

fn write_inner(
    path: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
    sync: bool,
) -> Result<()> {
    let dir = parent_of(path);
    fs::create_dir_all(&dir).at(&dir)?;
    let tmp = temp_name(path);
    let result = (|| {
        let mut file = File::create(&tmp)?;
        fill(&mut file)?;
        file.flush()?;
        if sync {
            file.sync_all()?;
        }
        drop(file);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(crate::Error::io(path, e));
    }
    if sync {
        sync_dir(&dir);
    }
    crate::faults::file_written(path);
    Ok(())
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A name in the same folder (so that rename stays on one filesystem) that no finished output
/// ever has: `.{name}.tmp-{pid}-{n}`, unique across the threads of this process too (two
/// threads may store the same content-addressed frame at once). Leftovers of a killed process
/// are removed by [`clean_temps`].
fn temp_name(path: &Path) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_of(path).join(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// Removes temporary files a killed writer left in `dir` (not recursive).
pub fn clean_temps(dir: &Path) -> Result<usize> {
    clean(dir, false)
}

/// Removes temporary files a killed writer left anywhere under `dir` (the frame store's
/// subfolders, `syphus/`, `rejects/`, `wds/`, ...), so that a resumed run ends with exactly the
/// files of an uninterrupted one. Symlinked folders are not followed.
pub fn clean_temps_recursive(dir: &Path) -> Result<usize> {
    clean(dir, true)
}

fn clean(dir: &Path, recursive: bool) -> Result<usize> {
    let mut removed = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(crate::Error::io(&d, e)),
        };
        for entry in entries {
            let entry = entry.at(&d)?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let kind = entry.file_type().at(entry.path())?;
            if kind.is_dir() {
                if recursive {
                    stack.push(entry.path());
                }
            } else if is_temp_name(&name) {
                fs::remove_file(entry.path()).at(entry.path())?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Whether a file name is one [`temp_name`] makes.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp-")
}

fn sync_dir(dir: &Path) {
    // Makes the rename itself durable. Some filesystems refuse to fsync a folder; the data is
    // already safe then, so the error is not worth failing a run for.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_writes_then_one_sync() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f/ab/frame.png");
        write_unsynced(&p, b"pixels").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"pixels");
        assert_eq!(clean_temps_recursive(dir.path()).unwrap(), 0);
        let q = dir.path().join("f/cd/other.png");
        write_unsynced(&q, b"more").unwrap();
        sync_files(
            dir.path(),
            ["f/ab/frame.png", "f/cd/other.png", "f/ab/frame.png"],
        )
        .unwrap();
        sync_files(dir.path(), []).unwrap();
        let err = sync_files(dir.path(), ["f/ab/frame.png", "f/zz/missing.png"]).unwrap_err();
        assert!(err.to_string().contains("missing.png"), "{err}");
    }

    #[test]
    fn writes_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/out.txt");
        write(&p, b"one").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"one");
        write(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.txt")]);
    }

    #[test]
    fn failed_fill_keeps_old_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.txt");
        write(&p, b"old").unwrap();
        let err = write_with(&p, |f| {
            f.write_all(b"partial")?;
            Err(io::Error::other("disk on fire"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("out.txt"), "{err}");
        assert!(err.to_string().contains("disk on fire"), "{err}");
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn clean_temps_removes_only_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".x.parquet.tmp-123"), b"junk").unwrap();
        fs::write(dir.path().join("x.parquet"), b"real").unwrap();
        assert_eq!(clean_temps(dir.path()).unwrap(), 1);
        assert!(dir.path().join("x.parquet").exists());
        assert_eq!(clean_temps(&dir.path().join("missing")).unwrap(), 0);
    }

    #[test]
    fn recursive_clean_reaches_subfolders_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("frames/ab");
        fs::create_dir_all(&sub).unwrap();
        fs::write(sub.join(".abc.png.tmp-99-3"), b"half").unwrap();
        fs::write(sub.join("abc.png"), b"whole").unwrap();
        assert_eq!(clean_temps(dir.path()).unwrap(), 0);
        assert_eq!(clean_temps_recursive(dir.path()).unwrap(), 1);
        assert_eq!(fs::read_dir(&sub).unwrap().count(), 1);
        assert!(sub.join("abc.png").is_file());
    }

    #[test]
    fn unwritable_destination_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, b"x").unwrap();
        let err = write(&blocker.join("inside.json"), b"{}").unwrap_err();
        assert!(err.to_string().contains("file"), "{err}");
    }
}
