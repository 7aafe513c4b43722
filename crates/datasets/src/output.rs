//! Atomic output files: written to a temp file in the target directory while hashing, then
//! fsynced and renamed into place, so a reader never sees half a dataset file.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// sha256 of bytes, lowercase hex (64 digits).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// sha256 of a file's content, streamed.
#[cfg(test)]
pub fn sha256_file(path: &Path) -> io::Result<String> {
    use std::io::Read;
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// What a committed file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub path: PathBuf,
    pub sha256: String,
    pub bytes: u64,
    pub lines: u64,
}

/// A file being written; becomes visible at `commit`. Dropped uncommitted, it removes its temp file.
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
    hasher: Sha256,
    bytes: u64,
    lines: u64,
}

impl AtomicFile {
    pub fn create(path: &Path) -> io::Result<AtomicFile> {
        let parent = path.parent().unwrap_or_else(|| Path::new("."));
        fs::create_dir_all(parent)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
        let f = File::create(&tmp)?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
            out: Some(BufWriter::with_capacity(256 * 1024, f)),
            hasher: Sha256::new(),
            bytes: 0,
            lines: 0,
        })
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let out = self
            .out
            .as_mut()
            .ok_or_else(|| io::Error::other("file already committed"))?;
        out.write_all(bytes)?;
        self.hasher.update(bytes);
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    /// Writes one JSON value as a line.
    pub fn write_json_line(&mut self, v: &Value) -> io::Result<()> {
        let mut line = serde_json::to_vec(v).map_err(io::Error::other)?;
        line.push(b'\n');
        self.write_line(&line)
    }

    /// Writes one line that is already serialized (it ends with its newline).
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.write_all(line)?;
        self.lines += 1;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes, fsyncs and renames into place.
    pub fn commit(mut self) -> io::Result<Written> {
        let out = self
            .out
            .take()
            .ok_or_else(|| io::Error::other("file already committed"))?;
        let f = out.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        drop(f);
        fs::rename(&self.tmp, &self.path)?;
        Ok(Written {
            path: self.path.clone(),
            sha256: hex::encode(std::mem::take(&mut self.hasher).finalize()),
            bytes: self.bytes,
            lines: self.lines,
        })
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.out.is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// `io::Write` over an [`AtomicFile`] that counts lines, for streaming serialization.
struct LineCounting<'a>(&'a mut AtomicFile);

impl Write for LineCounting<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_all(buf)?;
        self.0.lines += buf.iter().filter(|b| **b == b'\n').count() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes `value` as pretty JSON plus a final newline, atomically, streamed to the file (the
/// same bytes as `to_string_pretty(value) + "\n"` through [`write_file`], without the whole text
/// in memory: report.json and manifest.json are ~25 MB each at 100 000 runs).
pub fn write_pretty_json(path: &Path, value: &impl serde::Serialize) -> io::Result<Written> {
    let mut f = AtomicFile::create(path)?;
    let mut w = LineCounting(&mut f);
    serde_json::to_writer_pretty(&mut w, value).map_err(io::Error::other)?;
    w.write_all(b"\n")?;
    f.commit()
}

/// Writes a whole file atomically.
pub fn write_file(path: &Path, bytes: &[u8]) -> io::Result<Written> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(bytes)?;
    f.lines = bytes.iter().filter(|b| **b == b'\n').count() as u64;
    f.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_renames_and_hash_matches_content() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b.jsonl");
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_json_line(&serde_json::json!({"x": 1})).unwrap();
        assert!(!p.exists(), "invisible before commit");
        let w = f.commit().unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "{\"x\":1}\n");
        assert_eq!(w.sha256, sha256_file(&p).unwrap());
        assert_eq!(w.lines, 1);
        assert_eq!(fs::read_dir(d.path().join("a")).unwrap().count(), 1);
    }

    #[test]
    fn dropped_without_commit_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.jsonl");
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"partial").unwrap();
        drop(f);
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
    }
}
