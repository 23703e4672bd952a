//! The initial baseline: when the relay creates its slot, the snapshot PostgreSQL exports with
//! it becomes the first bootstrap image, so the state at the slot's consistent point is known
//! exactly and the first clients need no extra snapshot of their own.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use walcast_decoder::Lsn;

use super::Bootstrapper;
use crate::source::{Prepared, ReplicationSink, SinkError};

/// Wraps the relay's sink: after a session created the slot (with `SNAPSHOT 'export'`), and
/// before `START_REPLICATION` (which ends the exported snapshot), it copies the tables under
/// that snapshot. Everything else goes straight to the inner sink.
pub struct BaselineSink<S> {
    inner: S,
    boot: Arc<Bootstrapper>,
}

impl<S> BaselineSink<S> {
    pub fn new(inner: S, boot: Arc<Bootstrapper>) -> Self {
        BaselineSink { inner, boot }
    }

    pub fn inner(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S: ReplicationSink> ReplicationSink for BaselineSink<S> {
    async fn prepared(&mut self, p: &Prepared) -> Result<(), SinkError> {
        self.inner.prepared(p).await?;
        // The slot exists from here on (created now, or found); see `Bootstrapper::slot_ready`.
        let snapshot = p
            .created
            .as_ref()
            .and_then(|c| Some((c.snapshot_name.as_ref()?, c)));
        let Some((snapshot, created)) = snapshot else {
            self.boot.slot_ready();
            return Ok(());
        };
        // A failure here costs nothing but time: clients then get an on-demand image.
        match self
            .boot
            .build_from_snapshot(snapshot, created.consistent_point)
            .await
        {
            Ok(img) => tracing::info!(consistent_point = %img.built.consistent_point,
                rows = img.built.rows, tables = img.built.tables,
                "initial baseline: the new slot's snapshot is the first bootstrap image"),
            Err(e) => tracing::warn!(error = %e,
                "initial baseline failed; bootstrap requests will build their own image"),
        }
        Ok(())
    }

    async fn xlog(
        &mut self,
        wal_start: Lsn,
        wal_end: Lsn,
        send_time: i64,
        data: Bytes,
    ) -> Result<(), SinkError> {
        self.inner.xlog(wal_start, wal_end, send_time, data).await
    }

    fn durable(&mut self) -> (Lsn, Option<Lsn>) {
        self.inner.durable()
    }

    fn stop_requested(&self) -> bool {
        self.inner.stop_requested()
    }

    fn poll_interval(&self) -> Option<Duration> {
        self.inner.poll_interval()
    }
}
