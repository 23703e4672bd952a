//! What a client asks for when it opens a stream, parsed the same way from an HTTP query
//! string and from the JSON request a QUIC client sends. Pure, so every byte a client can send
//! here is unit-tested and fuzzable.

use serde::{Deserialize, Serialize};
use walcast_decoder::Lsn;

/// ALPN protocol id of walcast over QUIC.
pub const ALPN: &[u8] = b"walcast/1";

/// Largest request a client may send (QUIC request body, HTTP query string).
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// At most this many tables in one request.
pub const MAX_TABLES: usize = 256;

/// A validated stream request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamRequest {
    /// Resume after this LSN; `None` starts at the oldest position the relay holds.
    pub from: Option<Lsn>,
    /// `(schema, table)` pairs; empty means every published table.
    pub tables: Vec<(String, String)>,
    /// A registered durable consumer this stream is for: without `from`, the stream starts
    /// after the consumer's acknowledged LSN.
    pub consumer: Option<String>,
    /// Row scopes by table, set from the client's token by the auth gate (never parsed from the
    /// request itself): docs/auth.md, "Row scopes".
    pub scopes: Vec<((String, String), crate::auth::RowScope)>,
    /// Start with the rows of every table as of one consistent point, then the stream from
    /// that point (`docs/bootstrap.md`). Excludes `from` and `consumer`.
    pub bootstrap: bool,
}

/// How the relay compresses one stream (docs/frames.md, "Compression"). The compressed bytes
/// carry exactly the uncompressed stream (header, then frames), so decoding is unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Compression {
    /// The plain frame stream.
    #[default]
    None,
    /// One zstd frame (RFC 8878), flushed at every chunk the relay hands out: at each
    /// transaction boundary while the client is caught up, every ~32 KiB under load.
    Zstd,
}

impl Compression {
    /// The name used in the `compression` query parameter, the QUIC `"compression"` key and
    /// the HTTP `Content-Encoding` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Zstd => "zstd",
        }
    }

    /// Parses an option value: `none` or `zstd` (case-insensitive).
    pub fn parse(value: &str) -> Result<Compression, BadRequest> {
        if value.eq_ignore_ascii_case("zstd") {
            Ok(Compression::Zstd)
        } else if value.eq_ignore_ascii_case("none") || value.eq_ignore_ascii_case("identity") {
            Ok(Compression::None)
        } else {
            Err(BadRequest(format!(
                "unknown compression {:?}; known: zstd, none",
                truncate(value)
            )))
        }
    }

    /// What an HTTP `Accept-Encoding` header allows: zstd when it lists `zstd` (or `*`) with a
    /// non-zero q-value, else none. Only used when the query has no `compression` parameter.
    pub fn from_accept_encoding(header: &str) -> Compression {
        let accepts = header.split(',').any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            if !(coding.eq_ignore_ascii_case("zstd") || coding == "*") {
                return false;
            }
            // `zstd;q=0` means "not acceptable".
            !parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .or_else(|| p.strip_prefix("Q="))
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            })
        });
        if accepts {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Everything a stream request carries besides the [`StreamRequest`] itself: the token and
/// transport options. Kept apart so the request stays what authorization and the log reader see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestExtras {
    /// The bearer token, when the client sent it in the request (never logged).
    pub token: Option<String>,
    /// The compression the client asked for explicitly; `None` if it did not say.
    pub compression: Option<Compression>,
    /// The frame format version asked for (`v`): 1 (the default), 2 or 3 (docs/frames.md,
    /// "Version 2", "Version 3").
    pub version: Option<u16>,
}

/// Frame format versions a client may ask for.
pub const VERSIONS: [u16; 3] = [1, 2, 3];

fn parse_version(v: &str) -> Result<u16, BadRequest> {
    v.parse::<u16>()
        .ok()
        .filter(|v| VERSIONS.contains(v))
        .ok_or_else(|| {
            BadRequest(format!(
                "unsupported frame version {:?}; supported: 1, 2, 3",
                truncate(v)
            ))
        })
}

