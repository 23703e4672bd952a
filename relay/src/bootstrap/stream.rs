//! Serving one client's bootstrap: wait for an image, send its frames (only the tables the
//! client may see), then hand over to the log from the image's consistent point.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::io::AsyncReadExt;
use walcast_decoder::frame::{self, FrameKind, FrameReader};
use walcast_decoder::Lsn;

use super::{Bootstrapper, Image};
use crate::log::{LogError, LogReader};
use crate::serve::scope::ScopeFilter;

/// Bytes read from the image file per step.
const READ_BYTES: usize = 64 * 1024;

/// What [`BootStream::next`] did.
pub enum BootStep {
    /// Appended image frames to the output; call again.
    More,
    /// The image is sent; the stream goes on from the log with this reader (positioned after
    /// the consistent point).
    Live(Box<LogReader>),
    /// The bootstrap failed: end the stream with this `'e'` code and message.
    Failed(&'static str, String),
}

enum Phase {
    Waiting,
    Sending {
        image: Arc<Image>,
        file: tokio::fs::File,
        frames: FrameReader,
        eof: bool,
    },
    Handover(Lsn),
}

/// One client's bootstrap.
pub struct BootStream {
    /// `None`: this relay serves no bootstraps (the request is refused).
    boot: Option<Arc<Bootstrapper>>,
    /// `(schema, table)` the client may see; empty: every published table.
    tables: Vec<(String, String)>,
    allowed: HashSet<u32>,
    /// The client's row scopes, judging image rows (`None`: no row scopes).
    scope: Option<ScopeFilter>,
    phase: Phase,
    buf: Vec<u8>,
}

impl BootStream {
    pub fn new(boot: Option<Arc<Bootstrapper>>, tables: Vec<(String, String)>) -> BootStream {
        BootStream {
            boot,
            tables,
            allowed: HashSet::new(),
            scope: None,
            phase: Phase::Waiting,
            buf: vec![0; READ_BYTES],
        }
    }

    /// Sends only the image rows inside these row scopes (docs/auth.md, "Row scopes").
    pub fn with_scope(mut self, scope: Option<ScopeFilter>) -> BootStream {
        self.scope = scope;
        self
    }

    /// Appends the next frames to `out` (about `max` bytes), or says what comes next.
    pub async fn next(&mut self, out: &mut Vec<u8>, max: usize) -> BootStep {
        let Some(boot) = self.boot.clone() else {
            return BootStep::Failed("bad_request", "this relay does not serve bootstraps".into());
        };
        loop {
            match &mut self.phase {
                Phase::Waiting => match boot.image().await {
                    Ok(image) => match tokio::fs::File::open(&image.path).await {
                        Ok(file) => {
                            self.phase = Phase::Sending {
                                image,
                                file,
                                frames: FrameReader::new(),
                                eof: false,
                            }
                        }
                        Err(e) => {
                            return BootStep::Failed(
                                "internal",
                                format!("opening the bootstrap image: {e}"),
                            )
                        }
                    },
                    Err(e) => {
                        return BootStep::Failed("bootstrap_failed", e);
                    }
                },
                Phase::Sending {
                    image,
                    file,
                    frames,
                    eof,
                } => {
                    let cp = image.built.consistent_point;
                    let mut done = false;
                    while out.len() < max {
                        let f = match frames.next_frame() {
                            Ok(f) => f,
                            Err(e) => {
                                return BootStep::Failed(
                                    "internal",
                                    format!("the bootstrap image is corrupt: {e}"),
                                )
                            }
                        };
                        let Some(f) = f else {
                            if *eof {
                                return BootStep::Failed(
                                    "internal",
                                    "the bootstrap image ends early".into(),
                                );
                            }
                            match file.read(&mut self.buf).await {
                                Ok(0) => *eof = true,
                                Ok(n) => frames.push(&self.buf[..n]),
                                Err(e) => {
                                    return BootStep::Failed(
                                        "internal",
                                        format!("reading the bootstrap image: {e}"),
                                    )
                                }
                            }
                            continue;
                        };
                        let keep = match f.kind {
                            FrameKind::Prelude => {
                                if f.payload.first() == Some(&b'R') {
                                    relation_allowed(f.payload, &self.tables)
                                        .inspect(|id| {
                                            self.allowed.insert(*id);
                                        })
                                        .is_some()
                                } else {
                                    true
                                }
                            }
                            FrameKind::Bootstrap => f
                                .payload
                                .get(1..5)
                                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                                .is_some_and(|id| self.allowed.contains(&id)),
                            FrameKind::Heartbeat => {
                                done = true;
                                true
                            }
                            _ => false,
                        };
                        let keep = keep
                            && self
                                .scope
                                .as_mut()
                                .map_or(true, |s| s.keeps_image_frame(f.kind, f.payload));
                        if keep {
                            frame::encode_frame(f.kind, f.lsn, f.payload, out);
                        }
                        if done {
                            break;
                        }
                    }
                    if done {
                        self.phase = Phase::Handover(cp);
                    }
                    if !out.is_empty() {
                        return BootStep::More;
                    }
                }
                Phase::Handover(cp) => {
                    let cp = *cp;
                    // The log may not have reached the consistent point yet (the relay lags,
                    // or no commit since): wait until it is visible there (what every stream is served up to).
                    let log = boot.log().clone();
                    let mut durable = log.subscribe_visible();
                    if durable.wait_for(|d| d.lsn >= cp).await.is_err() {
                        return BootStep::Failed("shutdown", "the relay's log closed".into());
                    }
                    return match log.reader(Some(cp)) {
                        Ok(r) => BootStep::Live(Box::new(r)),
                        Err(LogError::ResyncRequired { .. } | LogError::AheadOfLog { .. }) => {
                            BootStep::Failed(
                                "resync_required",
                                format!("the log no longer holds the bootstrap's consistent point {cp}; bootstrap again"),
                            )
                        }
                        Err(e) => BootStep::Failed("internal", format!("opening the log: {e}")),
                    };
                }
            }
        }
    }
}

/// The relation id of an `'R'` message if the client may see that table.
fn relation_allowed(msg: &[u8], tables: &[(String, String)]) -> Option<u32> {
    let id = u32::from_be_bytes(msg.get(1..5)?.try_into().ok()?);
    if tables.is_empty() {
        return Some(id);
    }
    let rest = msg.get(5..)?;
    let ns_end = rest.iter().position(|b| *b == 0)?;
    let name_rest = rest.get(ns_end + 1..)?;
    let name_end = name_rest.iter().position(|b| *b == 0)?;
    let ns = std::str::from_utf8(&rest[..ns_end]).ok()?;
    let ns = if ns.is_empty() { "pg_catalog" } else { ns };
    let name = std::str::from_utf8(&name_rest[..name_end]).ok()?;
    tables
        .iter()
        .any(|(s, t)| s == ns && t == name)
        .then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::pgoutput::{relation_message, RelationDesc};

    #[test]
    fn filters_relations_by_name() {
        let msg = relation_message(&RelationDesc {
            id: 7,
            namespace: "public".into(),
            name: "a".into(),
            replica_identity: b'd',
            columns: vec![],
        });
        assert_eq!(relation_allowed(&msg, &[]), Some(7));
        assert_eq!(
            relation_allowed(&msg, &[("public".into(), "a".into())]),
            Some(7)
        );
        assert_eq!(
            relation_allowed(&msg, &[("public".into(), "b".into())]),
            None
        );
        assert_eq!(
            relation_allowed(&msg[..6], &[("public".into(), "a".into())]),
            None
        );
    }
}
