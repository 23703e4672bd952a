//! Which sealed segments to delete (pure: [`plan`]) and deleting them ([`Log::apply_retention`]).
//!
//! Only whole sealed segments go, oldest first, never the active (last) one. A segment is
//! deleted when the log is over its size budget or the segment is older than the age limit
//! (age = time since it was sealed, i.e. since the next segment was created), and only if no
//! durable consumer still needs it: with `min_keep_lsn` = the lowest position any durable
//! consumer has acknowledged, the segment a reader at `min_keep_lsn` starts in, and the first
//! chunk of any stream in flight there, are kept.

use std::time::Duration;

use tracing::info;
use walcast_decoder::Lsn;

use super::segment::segment_path;
use super::writer::sync_dir;
use super::{io_err, Log, LogError, SegmentInfo};

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Keep the total size of segment files at or below this, if possible.
    pub max_bytes: Option<u64>,
    /// Delete segments sealed longer ago than this.
    pub max_age: Option<Duration>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Bases of the deleted segments.
    pub deleted: Vec<u64>,
    pub bytes_freed: u64,
    /// Oldest LSN clients may resume from afterwards.
    pub oldest_available: Lsn,
}

/// How many of the oldest segments to delete. `now_ms` is wall-clock Unix milliseconds;
/// `min_keep_lsn` is `Lsn::MAX` when no durable consumer holds data back.
pub fn plan(
    segs: &[SegmentInfo],
    policy: &RetentionPolicy,
    now_ms: u64,
    min_keep_lsn: Lsn,
) -> usize {
    if segs.len() < 2 {
        return 0;
    }
    // The offset below which nothing is needed by a consumer resuming at min_keep_lsn.
    let k = segs
        .partition_point(|s| s.meta.start_lsn <= min_keep_lsn)
        .saturating_sub(1);
    let km = segs[k].meta;
    let protect_from = km.stream_open_since.map_or(km.base, |s| s.min(km.base));

    let mut total: u64 = segs.iter().map(|s| s.len).sum();
    let mut n = 0;
    for i in 0..segs.len() - 1 {
        let end = segs[i + 1].meta.base;
        if end > protect_from {
            break;
        }
        let over_size = policy.max_bytes.is_some_and(|m| total > m);
        let sealed_at = segs[i + 1].meta.created_unix_ms;
        let too_old = policy
            .max_age
            .is_some_and(|a| now_ms.saturating_sub(sealed_at) > a.as_millis() as u64);
        if !(over_size || too_old) {
            break;
        }
        total -= segs[i].len;
        n += 1;
    }
    n
}

impl Log {
    /// Deletes the segments [`plan`] selects. Readers inside them get `ResyncRequired` on their
    /// next read. Safe to call from any task while the writer appends.
    pub fn apply_retention(
        &self,
        policy: &RetentionPolicy,
        now_ms: u64,
        min_keep_lsn: Lsn,
    ) -> Result<RetentionReport, LogError> {
        let doomed: Vec<SegmentInfo> = {
            let mut segs = self.shared.segments();
            let n = plan(&segs, policy, now_ms, min_keep_lsn);
            segs.drain(..n).collect()
        };
        if !doomed.is_empty() {
            self.shared.segments_changed();
        }
        let mut report = RetentionReport {
            oldest_available: self.oldest_available(),
            ..Default::default()
        };
        if doomed.is_empty() {
            return Ok(report);
        }
        for s in &doomed {
            let path = segment_path(&self.shared.dir, s.meta.base);
            std::fs::remove_file(&path).map_err(io_err(&path))?;
            report.deleted.push(s.meta.base);
            report.bytes_freed += s.len;
        }
        sync_dir(&self.shared.dir)?;
        info!(segments = doomed.len(), bytes = report.bytes_freed, oldest_available = %report.oldest_available, "log retention deleted segments");
        Ok(report)
    }
}