/// The request was malformed; the message says what to send instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct WireRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tables: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    consumer: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    bootstrap: bool,
    /// A bearer token (docs/auth.md); never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    /// `"zstd"` or `"none"` (docs/frames.md, "Compression").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    compression: Option<String>,
    /// Frame format version, 1 or 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    v: Option<u16>,
}

impl StreamRequest {
    /// Parses an HTTP query string (`from=16/B374D848&tables=public.a,public.b`).
    pub fn from_query(query: Option<&str>) -> Result<StreamRequest, BadRequest> {
        Self::from_query_with_token(query).map(|(r, _)| r)
    }

    /// Like [`from_query`](Self::from_query), and also returns the `access_token` parameter
    /// (browsers cannot set an `Authorization` header on `EventSource`-style requests).
    pub fn from_query_with_token(
        query: Option<&str>,
    ) -> Result<(StreamRequest, Option<String>), BadRequest> {
        Self::from_query_with_extras(query).map(|(r, extras)| (r, extras.token))
    }

    /// Like [`from_query`](Self::from_query), and also returns the token and the options
    /// (`compression`).
    pub fn from_query_with_extras(
        query: Option<&str>,
    ) -> Result<(StreamRequest, RequestExtras), BadRequest> {
        let query = query.unwrap_or("");
        if query.len() > MAX_REQUEST_BYTES {
            return Err(BadRequest(format!(
                "query string longer than {MAX_REQUEST_BYTES} bytes"
            )));
        }
        let mut from = None;
        let mut tables = Vec::new();
        let mut consumer = None;
        let mut token = None;
        let mut compression = None;
        let mut version = None;
        let mut bootstrap = false;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "from" => from = Some(value.into_owned()),
                "tables" => tables.extend(
                    value
                        .split(',')
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned),
                ),
                "consumer" if consumer.is_some() => {
                    return Err(BadRequest("consumer given twice".into()))
                }
                "consumer" => consumer = Some(value.into_owned()),
                "access_token" => token = Some(value.into_owned()),
                "compression" => compression = Some(Compression::parse(&value)?),
                "v" => version = Some(parse_version(&value)?),
                "bootstrap" => {
                    bootstrap = match value.as_ref() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(BadRequest("bootstrap must be true or false".into())),
                    }
                }
                // Tokens and options that later versions add are ignored by older relays only
                // when they are known to be optional; unknown keys are a client bug.
                other => {
                    return Err(BadRequest(format!(
                        "unknown query parameter {:?}; known: from, tables, consumer, bootstrap, access_token, compression, v",
                        truncate(other)
                    )))
                }
            }
        }
        Ok((
            Self::validate(from, tables, consumer, bootstrap)?,
            RequestExtras {
                token,
                compression,
                version,
            },
        ))
    }

    /// Parses the JSON request a QUIC client sends on its stream.
    pub fn from_json(body: &[u8]) -> Result<StreamRequest, BadRequest> {
        Self::from_json_with_token(body).map(|(r, _)| r)
    }

    /// Like [`from_json`](Self::from_json), and also returns the `"token"` field.
    pub fn from_json_with_token(
        body: &[u8],
    ) -> Result<(StreamRequest, Option<String>), BadRequest> {
        Self::from_json_with_extras(body).map(|(r, extras)| (r, extras.token))
    }

    /// Like [`from_json`](Self::from_json), and also returns the `"token"` and the options
    /// (`"compression"`).
    pub fn from_json_with_extras(
        body: &[u8],
    ) -> Result<(StreamRequest, RequestExtras), BadRequest> {
        if body.len() > MAX_REQUEST_BYTES {
            return Err(BadRequest(format!(
                "request longer than {MAX_REQUEST_BYTES} bytes"
            )));
        }
        let wire: WireRequest = serde_json::from_slice(body).map_err(|e| {
            BadRequest(format!(
                "request is not the expected JSON object {{\"from\", \"tables\", \"consumer\", \"token\", \"compression\", \"v\"}}: {e}"
            ))
        })?;
        let compression = wire
            .compression
            .as_deref()
            .map(Compression::parse)
            .transpose()?;
        let version = wire.v.map(|v| parse_version(&v.to_string())).transpose()?;
        Ok((
            Self::validate(wire.from, wire.tables, wire.consumer, wire.bootstrap)?,
            RequestExtras {
                token: wire.token,
                compression,
                version,
            },
        ))
    }

    fn validate(
        from: Option<String>,
        tables: Vec<String>,
        consumer: Option<String>,
        bootstrap: bool,
    ) -> Result<StreamRequest, BadRequest> {
        if bootstrap && (from.as_deref().is_some_and(|f| !f.is_empty()) || consumer.is_some()) {
            return Err(BadRequest(
                "bootstrap starts at the image's consistent point: give neither from nor consumer"
                    .into(),
            ));
        }
        let from = match from.as_deref() {
            None | Some("") => None,
            Some(s) => Some(s.parse::<Lsn>().map_err(|e| BadRequest(e.to_string()))?),
        };
        if tables.len() > MAX_TABLES {
            return Err(BadRequest(format!(
                "more than {MAX_TABLES} tables requested"
            )));
        }
        let tables = tables
            .iter()
            .map(|t| parse_table(t))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(name) = &consumer {
            crate::consumers::validate_name(name).map_err(|e| BadRequest(e.to_string()))?;
        }
        Ok(StreamRequest {
            from,
            tables,
            consumer,
            scopes: Vec::new(),
            bootstrap,
        })
    }

    pub fn to_json(&self) -> String {
        self.to_json_with(None, Compression::None, 1)
    }

    /// The QUIC request JSON with a bearer token (docs/auth.md, "Presenting a token").
    pub fn to_json_with_token(&self, token: Option<&str>) -> String {
        self.to_json_with(token, Compression::None, 1)
    }

    /// The QUIC request with a token, asking for `compression` (the key is left out for `none`,
    /// so relays that predate compression accept it). Version 1 is left out too.
    pub fn to_json_with(
        &self,
        token: Option<&str>,
        compression: Compression,
        version: u16,
    ) -> String {
        let wire = WireRequest {
            from: self.from.map(|l| l.to_string()),
            tables: self.table_names(),
            consumer: self.consumer.clone(),
            bootstrap: self.bootstrap,
            token: token.map(str::to_owned),
            compression: (compression != Compression::None)
                .then(|| compression.as_str().to_string()),
            v: (version != 1).then_some(version),
        };
        serde_json::to_string(&wire).expect("plain strings serialize")
    }

    /// Like [`write_query`](Self::write_query), asking for `compression` (left out for `none`).
    /// Version 1 is left out too.
    pub fn write_query_with(&self, url: &mut url::Url, compression: Compression, version: u16) {
        self.write_query(url);
        if compression != Compression::None {
            url.query_pairs_mut()
                .append_pair("compression", compression.as_str());
        }
        if version != 1 {
            url.query_pairs_mut().append_pair("v", &version.to_string());
        }
    }

    pub fn write_query(&self, url: &mut url::Url) {
        let mut q = url.query_pairs_mut();
        if let Some(from) = self.from {
            q.append_pair("from", &from.to_string());
        }
        if !self.tables.is_empty() {
            q.append_pair("tables", &self.table_names().join(","));
        }
        if let Some(c) = &self.consumer {
            q.append_pair("consumer", c);
        }
        if self.bootstrap {
            q.append_pair("bootstrap", "true");
        }
    }

    fn table_names(&self) -> Vec<String> {
        self.tables
            .iter()
            .map(|(s, t)| format!("{s}.{t}"))
            .collect()
    }
}

