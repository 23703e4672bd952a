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
    /// Start with the rows of every table as of one consistent point, then the stream from
    /// that point (`docs/bootstrap.md`). Excludes `from` and `consumer`.
    pub bootstrap: bool,
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
                        "unknown query parameter {:?}; known: from, tables, consumer, bootstrap, access_token",
                        truncate(other)
                    )))
                }
            }
        }
        Ok((Self::validate(from, tables, consumer, bootstrap)?, token))
    }

    /// Parses the JSON request a QUIC client sends on its stream.
    pub fn from_json(body: &[u8]) -> Result<StreamRequest, BadRequest> {
        Self::from_json_with_token(body).map(|(r, _)| r)
    }

    /// Like [`from_json`](Self::from_json), and also returns the `"token"` field.
    pub fn from_json_with_token(
        body: &[u8],
    ) -> Result<(StreamRequest, Option<String>), BadRequest> {
        if body.len() > MAX_REQUEST_BYTES {
            return Err(BadRequest(format!(
                "request longer than {MAX_REQUEST_BYTES} bytes"
            )));
        }
        let wire: WireRequest = serde_json::from_slice(body).map_err(|e| {
            BadRequest(format!(
                "request is not the expected JSON object {{\"from\", \"tables\", \"consumer\", \"token\"}}: {e}"
            ))
        })?;
        Ok((
            Self::validate(wire.from, wire.tables, wire.consumer, wire.bootstrap)?,
            wire.token,
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
            bootstrap,
        })
    }

    pub fn to_json(&self) -> String {
        let wire = WireRequest {
            from: self.from.map(|l| l.to_string()),
            tables: self.table_names(),
            consumer: self.consumer.clone(),
            bootstrap: self.bootstrap,
            token: None,
        };
        serde_json::to_string(&wire).expect("plain strings serialize")
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
    if name.is_empty() || name.len() > 2 * 64 + 1 || name.chars().any(|c| c.is_control()) {
        return Err(bad());
    }
    match name.split_once('.') {
        Some((schema, table))
            if !schema.is_empty() && !table.is_empty() && !table.contains('.') =>
        {
            Ok((schema.to_string(), table.to_string()))
        }
        None => Ok(("public".to_string(), name.to_string())),
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
            bootstrap: false,
        };
        assert_eq!(StreamRequest::from_json(r.to_json().as_bytes()).unwrap(), r);
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
    fn query_round_trip() {
        let r = StreamRequest {
            from: Some(Lsn(0x1_0000_0010)),
            tables: vec![("s".into(), "t".into())],
            consumer: Some("b.1-x_y".into()),
            bootstrap: false,
        };
        let mut url = url::Url::parse("http://x/v1/stream").unwrap();
        r.write_query(&mut url);
        assert_eq!(StreamRequest::from_query(url.query()).unwrap(), r);
    }
}
