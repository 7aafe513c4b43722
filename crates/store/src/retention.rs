//! Retention: raw data is dropped as whole sealed segments, oldest first, when they are older
//! than a maximum age or the store is over a maximum size. A segment is never edited in place,
//! the active segment is never dropped, and neither is any segment holding a record at or above
//! the floor the caller gives (records whose runs are not written yet).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::error::StoreError;
use crate::segment_files::sync_dir;
use crate::store_handle::Store;

/// What may be dropped: segments older than `max_age` (by the time of their last write) and/or,
/// oldest first, as many as keep the store at or under `max_bytes`. `None` = no such limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub max_age: Option<Duration>,
    pub max_bytes: Option<u64>,
}

impl RetentionPolicy {
    /// Whether the policy ever drops anything.
    pub fn is_off(&self) -> bool {
        self.max_age.is_none() && self.max_bytes.is_none()
    }
}

/// What one pass dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dropped {
    pub segments: u64,
    pub records: u64,
    pub bytes: u64,
    /// The oldest record left, if any.
    pub first_seq: Option<u64>,
}

/// A sealed segment that may go: where it is and what it holds.
struct Candidate {
    path: PathBuf,
    records: u64,
    len: u64,
}

impl Store {
    /// Drops the sealed segments `policy` lets go, oldest first, stopping at the first that
    /// must stay: younger than `max_age` while the store is within `max_bytes`, or holding a
    /// record with seq ≥ `floor`. `now` is the clock the age is measured against (a parameter, so
    /// tests control it). Each segment leaves the index before its file is removed, so no read
    /// or scan started afterwards sees it.
    pub fn apply_retention(
        &self,
        policy: &RetentionPolicy,
        floor: u64,
        now: SystemTime,
    ) -> Result<Dropped, StoreError> {
        let mut dropped = Dropped::default();
        if policy.is_off() {
            dropped.first_seq = self.stats().first_seq;
            return Ok(dropped);
        }
        let shared = &self.inner.shared;
        while let Some(victim) = self.next_victim(policy, floor, now)? {
            std::fs::remove_file(&victim.path).map_err(|e| StoreError::io(&victim.path, e))?;
            tracing::info!(
                segment = %victim.path.display(),
                records = victim.records,
                bytes = victim.len,
                "raw segment dropped by retention"
            );
            dropped.segments += 1;
            dropped.records += victim.records;
            dropped.bytes += victim.len;
        }
        if dropped.segments > 0 {
            sync_dir(&shared.raw_dir).map_err(|e| StoreError::io(&shared.raw_dir, e))?;
        }
        dropped.first_seq = self.stats().first_seq;
        Ok(dropped)
    }