/// `schema.table`, or `table` meaning `public.table`. Names are taken literally (no quoting):
/// pgoutput sends them unquoted, and that is what the filter compares with.
pub fn parse_table(name: &str) -> Result<(String, String), BadRequest> {
    let bad = || {
        BadRequest(format!(
            "invalid table name {:?}: expected schema.table",
            truncate(name)
        ))
    };
    if name.chars().any(|c| c.is_control()) {
        return Err(bad());
    }
    // PostgreSQL names are at most NAMEDATALEN - 1 = 63 bytes. Checked per part, so a bare
    // `table` accepted here is still accepted once written as `public.table` (found by fuzzing).
    let ok = |part: &str| !part.is_empty() && part.len() <= 63;
    match name.split_once('.') {
        Some((schema, table)) if ok(schema) && ok(table) && !table.contains('.') => {
            Ok((schema.to_string(), table.to_string()))
        }
        None if ok(name) => Ok(("public".to_string(), name.to_string())),
        _ => Err(bad()),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_query() {
        let r = StreamRequest::from_query(Some("from=16/B374D848&tables=public.a,b")).unwrap();
        assert_eq!(r.from, Some(Lsn(0x16_B374_D848)));
        assert_eq!(
            r.tables,
            vec![("public".into(), "a".into()), ("public".into(), "b".into())]
        );
        assert_eq!(
            StreamRequest::from_query(None).unwrap(),
            StreamRequest::default()
        );
    }

    #[test]
    fn refuses_bad_queries_with_reasons() {
        for (q, needle) in [
            ("from=zz", "invalid LSN"),
            ("tables=a.b.c", "invalid table name"),
            ("tables=.a", "invalid table name"),
            ("bogus=1", "unknown query parameter"),
        ] {
            let err = StreamRequest::from_query(Some(q)).unwrap_err();
            assert!(err.0.contains(needle), "{q}: {err}");
        }
        let long = format!("tables={}", "a,".repeat(MAX_REQUEST_BYTES));
        assert!(StreamRequest::from_query(Some(&long)).is_err());
    }

    #[test]
    fn consumer_parameter_is_strict() {
        let r = StreamRequest::from_query(Some("consumer=billing")).unwrap();
        assert_eq!((r.consumer.as_deref(), r.from), (Some("billing"), None));
        for (q, needle) in [
            ("consumer=a%20b", "invalid consumer name"),
            ("consumer=", "invalid consumer name"),
            ("consumer=a&consumer=b", "given twice"),
        ] {
            let err = StreamRequest::from_query(Some(q)).unwrap_err();
            assert!(err.0.contains(needle), "{q}: {err}");
        }
        let long = format!("consumer={}", "n".repeat(65));
        assert!(StreamRequest::from_query(Some(&long)).is_err());
        let j = StreamRequest::from_json(br#"{"consumer": "c1", "from": "0/10"}"#).unwrap();
        assert_eq!(
            (j.consumer.as_deref(), j.from),
            (Some("c1"), Some(Lsn(0x10)))
        );
        assert!(StreamRequest::from_json(br#"{"consumer": "a/b"}"#).is_err());
        assert!(StreamRequest::from_json(br#"{"consumer": 5}"#).is_err());
    }

    #[test]
    fn json_round_trip() {
        let r = StreamRequest {
            from: Some(Lsn(5)),
            tables: vec![("s".into(), "t".into())],
            consumer: Some("billing".into()),
            ..Default::default()
        };
        assert_eq!(StreamRequest::from_json(r.to_json().as_bytes()).unwrap(), r);
        let (back, token) =
            StreamRequest::from_json_with_token(r.to_json_with_token(Some("jwt")).as_bytes())
                .unwrap();
        assert_eq!((back, token.as_deref()), (r.clone(), Some("jwt")));
        let b = StreamRequest {
            tables: vec![("s".into(), "t".into())],
            bootstrap: true,
            ..Default::default()
        };
        assert_eq!(StreamRequest::from_json(b.to_json().as_bytes()).unwrap(), b);
        assert!(StreamRequest::from_json(br#"{"bootstrap": true, "from": "0/1"}"#).is_err());
        let q = StreamRequest::from_query(Some("bootstrap=true&tables=a")).unwrap();
        assert!(q.bootstrap);
        assert!(StreamRequest::from_query(Some("bootstrap=yes")).is_err());
        assert!(StreamRequest::from_query(Some("bootstrap=1&consumer=c")).is_err());
        assert!(StreamRequest::from_json(b"{\"from\": 1}").is_err());
        assert!(StreamRequest::from_json(b"\xff\xfe").is_err());
        assert!(StreamRequest::from_json(b"{\"nope\": 1}").is_err());
    }

    #[test]
    fn carries_the_token_separately() {
        let (r, t) =
            StreamRequest::from_query_with_token(Some("tables=a&access_token=abc.def.ghi"))
                .unwrap();
        assert_eq!(r.tables.len(), 1);
        assert_eq!(t.as_deref(), Some("abc.def.ghi"));
        let (r, t) =
            StreamRequest::from_json_with_token(br#"{"from":"0/10","token":"x.y.z"}"#).unwrap();
        assert_eq!(r.from, Some(Lsn(0x10)));
        assert_eq!(t.as_deref(), Some("x.y.z"));
        assert_eq!(StreamRequest::from_json_with_token(b"{}").unwrap().1, None);
    }

    #[test]
    fn compression_option() {
        let (_, x) = StreamRequest::from_query_with_extras(Some("compression=zstd")).unwrap();
        assert_eq!(x.compression, Some(Compression::Zstd));
        let (_, x) = StreamRequest::from_query_with_extras(Some("compression=NONE")).unwrap();
        assert_eq!(x.compression, Some(Compression::None));
        let (_, x) = StreamRequest::from_query_with_extras(Some("from=0/1")).unwrap();
        assert_eq!(x.compression, None);
        let e = StreamRequest::from_query(Some("compression=br")).unwrap_err();
        assert!(e.0.contains("unknown compression"), "{e}");
        let (_, x) = StreamRequest::from_json_with_extras(br#"{"compression":"zstd"}"#).unwrap();
        assert_eq!(x.compression, Some(Compression::Zstd));
        assert!(StreamRequest::from_json(br#"{"compression":"lz4"}"#).is_err());
        let r = StreamRequest {
            from: Some(Lsn(9)),
            ..Default::default()
        };
        let (back, x) = StreamRequest::from_json_with_extras(
            r.to_json_with(None, Compression::Zstd, 2).as_bytes(),
        )
        .unwrap();
        assert_eq!((back, x.compression), (r.clone(), Some(Compression::Zstd)));
        assert_eq!(x.version, Some(2));
        assert!(!r.to_json().contains("compression"));
        let mut url = url::Url::parse("http://x/v1/stream").unwrap();
        r.write_query_with(&mut url, Compression::Zstd, 2);
        let (back, x) = StreamRequest::from_query_with_extras(url.query()).unwrap();
        assert_eq!((back, x.compression), (r, Some(Compression::Zstd)));
        assert_eq!(x.version, Some(2));
        for bad in ["v=4", "v=0", "v=x"] {
            let e = StreamRequest::from_query(Some(bad)).unwrap_err();
            assert!(e.0.contains("unsupported frame version"), "{bad}: {e}");
        }
        assert!(StreamRequest::from_json(br#"{"v": 7}"#).is_err());
    }

    #[test]
    fn accept_encoding() {
        for (h, want) in [
            ("zstd", Compression::Zstd),
            ("gzip, deflate, br, zstd", Compression::Zstd),
            ("gzip, ZSTD;q=0.5", Compression::Zstd),
            ("*", Compression::Zstd),
            ("gzip, deflate", Compression::None),
            ("zstd;q=0", Compression::None),
            ("zstd; q=0.0, gzip", Compression::None),
            ("", Compression::None),
            ("zstdx", Compression::None),
        ] {
            assert_eq!(Compression::from_accept_encoding(h), want, "{h:?}");
        }
    }

    #[test]
    fn query_round_trip() {
        let r = StreamRequest {
            from: Some(Lsn(0x1_0000_0010)),
            tables: vec![("s".into(), "t".into())],
            consumer: Some("b.1-x_y".into()),
            ..Default::default()
        };
        let mut url = url::Url::parse("http://x/v1/stream").unwrap();
        r.write_query(&mut url);
        assert_eq!(StreamRequest::from_query(url.query()).unwrap(), r);
    }
}
