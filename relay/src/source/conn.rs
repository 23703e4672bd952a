//! A thin walsender client: TCP or unix socket, optional TLS, startup with
//! `replication=database`, password/md5/SCRAM authentication, simple queries for the
//! replication commands, and the switch into CopyBoth for `START_REPLICATION`.
//!
//! tokio-postgres has no replication mode, so this speaks the protocol itself with
//! postgres-protocol's framing helpers. Reading is cancellation-safe: the receive buffer lives in
//! the struct and only complete frames are taken out of it, so a `select!` that drops a pending
//! read loses no bytes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use bytes::{Buf, Bytes, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use walcast_decoder::Lsn;

use super::config::{Host, SourceConfig, SslMode, SESSION_OPTIONS};
use super::error::{ServerError, SourceError};
use super::stream::ReplicationStream;
use super::tls;

/// The largest backend frame accepted. PostgreSQL caps a single datum at 1 GB; a pgoutput
/// message can carry a few of those in rare cases, but anything beyond this is corruption.
pub const MAX_FRAME: usize = 1 << 30;

pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> Io for T {}

/// One complete backend message: its tag and body (without the 5-byte header).
pub(crate) struct Frame {
    pub tag: u8,
    pub body: Bytes,
}

/// Result of `IDENTIFY_SYSTEM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifySystem {
    pub systemid: String,
    pub timeline: u32,
    pub xlogpos: Lsn,
    pub dbname: Option<String>,
}

/// Result of `CREATE_REPLICATION_SLOT … LOGICAL pgoutput` with snapshot export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSlot {
    pub slot_name: String,
    /// The stream starts with the first transaction committing after this point.
    pub consistent_point: Lsn,
    /// Import with `SET TRANSACTION SNAPSHOT '<name>'` inside a REPEATABLE READ transaction,
    /// before the next command on the replication connection.
    pub snapshot_name: Option<String>,
}

/// Options for creating a slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CreateSlotOptions {
    pub temporary: bool,
    /// Decode prepared transactions at PREPARE time (PG15+; a permanent slot property).
    pub two_phase: bool,
    /// Export a snapshot for a consistent bootstrap (otherwise `NOEXPORT_SNAPSHOT`).
    pub export_snapshot: bool,
}

/// A result row of a simple query: text values, NULL as `None`.
pub type Row = Vec<Option<String>>;

/// A connection in replication mode, idle between commands.
pub struct ReplicationConnection {
    io: Box<dyn Io>,
    rbuf: BytesMut,
    wbuf: BytesMut,
    params: HashMap<String, String>,
    user: String,
    backend_pid: i32,
}

impl std::fmt::Debug for ReplicationConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationConnection")
            .field("user", &self.user)
            .field("backend_pid", &self.backend_pid)
            .field("server_version", &self.server_version())
            .finish()
    }
}

impl ReplicationConnection {
    /// Connects, negotiates TLS per `sslmode`, authenticates and waits for ReadyForQuery.
    pub async fn connect(cfg: &SourceConfig) -> Result<ReplicationConnection, SourceError> {
        tokio::time::timeout(cfg.connect_timeout, Self::connect_inner(cfg))
            .await
            .map_err(|_| SourceError::Timeout(cfg.connect_timeout))?
    }