    /// Takes the oldest sealed segment out of the index if the policy lets it go.
    fn next_victim(
        &self,
        policy: &RetentionPolicy,
        floor: u64,
        now: SystemTime,
    ) -> Result<Option<Candidate>, StoreError> {
        let mut idx = self.inner.shared.index_mut();
        // The last segment is the one being written.
        if idx.segments.len() < 2 {
            return Ok(None);
        }
        let oldest = &idx.segments[0];
        let last_seq = (oldest.first_seq + oldest.records).saturating_sub(1);
        if oldest.records > 0 && last_seq >= floor {
            return Ok(None);
        }
        let over_size = policy.max_bytes.is_some_and(|max| idx.bytes > max);
        let too_old = match policy.max_age {
            Some(max_age) => {
                let modified = std::fs::metadata(&oldest.path)
                    .and_then(|m| m.modified())
                    .map_err(|e| StoreError::io(&oldest.path, e))?;
                now.duration_since(modified).unwrap_or(Duration::ZERO) > max_age
            }
            None => false,
        };
        if !over_size && !too_old {
            return Ok(None);
        }
        let seg = idx.segments.remove(0);
        idx.records = idx.records.saturating_sub(seg.records);
        idx.bytes = idx.bytes.saturating_sub(seg.len);
        Ok(Some(Candidate {
            path: seg.path,
            records: seg.records,
            len: seg.len,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StoreConfig, StoreError};
    use bytes::Bytes;
    use std::fs::File;

    /// A store whose segments roll every few records, with `n` records of 200 bytes.
    async fn store_with(dir: &std::path::Path, n: u64) -> Store {
        let mut cfg = StoreConfig::new(dir);
        cfg.segment_bytes = 1024;
        let (store, _) = Store::open(cfg).unwrap();
        for i in 0..n {
            store.append(Bytes::from(vec![i as u8; 200])).await.unwrap();
        }
        store
    }

    fn segments(store: &Store) -> Vec<(u64, u64, PathBuf)> {
        let idx = store.inner.shared.index();
        idx.segments
            .iter()
            .map(|s| (s.first_seq, s.records, s.path.clone()))
            .collect()
    }

    fn set_mtime(path: &std::path::Path, at: SystemTime) {
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(at)
            .unwrap();
    }

    #[tokio::test]
    async fn segments_older_than_the_age_go_oldest_first_and_never_past_the_floor() {
        let tmp = tempfile::tempdir().unwrap();
        let store = store_with(tmp.path(), 20).await;
        let segs = segments(&store);
        assert!(segs.len() >= 4, "{segs:?}");
        // A clock we control: every sealed segment was last written 2 h before `now`.
        let now = SystemTime::now() + Duration::from_secs(7200);
        let policy = RetentionPolicy {
            max_age: Some(Duration::from_secs(3600)),
            max_bytes: None,
        };
        // Younger than the age: nothing goes.
        let young = RetentionPolicy {
            max_age: Some(Duration::from_secs(3 * 3600)),
            ..policy
        };
        assert_eq!(
            store
                .apply_retention(&young, u64::MAX, now)
                .unwrap()
                .segments,
            0
        );
        // The floor sits in the second segment: only the first may go.
        let floor = segs[1].0;
        let d = store.apply_retention(&policy, floor, now).unwrap();
        assert_eq!((d.segments, d.records), (1, segs[0].1));
        assert_eq!(d.first_seq, Some(segs[1].0));
        assert!(!segs[0].2.exists());
        assert!(matches!(
            store.read(1),
            Err(StoreError::NotFound { seq: 1 })
        ));
        assert_eq!(store.read(segs[1].0).unwrap().len(), 200);
        // A segment written recently stays even under a lifted floor, and so does what follows.
        set_mtime(&segs[2].2, now);
        let d = store.apply_retention(&policy, u64::MAX, now).unwrap();
        assert_eq!(
            d.segments, 1,
            "segment 2 goes, segment 3 (young) stops the pass"
        );
        assert!(segs[2].2.exists() && segs[3].2.exists());
        // The active segment is never dropped.
        set_mtime(&segs[2].2, now - Duration::from_secs(7200));
        store.apply_retention(&policy, u64::MAX, now).unwrap();
        let left = segments(&store);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].0, segs.last().unwrap().0);
        // The store reopens on what is left and appends continue the sequence.
        store.close().await.unwrap();
        let (store, _) = Store::open(StoreConfig::new(tmp.path())).unwrap();
        let next = store.append(Bytes::from_static(b"after")).await.unwrap();
        assert_eq!(next, 21);
        let scanned: Vec<u64> = store.scan(0).map(|r| r.unwrap().seq).collect();
        assert_eq!(scanned.first(), Some(&left[0].0));
        assert_eq!(scanned.last(), Some(&21));
    }

    #[tokio::test]
    async fn a_size_limit_drops_the_oldest_until_the_store_fits() {
        let tmp = tempfile::tempdir().unwrap();
        let store = store_with(tmp.path(), 20).await;
        let before = store.stats();
        let policy = RetentionPolicy {
            max_age: None,
            max_bytes: Some(before.bytes / 2),
        };
        let d = store
            .apply_retention(&policy, u64::MAX, SystemTime::now())
            .unwrap();
        let after = store.stats();
        assert!(d.segments > 0);
        assert!(after.bytes <= before.bytes / 2, "{after:?}");
        assert_eq!(after.bytes + d.bytes, before.bytes);
        assert_eq!(after.records + d.records, before.records);
        // Off: nothing happens.
        let off = RetentionPolicy::default();
        assert_eq!(
            store
                .apply_retention(&off, u64::MAX, SystemTime::now())
                .unwrap()
                .segments,
            0
        );
    }
}
