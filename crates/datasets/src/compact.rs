//! Compact per-run values for the lists a build keeps for every run (keys, manifest inputs,
//! duplicates): digests and run ids as fixed-size bytes instead of hex strings, goal families
//! interned. They serialize to exactly the strings they replace.

use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use traj_runs::RunDir;

/// A run id: 32 lowercase hex digits (the OTLP trace id), as its 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RunId([u8; 16]);

impl RunId {
    /// The bytes of a run id; `None` unless it is 32 lowercase hex digits (so that
    /// `to_string` gives back the same text).
    pub fn parse(s: &str) -> Option<RunId> {
        let lower = s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let mut b = [0u8; 16];
        (lower && s.len() == 32 && hex::decode_to_slice(s, &mut b).is_ok()).then_some(RunId(b))
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl Serialize for RunId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A run's name in a per-run list: its id as 16 bytes, or (for an id that is not 32 lowercase
/// hex digits, which `traj_runs::list_runs` does not list) the text itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunName {
    Id(RunId),
    Text(Box<str>),
}

impl RunName {
    pub fn new(run_id: &str) -> RunName {
        RunId::parse(run_id).map_or_else(|| RunName::Text(run_id.into()), RunName::Id)
    }
}

impl fmt::Display for RunName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunName::Id(id) => id.fmt(f),
            RunName::Text(t) => f.write_str(t),
        }
    }
}

impl Serialize for RunName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A `traj_schema::hashing::hash_str` value (`sha256:` + the first 16 bytes of SHA-256, hex) as
/// its 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ShortHash([u8; 16]);

impl ShortHash {
    /// The hash of a text, as `hash_str` computes it.
    pub fn of_str(text: &str) -> ShortHash {
        let d = Sha256::digest(text.as_bytes());
        let mut b = [0u8; 16];
        b.copy_from_slice(&d[..16]);
        ShortHash(b)
    }
}

impl fmt::Display for ShortHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl Serialize for ShortHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A full SHA-256 digest, serialized as 64 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    pub fn of(bytes: &[u8]) -> Sha256Digest {
        Sha256Digest(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Goal families interned: each distinct name stored once, runs hold its index.
#[derive(Debug, Default)]
pub struct Interner {
    names: Vec<String>,
    index: HashMap<String, u32>,
}

impl Interner {
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), i);
        i
    }

    pub fn name(&self, i: u32) -> &str {
        self.names.get(i as usize).map_or("", String::as_str)
    }
}

/// The build's run list in ~24 bytes per run: a run is its `--runs` base directory (interned)
/// and its id; its [`RunDir`] is made again when a pass reads it.
#[derive(Debug, Default)]
pub struct RunList {
    bases: Vec<PathBuf>,
    runs: Vec<RunEntry>,
}

/// One run of a [`RunList`].
#[derive(Debug)]
pub enum RunEntry {
    /// `bases[base]/<id>`, the layout `traj_runs::list_runs` lists.
    InBase { base: u32, id: RunId },
    /// Any other path, kept whole.
    Other(Box<RunDir>),
}

impl RunList {
    pub fn new(dirs: Vec<RunDir>) -> RunList {
        let mut list = RunList::default();
        let mut base_of: HashMap<PathBuf, u32> = HashMap::new();
        for d in dirs {
            let entry = match (d.path.parent(), RunId::parse(&d.run_id)) {
                (Some(parent), Some(id)) if parent.join(&d.run_id) == d.path => {
                    let next = u32::try_from(list.bases.len()).unwrap_or(u32::MAX);
                    let base = *base_of.entry(parent.to_path_buf()).or_insert(next);
                    if base == next {
                        list.bases.push(parent.to_path_buf());
                    }
                    RunEntry::InBase { base, id }
                }
                _ => RunEntry::Other(Box::new(d)),
            };
            list.runs.push(entry);
        }
        list
    }

    pub fn len(&self) -> usize {
        self.runs.len()
    }

    pub fn entries(&self) -> &[RunEntry] {
        &self.runs
    }

    /// The run directory of an entry.
    pub fn dir_of(&self, e: &RunEntry) -> RunDir {
        match e {
            RunEntry::InBase { base, id } => {
                let run_id = id.to_string();
                let base = self.bases.get(*base as usize).map_or(Path::new(""), |b| b);
                RunDir {
                    path: base.join(&run_id),
                    run_id,
                }
            }
            RunEntry::Other(d) => (**d).clone(),
        }
    }

    /// The run directory of run `i`.
    #[cfg(test)]
    pub fn dir(&self, i: usize) -> Option<RunDir> {
        self.runs.get(i).map(|e| self.dir_of(e))
    }

    /// The name of run `i` (its id).
    pub fn name(&self, i: usize) -> RunName {
        match self.runs.get(i) {
            Some(RunEntry::InBase { id, .. }) => RunName::Id(*id),
            Some(RunEntry::Other(d)) => RunName::new(&d.run_id),
            None => RunName::Text("".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_values_print_the_strings_they_replace() {
        let text = "sum the column in data csv";
        assert_eq!(
            ShortHash::of_str(text).to_string(),
            traj_schema::hashing::hash_str(text)
        );
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(RunId::parse(id).map(|r| r.to_string()).as_deref(), Some(id));
        assert_eq!(RunId::parse("4BF92F3577B34DA6A3CE929D0E0E4736"), None);
        assert_eq!(RunId::parse("abc"), None);
        assert_eq!(RunName::new(id).to_string(), id);
        assert_eq!(RunName::new("not-an-id").to_string(), "not-an-id");
        let json = serde_json::to_string(&ShortHash::of_str(text)).unwrap_or_default();
        assert_eq!(
            json,
            format!("\"{}\"", traj_schema::hashing::hash_str(text))
        );
    }

    #[test]
    fn run_list_gives_back_the_listed_dirs() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        let dirs = vec![
            RunDir {
                run_id: id.into(),
                path: PathBuf::from("/a/runs").join(id),
            },
            RunDir {
                run_id: "odd".into(),
                path: PathBuf::from("/b/elsewhere"),
            },
        ];
        let list = RunList::new(dirs.clone());
        assert_eq!(list.len(), 2);
        for (i, d) in dirs.iter().enumerate() {
            let back = list.dir(i).map(|r| (r.run_id, r.path));
            assert_eq!(back, Some((d.run_id.clone(), d.path.clone())));
            assert_eq!(list.name(i).to_string(), d.run_id);
        }
    }

    #[test]
    fn interned_names_round_trip() {
        let mut i = Interner::default();
        let a = i.intern("csv");
        let b = i.intern("web");
        assert_eq!(i.intern("csv"), a);
        assert_eq!((i.name(a), i.name(b), i.name(99)), ("csv", "web", ""));
    }
}