    async fn connect_inner(cfg: &SourceConfig) -> Result<ReplicationConnection, SourceError> {
        let target = format!("{}:{}", cfg.host, cfg.port);
        let io: Box<dyn Io> = match &cfg.host {
            Host::Unix(dir) => {
                let path: PathBuf = dir.join(format!(".s.PGSQL.{}", cfg.port));
                let s = tokio::net::UnixStream::connect(&path)
                    .await
                    .map_err(|source| SourceError::Connect {
                        target: path.display().to_string(),
                        source,
                    })?;
                Box::new(s)
            }
            Host::Tcp(h) => {
                let mut s = tokio::net::TcpStream::connect((h.as_str(), cfg.port))
                    .await
                    .map_err(|source| SourceError::Connect {
                        target: target.clone(),
                        source,
                    })?;
                s.set_nodelay(true)?;
                match tls::client_config(cfg)? {
                    None => Box::new(s),
                    Some(tls_cfg) => {
                        let mut req = BytesMut::new();
                        frontend::ssl_request(&mut req);
                        s.write_all(&req).await?;
                        // Exactly one byte: anything the server sends before the handshake must
                        // not be trusted (CVE-2021-23222).
                        let answer = s.read_u8().await?;
                        match answer {
                            b'S' => {
                                let name = tls::server_name(h)?;
                                let tls = tokio_rustls::TlsConnector::from(tls_cfg)
                                    .connect(name, s)
                                    .await
                                    .map_err(|e| {
                                        SourceError::Tls(format!("handshake with {target}: {e}"))
                                    })?;
                                Box::new(tls)
                            }
                            b'N' if cfg.sslmode == SslMode::Prefer => Box::new(s),
                            b'N' => return Err(SourceError::TlsUnsupported(cfg.sslmode.as_str())),
                            b'E' => {
                                return Err(SourceError::Protocol(
                                    "server answered the TLS request with an error (too old?)"
                                        .into(),
                                ))
                            }
                            other => {
                                return Err(SourceError::Protocol(format!(
                                    "unexpected answer {other:#x} to the TLS request"
                                )))
                            }
                        }
                    }
                }
            }
        };
        let mut conn = ReplicationConnection {
            io,
            rbuf: BytesMut::with_capacity(64 * 1024),
            wbuf: BytesMut::with_capacity(1024),
            params: HashMap::new(),
            user: cfg.user.clone(),
            backend_pid: 0,
        };
        conn.startup(cfg).await?;
        Ok(conn)
    }

    async fn startup(&mut self, cfg: &SourceConfig) -> Result<(), SourceError> {
        let params = [
            ("user", cfg.user.as_str()),
            ("database", cfg.dbname.as_str()),
            ("replication", "database"),
            ("application_name", cfg.application_name.as_str()),
            ("options", SESSION_OPTIONS),
            ("client_encoding", "UTF8"),
        ];
        frontend::startup_message(params, &mut self.wbuf)?;
        self.flush().await?;

        let password = || {
            cfg.password
                .as_ref()
                .map(|p| p.expose().as_bytes())
                .ok_or_else(|| SourceError::Auth {
                    user: cfg.user.clone(),
                    message:
                        "the server asks for a password but none is configured (URL or PGPASSWORD)"
                            .into(),
                })
        };
        let mut scram: Option<ScramSha256> = None;
        loop {
            let frame = self.read_frame().await?;
            match self.delegate(frame)? {
                Message::AuthenticationOk => break,
                Message::AuthenticationCleartextPassword => {
                    frontend::password_message(password()?, &mut self.wbuf)?;
                    self.flush().await?;
                }
                Message::AuthenticationMd5Password(body) => {
                    let hash = md5_hash(cfg.user.as_bytes(), password()?, body.salt());
                    frontend::password_message(hash.as_bytes(), &mut self.wbuf)?;
                    self.flush().await?;
                }
                Message::AuthenticationSasl(body) => {
                    let mut mechs = body.mechanisms();
                    let mut has_scram = false;
                    while let Some(m) = mechs.next()? {
                        has_scram |= m == SCRAM_SHA_256;
                    }
                    if !has_scram {
                        return Err(self.auth_error("the server offers no SASL mechanism walcast supports (SCRAM-SHA-256)"));
                    }
                    let s = ScramSha256::new(password()?, ChannelBinding::unsupported());
                    frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut self.wbuf)?;
                    scram = Some(s);
                    self.flush().await?;
                }
                Message::AuthenticationSaslContinue(body) => {
                    let s = scram.as_mut().ok_or_else(|| SourceError::Protocol("SASL continue before start".into()))?;
                    s.update(body.data()).map_err(|e| self.auth_error(&format!("SCRAM: {e}")))?;
                    frontend::sasl_response(s.message(), &mut self.wbuf)?;
                    self.flush().await?;
                }
                Message::AuthenticationSaslFinal(body) => {
                    let s = scram.as_mut().ok_or_else(|| SourceError::Protocol("SASL final before start".into()))?;
                    s.finish(body.data())
                        .map_err(|e| self.auth_error(&format!("SCRAM server signature: {e}")))?;
                }
                Message::AuthenticationGss
                | Message::AuthenticationKerberosV5
                | Message::AuthenticationSspi
                | Message::AuthenticationScmCredential
                | Message::AuthenticationGssContinue(_) => {
                    return Err(self.auth_error(
                        "the server asks for GSS/SSPI/Kerberos authentication, which walcast does not support; use scram-sha-256",
                    ))
                }
                _ => return Err(SourceError::Protocol("unexpected message during authentication".into())),
            }
        }
        // After AuthenticationOk: ParameterStatus*, BackendKeyData, ReadyForQuery.
        loop {
            let frame = self.read_frame().await?;
            match self.delegate(frame)? {
                Message::ReadyForQuery(_) => break,
                Message::BackendKeyData(k) => self.backend_pid = k.process_id(),
                _ => {}
            }
        }
        Ok(())
    }

    fn auth_error(&self, message: &str) -> SourceError {
        SourceError::Auth {
            user: self.user.clone(),
            message: message.to_string(),
        }
    }

    /// The full `server_version` parameter, e.g. `15.4 (Debian 15.4-1)`.
    pub fn server_version(&self) -> &str {
        self.params
            .get("server_version")
            .map(String::as_str)
            .unwrap_or("")
    }

    /// The major version (14, 15, …), 0 if the server did not say.
    pub fn server_major(&self) -> u32 {
        major_of(self.server_version())
    }

    /// Any `ParameterStatus` value the server reported.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    pub fn backend_pid(&self) -> i32 {
        self.backend_pid
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// Runs one simple-protocol command and returns its rows (text).
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<Row>, SourceError> {
        self.simple_query_for(sql, None).await
    }

    async fn simple_query_for(
        &mut self,
        sql: &str,
        slot: Option<&str>,
    ) -> Result<Vec<Row>, SourceError> {
        frontend::query(sql, &mut self.wbuf)?;
        self.flush().await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let frame = self.read_frame().await?;
            match frame.tag {
                b'D' => rows.push(parse_data_row(&frame.body)?),
                b'E' => {
                    let e = ServerError::parse(&frame.body);
                    // FATAL/PANIC close the connection: no ReadyForQuery will follow.
                    let fatal = e.severity == "FATAL" || e.severity == "PANIC";
                    let e = SourceError::classify(e, &self.user, slot);
                    if fatal {
                        return Err(e);
                    }
                    error = Some(e);
                }
                b'Z' => break,
                // RowDescription, CommandComplete, EmptyQueryResponse: nothing to keep.
                b'T' | b'C' | b'I' => {}
                b'W' | b'H' | b'G' => {
                    return Err(SourceError::Protocol(format!(
                        "{sql:?} unexpectedly started a COPY"
                    )));
                }
                _ => {
                    self.delegate(frame)?;
                }
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok(rows),
        }
    }

    /// `IDENTIFY_SYSTEM`.
    pub async fn identify_system(&mut self) -> Result<IdentifySystem, SourceError> {
        let rows = self.simple_query("IDENTIFY_SYSTEM").await?;
        let row = rows
            .first()
            .ok_or_else(|| SourceError::Protocol("IDENTIFY_SYSTEM returned no row".into()))?;
        let col = |i: usize| row.get(i).cloned().flatten();
        let need = |i: usize, what: &str| {
            col(i).ok_or_else(|| SourceError::Protocol(format!("IDENTIFY_SYSTEM without {what}")))
        };
        Ok(IdentifySystem {
            systemid: need(0, "systemid")?,
            timeline: need(1, "timeline")?.parse().map_err(|_| {
                SourceError::Protocol("IDENTIFY_SYSTEM timeline is not a number".into())
            })?,
            xlogpos: need(2, "xlogpos")?
                .parse()
                .map_err(|e| SourceError::Protocol(format!("IDENTIFY_SYSTEM xlogpos: {e}")))?,
            dbname: col(3),
        })
    }

    /// `CREATE_REPLICATION_SLOT <name> LOGICAL pgoutput` (with snapshot export if asked).
    ///
    /// On success the connection stays idle: the exported snapshot lives until the next command
    /// on this connection, so import it elsewhere first, then call [`Self::start_replication`].
    pub async fn create_slot(
        &mut self,
        name: &str,
        opts: CreateSlotOptions,
    ) -> Result<CreatedSlot, SourceError> {
        check_slot_name(name)?;
        let major = self.server_major();
        let temp = if opts.temporary { " TEMPORARY" } else { "" };
        let sql = if major >= 15 {
            let mut o = vec![format!(
                "SNAPSHOT '{}'",
                if opts.export_snapshot {
                    "export"
                } else {
                    "nothing"
                }
            )];
            if opts.two_phase {
                o.push("TWO_PHASE true".into());
            }
            format!(
                "CREATE_REPLICATION_SLOT \"{name}\"{temp} LOGICAL pgoutput ({})",
                o.join(", ")
            )
        } else {
            if opts.two_phase {
                return Err(SourceError::Config(
                    "two_phase slots need PostgreSQL 15 or newer".into(),
                ));
            }
            let snap = if opts.export_snapshot {
                "EXPORT_SNAPSHOT"
            } else {
                "NOEXPORT_SNAPSHOT"
            };
            format!("CREATE_REPLICATION_SLOT \"{name}\"{temp} LOGICAL pgoutput {snap}")
        };
        let rows = self.simple_query_for(&sql, Some(name)).await?;
        let row = rows.first().ok_or_else(|| {
            SourceError::Protocol("CREATE_REPLICATION_SLOT returned no row".into())
        })?;
        let col = |i: usize| row.get(i).cloned().flatten();
        Ok(CreatedSlot {
            slot_name: col(0).unwrap_or_else(|| name.to_string()),
            consistent_point: col(1)
                .ok_or_else(|| {
                    SourceError::Protocol("CREATE_REPLICATION_SLOT without consistent_point".into())
                })?
                .parse()
                .map_err(|e| SourceError::Protocol(format!("consistent_point: {e}")))?,
            snapshot_name: col(2),
        })
    }

    /// `DROP_REPLICATION_SLOT <name> [WAIT]`.
    pub async fn drop_slot(&mut self, name: &str, wait: bool) -> Result<(), SourceError> {
        check_slot_name(name)?;
        let sql = format!(
            "DROP_REPLICATION_SLOT \"{name}\"{}",
            if wait { " WAIT" } else { "" }
        );
        self.simple_query_for(&sql, Some(name)).await.map(|_| ())
    }

    /// `START_REPLICATION SLOT <slot> LOGICAL <start> (…)`; the connection becomes a stream.
    pub async fn start_replication(
        mut self,
        slot: &str,
        start: Lsn,
        opts: &PgOutputOptions,
    ) -> Result<ReplicationStream, SourceError> {
        check_slot_name(slot)?;
        let major = self.server_major();
        let sql = start_replication_sql(slot, start, opts, major)?;
        tracing::debug!(%sql, "starting replication");
        frontend::query(&sql, &mut self.wbuf)?;
        self.flush().await?;
        loop {
            let frame = self.read_frame().await?;
            match frame.tag {
                b'W' => break,
                b'E' => {
                    return Err(SourceError::classify(
                        ServerError::parse(&frame.body),
                        &self.user,
                        Some(slot),
                    ));
                }
                _ => {
                    self.delegate(frame)?;
                }
            }
        }
        Ok(ReplicationStream::new(
            self,
            opts.effective_proto_version(major),
            major,
        ))
    }

    /// Sends Terminate and closes the socket.
    pub async fn close(mut self) -> Result<(), SourceError> {
        frontend::terminate(&mut self.wbuf);
        self.flush().await?;
        let _ = self.io.shutdown().await;
        Ok(())
    }

    /// Reads one complete frame. Cancellation-safe: partial frames stay in `rbuf`.
    pub(crate) async fn read_frame(&mut self) -> Result<Frame, SourceError> {
        loop {
            if let Some(frame) = take_frame(&mut self.rbuf)? {
                return Ok(frame);
            }
            let n = self.io.read_buf(&mut self.rbuf).await?;
            if n == 0 {
                return Err(SourceError::Closed);
            }
        }
    }

    /// Whether a complete backend message is already buffered, so the next read won't wait.
    pub(crate) fn has_buffered_frame(&self) -> bool {
        self.rbuf.len() >= 5
            && self.rbuf.len()
                > u32::from_be_bytes([self.rbuf[1], self.rbuf[2], self.rbuf[3], self.rbuf[4]])
                    as usize
    }

    /// Appends to the send buffer; [`Self::flush`] writes it out.
    pub(crate) fn wbuf(&mut self) -> &mut BytesMut {
        &mut self.wbuf
    }

    /// Writes the send buffer. Cancellation-safe: bytes leave the buffer only once written, so
    /// an interrupted flush resumes where it stopped.
    pub(crate) async fn flush(&mut self) -> Result<(), SourceError> {
        while !self.wbuf.is_empty() {
            let n = self.io.write(&self.wbuf).await?;
            if n == 0 {
                return Err(SourceError::Closed);
            }
            self.wbuf.advance(n);
        }
        self.io.flush().await?;
        Ok(())
    }

    /// Hands a frame to postgres-protocol's parser, handling the asynchronous messages
    /// (ErrorResponse, NoticeResponse, ParameterStatus) that may arrive at any time.
    pub(crate) fn delegate(&mut self, frame: Frame) -> Result<Message, SourceError> {
        match frame.tag {
            b'E' => {
                return Err(SourceError::classify(
                    ServerError::parse(&frame.body),
                    &self.user,
                    None,
                ))
            }
            b'N' => {
                let n = ServerError::parse(&frame.body);
                tracing::info!(code = %n.code, "server notice: {}", n.message);
            }
            _ => {}
        }
        let mut raw = BytesMut::with_capacity(frame.body.len() + 5);
        raw.extend_from_slice(&[frame.tag]);
        raw.extend_from_slice(&((frame.body.len() + 4) as u32).to_be_bytes());
        raw.extend_from_slice(&frame.body);
        let msg = Message::parse(&mut raw)?
            .ok_or_else(|| SourceError::Protocol("incomplete frame handed to the parser".into()))?;
        if let Message::ParameterStatus(p) = &msg {
            if let (Ok(k), Ok(v)) = (p.name(), p.value()) {
                self.params.insert(k.to_string(), v.to_string());
            }
        }
        Ok(msg)
    }
}

/// Takes one complete frame off the front of `buf`, or returns `None` (and reserves room for
/// the rest) if it is not all there yet. Never reserves more than 1 MiB on a length field's word.
pub(crate) fn take_frame(buf: &mut BytesMut) -> Result<Option<Frame>, SourceError> {
    if buf.len() < 5 {
        buf.reserve(64 * 1024);
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if !(4..=MAX_FRAME).contains(&len) {
        return Err(SourceError::Protocol(format!(
            "backend frame tag {:#x} with impossible length {len}",
            buf[0]
        )));
    }
    let total = len + 1;
    if buf.len() < total {
        buf.reserve((total - buf.len()).clamp(64 * 1024, 1 << 20));
        return Ok(None);
    }
    let mut frame = buf.split_to(total);
    let tag = frame[0];
    frame.advance(5);
    Ok(Some(Frame {
        tag,
        body: frame.freeze(),
    }))
}

fn parse_data_row(body: &[u8]) -> Result<Row, SourceError> {
    let bad = || SourceError::Protocol("malformed DataRow".into());
    let mut b = body;
    if b.len() < 2 {
        return Err(bad());
    }
    let n = b.get_u16() as usize;
    let mut row = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        if b.len() < 4 {
            return Err(bad());
        }
        let len = b.get_i32();
        if len < 0 {
            row.push(None);
        } else {
            let len = len as usize;
            if b.len() < len {
                return Err(bad());
            }
            row.push(Some(String::from_utf8_lossy(&b[..len]).into_owned()));
            b.advance(len);
        }
    }
    Ok(row)
}

/// `15.4 (Debian …)` → 15; `16beta1` → 16.
pub fn major_of(version: &str) -> u32 {
    version
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap_or(0)
}

/// Slot names are `[a-z0-9_]{1,63}` in PostgreSQL; checking here also makes quoting trivial.
pub fn check_slot_name(name: &str) -> Result<(), SourceError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(SourceError::Config(format!(
            "slot name {name:?} is invalid: use 1-63 characters from a-z, 0-9 and _"
        )))
    }
}

/// pgoutput's `streaming` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Streaming {
    Off,
    /// Stream large in-progress transactions (`on`, PG14+).
    On,
    /// `parallel` on PG16+ (abort messages carry LSN and time), `on` on 14–15.
    #[default]
    Auto,
}

/// The pgoutput options for `START_REPLICATION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOutputOptions {
    pub publication_names: Vec<String>,
    /// `None`: the highest the server supports (14→2, 15→3, 16+→4).
    pub proto_version: Option<u32>,
    /// Include `pg_logical_emit_message` messages.
    pub messages: bool,
    pub streaming: Streaming,
    /// Send column values in binary where the type allows it.
    pub binary: bool,
    /// Ask for two-phase decoding (the slot must have been created with two_phase).
    pub two_phase: bool,
    /// PG16+: `any` or `none`.
    pub origin: Option<String>,
}

impl PgOutputOptions {
    pub fn new(publication: impl Into<String>) -> PgOutputOptions {
        PgOutputOptions {
            publication_names: vec![publication.into()],
            proto_version: None,
            messages: true,
            streaming: Streaming::Auto,
            binary: false,
            two_phase: false,
            origin: None,
        }
    }

    /// The protocol version used against a server of this major version.
    pub fn effective_proto_version(&self, major: u32) -> u32 {
        self.proto_version.unwrap_or(proto_version_for(major))
    }
}

/// The highest pgoutput protocol version a server major version supports.
pub fn proto_version_for(major: u32) -> u32 {
    match major {
        0..=13 => 1,
        14 => 2,
        15 => 3,
        _ => 4,
    }
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Builds the `START_REPLICATION` command.
pub fn start_replication_sql(
    slot: &str,
    start: Lsn,
    o: &PgOutputOptions,
    major: u32,
) -> Result<String, SourceError> {
    if o.publication_names.is_empty() {
        return Err(SourceError::Config(
            "at least one publication name is needed".into(),
        ));
    }
    let proto = o.effective_proto_version(major);
    let pubs = o
        .publication_names
        .iter()
        .map(|p| quote_ident(p))
        .collect::<Vec<_>>()
        .join(",");
    let mut sql = format!(
        "START_REPLICATION SLOT \"{slot}\" LOGICAL {start} (\"proto_version\" '{proto}', \"publication_names\" {}",
        quote_literal(&pubs)
    );
    if o.messages && major >= 14 {
        sql.push_str(", \"messages\" 'true'");
    }
    let streaming = match o.streaming {
        Streaming::Off => None,
        Streaming::On if proto >= 2 => Some("on"),
        Streaming::Auto if proto >= 4 => Some("parallel"),
        Streaming::Auto if proto >= 2 => Some("on"),
        _ => None,
    };
    if let Some(s) = streaming {
        let _ = write!(sql, ", \"streaming\" '{s}'");
    }
    if o.binary {
        sql.push_str(", \"binary\" 'true'");
    }
    if o.two_phase {
        if proto < 3 {
            return Err(SourceError::Config(
                "two_phase needs PostgreSQL 15+ (pgoutput protocol 3)".into(),
            ));
        }
        sql.push_str(", \"two_phase\" 'true'");
    }
    if let Some(origin) = &o.origin {
        let _ = write!(sql, ", \"origin\" {}", quote_literal(origin));
    }
    sql.push(')');
    Ok(sql)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_out_whole_and_only_whole() {
        let mut b = BytesMut::new();
        b.extend_from_slice(&[b'Z', 0, 0, 0, 5]);
        assert!(take_frame(&mut b).unwrap().is_none());
        b.extend_from_slice(b"I");
        b.extend_from_slice(&[b'd', 0, 0, 0, 6, 1]);
        let f = take_frame(&mut b).unwrap().unwrap();
        assert_eq!((f.tag, &f.body[..]), (b'Z', &b"I"[..]));
        assert!(take_frame(&mut b).unwrap().is_none());
        b.extend_from_slice(&[2]);
        let f = take_frame(&mut b).unwrap().unwrap();
        assert_eq!((f.tag, &f.body[..]), (b'd', &[1u8, 2][..]));
        assert!(b.is_empty());
    }

    #[test]
    fn absurd_lengths_are_errors_not_allocations() {
        let mut b = BytesMut::from(&[b'd', 0xff, 0xff, 0xff, 0xff][..]);
        assert!(take_frame(&mut b).is_err());
        let mut b = BytesMut::from(&[b'd', 0, 0, 0, 3][..]);
        assert!(take_frame(&mut b).is_err());
        let mut b = BytesMut::from(&[b'd', 0x3f, 0xff, 0xff, 0xff][..]);
        assert!(take_frame(&mut b).unwrap().is_none());
        assert!(
            b.capacity() <= (1 << 20) + 64 * 1024,
            "reserved {}",
            b.capacity()
        );
    }

    #[test]
    fn data_rows() {
        let body = [0u8, 2, 0, 0, 0, 2, b'h', b'i', 0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            parse_data_row(&body).unwrap(),
            vec![Some("hi".to_string()), None]
        );
        assert!(parse_data_row(&body[..7]).is_err());
    }

    #[test]
    fn versions_and_protocols() {
        assert_eq!(major_of("15.4 (Debian 15.4-1.pgdg120+1)"), 15);
        assert_eq!(major_of("16beta1"), 16);
        assert_eq!([14, 15, 16, 17, 18].map(proto_version_for), [2, 3, 4, 4, 4]);
    }

    #[test]
    fn start_replication_command() {
        let o = PgOutputOptions::new("my\"pub");
        let s = start_replication_sql("s1", Lsn(0x1_0000_0010), &o, 16).unwrap();
        assert_eq!(
            s,
            "START_REPLICATION SLOT \"s1\" LOGICAL 1/10 (\"proto_version\" '4', \"publication_names\" '\"my\"\"pub\"', \"messages\" 'true', \"streaming\" 'parallel')"
        );
        let s = start_replication_sql("s1", Lsn(0), &o, 14).unwrap();
        assert!(s.contains("'2'") && s.contains("\"streaming\" 'on'"), "{s}");
        let mut o2 = o.clone();
        o2.two_phase = true;
        assert!(start_replication_sql("s1", Lsn(0), &o2, 14).is_err());
        assert!(start_replication_sql("s1", Lsn(0), &o2, 15)
            .unwrap()
            .contains("two_phase"));
        assert!(check_slot_name("Bad-Name").is_err());
        assert!(check_slot_name("good_1").is_ok());
    }
}
