//! Durable-consumer operations, shared by the HTTP API (`/v1/consumers…`) and QUIC control
//! streams, and the parsing of the JSON bodies both carry (pure, unit-tested).
//!
//! QUIC: a stream whose request object has an `"op"` key is a control request, not a stream
//! request: `{"op":"register","consumer":"NAME","from":"LSN"}` (`from` optional) or
//! `{"op":"ack","consumer":"NAME","lsn":"LSN"}`. The relay answers with one JSON object
//! (the consumer as `GET /v1/consumers/{name}` shows it, or `{"code","message"}`) and a newline,
//! then finishes the stream. One short stream per call on the connection that carries the data.

use serde::Deserialize;
use walcast_decoder::Lsn;

use super::request::BadRequest;
use super::session::Hub;
use crate::consumers::{now_unix_ms, ConsumerError, ConsumerView, Registered};

/// Body of `PUT /v1/consumers/{name}` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    #[serde(default)]
    from: Option<String>,
}

/// Body of `POST /v1/consumers/{name}/ack`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    lsn: String,
}

/// A control request over QUIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    Register { consumer: String, from: Option<Lsn> },
    Ack { consumer: String, lsn: Lsn },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, tag = "op", rename_all = "lowercase")]
enum WireControl {
    Register {
        consumer: String,
        #[serde(default)]
        from: Option<String>,
    },
    Ack {
        consumer: String,
        lsn: String,
    },
}

fn lsn(s: &str) -> Result<Lsn, BadRequest> {
    s.parse::<Lsn>().map_err(|e| BadRequest(e.to_string()))
}

/// The `from` of a registration body; an empty body means "no position given".
pub fn parse_register_body(body: &[u8]) -> Result<Option<Lsn>, BadRequest> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let b: RegisterBody = serde_json::from_slice(body)
        .map_err(|e| BadRequest(format!("expected {{\"from\": \"LSN\"}} or no body: {e}")))?;
    b.from.as_deref().map(lsn).transpose()
}

pub fn parse_ack_body(body: &[u8]) -> Result<Lsn, BadRequest> {
    let b: AckBody = serde_json::from_slice(body)
        .map_err(|e| BadRequest(format!("expected {{\"lsn\": \"LSN\"}}: {e}")))?;
    lsn(&b.lsn)
}

impl Control {
    /// Whether a QUIC request body is a control request (it has an `"op"` key) rather than a
    /// stream request. Anything that is not a JSON object is left to the stream parser.
    pub fn is_control(body: &[u8]) -> bool {
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body)
            .is_ok_and(|m| m.contains_key("op"))
    }

    pub fn from_json(body: &[u8]) -> Result<Control, BadRequest> {
        let w: WireControl = serde_json::from_slice(body).map_err(|e| {
            BadRequest(format!(
                "control request must be {{\"op\":\"register\",\"consumer\",\"from\"?}} or {{\"op\":\"ack\",\"consumer\",\"lsn\"}}: {e}"
            ))
        })?;
        let name = |n: String| {
            crate::consumers::validate_name(&n)
                .map(|_| n)
                .map_err(|e| BadRequest(e.to_string()))
        };
        Ok(match w {
            WireControl::Register { consumer, from } => Control::Register {
                consumer: name(consumer)?,
                from: from.as_deref().map(lsn).transpose()?,
            },
            WireControl::Ack { consumer, lsn: l } => Control::Ack {
                consumer: name(consumer)?,
                lsn: lsn(&l)?,
            },
        })
    }

    pub fn to_json(&self) -> String {
        match self {
            Control::Register { consumer, from } => serde_json::json!({
                "op": "register",
                "consumer": consumer,
                "from": from.map(|l| l.to_string()),
            }),
            Control::Ack { consumer, lsn } => serde_json::json!({
                "op": "ack",
                "consumer": consumer,
                "lsn": lsn.to_string(),
            }),
        }
        .to_string()
    }
}

/// Registers `name` after `from` (default: the oldest position the log holds).
pub fn register(
    hub: &Hub,
    name: &str,
    from: Option<Lsn>,
) -> Result<(Registered, ConsumerView), ConsumerError> {
    let durable = hub.log.durable().lsn;
    crate::consumers::validate_name(name)?;
    if let Some(view) = hub.consumers.view(name, durable, now_unix_ms()) {
        // Idempotent: an existing consumer keeps its position whatever `from` says.
        return Ok((Registered::Existed, view));
    }
    let oldest_available = hub.log.oldest_available();
    let from = from.unwrap_or(oldest_available);
    if from < oldest_available {
        return Err(ConsumerError::TooOld {
            from,
            oldest_available,
        });
    }
    if from > durable {
        return Err(ConsumerError::AheadOfDurable { ack: from, durable });
    }
    let now = now_unix_ms();
    let r = tokio::task::block_in_place(|| hub.consumers.register(name, from, now))?;
    if r == Registered::Created {
        tracing::info!(consumer = name, from = %from, "durable consumer registered");
    }
    let view = hub
        .consumers
        .view(name, durable, now)
        .ok_or_else(|| ConsumerError::NotFound(name.to_string()))?;
    Ok((r, view))
}

/// Records an ack (persisted before this returns).
pub fn ack(hub: &Hub, name: &str, lsn: Lsn) -> Result<ConsumerView, ConsumerError> {
    // Clients are sent what the log has written, before its fsync: they may ack up to there.
    // The slot is still confirmed only up to min(fsynced, acks).
    let durable = hub.log.visible().lsn;
    let now = now_unix_ms();
    tokio::task::block_in_place(|| hub.consumers.ack(name, lsn, durable, now))?;
    hub.consumers
        .view(name, durable, now)
        .ok_or_else(|| ConsumerError::NotFound(name.to_string()))
}

pub fn remove(hub: &Hub, name: &str) -> Result<(), ConsumerError> {
    tokio::task::block_in_place(|| hub.consumers.remove(name))?;
    tracing::info!(
        consumer = name,
        "durable consumer removed; it no longer holds the slot or the log"
    );
    Ok(())
}

/// Runs a QUIC control request; the answer is one JSON object.
pub fn handle(hub: &Hub, control: Control) -> serde_json::Value {
    let result = match control {
        Control::Register { consumer, from } => register(hub, &consumer, from).map(|(_, v)| v),
        Control::Ack { consumer, lsn } => ack(hub, &consumer, lsn),
    };
    match result {
        Ok(view) => serde_json::to_value(view).unwrap_or_default(),
        Err(e) => serde_json::json!({ "code": e.code(), "message": e.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies() {
        assert_eq!(parse_register_body(b"").unwrap(), None);
        assert_eq!(parse_register_body(b" \n").unwrap(), None);
        assert_eq!(parse_register_body(b"{}").unwrap(), None);
        assert_eq!(
            parse_register_body(br#"{"from":"1/10"}"#).unwrap(),
            Some(Lsn(0x1_0000_0010))
        );
        assert!(parse_register_body(br#"{"from":"x"}"#).is_err());
        assert!(parse_register_body(br#"{"frm":"1/10"}"#).is_err());
        assert_eq!(
            parse_ack_body(br#"{"lsn":"16/B374D848"}"#).unwrap(),
            Lsn(0x16_B374_D848)
        );
        for bad in [&b""[..], b"{}", br#"{"lsn":5}"#, br#"{"lsn":"0/1","x":1}"#] {
            assert!(parse_ack_body(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn control_requests() {
        for c in [
            Control::Ack {
                consumer: "a".into(),
                lsn: Lsn(7),
            },
            Control::Register {
                consumer: "b-1".into(),
                from: None,
            },
            Control::Register {
                consumer: "b-1".into(),
                from: Some(Lsn(9)),
            },
        ] {
            let j = c.to_json();
            assert!(Control::is_control(j.as_bytes()));
            assert_eq!(Control::from_json(j.as_bytes()).unwrap(), c);
        }
        assert!(!Control::is_control(br#"{"from":"0/1"}"#));
        assert!(!Control::is_control(b"\xff"));
        for bad in [
            &br#"{"op":"ack","consumer":"a"}"#[..],
            br#"{"op":"ack","consumer":"a b","lsn":"0/1"}"#,
            br#"{"op":"nope","consumer":"a"}"#,
            br#"{"op":"ack","consumer":"a","lsn":"0/1","tables":[]}"#,
        ] {
            assert!(
                Control::from_json(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

#[cfg(test)]
mod hub_tests {
    use super::*;
    use crate::consumers::Registry;
    use crate::log::{Log, LogConfig};
    use crate::metrics::Metrics;
    use crate::serve::request::StreamRequest;
    use crate::serve::session::OpenError;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread")]
    async fn register_ack_and_open_as_a_consumer() {
        let dir = tempfile::tempdir().unwrap();
        let (log, mut writer, _) = Log::open(LogConfig::new(dir.path().join("log"))).unwrap();
        writer.set_start_lsn(Lsn(0x100)).unwrap();
        let (_tx, shutdown) = tokio::sync::watch::channel(false);
        let hub = Hub {
            log,
            metrics: Arc::new(Metrics::default()),
            shutdown,
            consumers: Registry::open(dir.path()).unwrap(),
            routes: Default::default(),
            bootstrap: None,
            published: Default::default(),
            broadcast: None,
        };
        let (r, v) = register(&hub, "a", None).unwrap();
        assert_eq!(
            (r, v.acked_lsn),
            (Registered::Created, Lsn(0x100)),
            "default: oldest"
        );
        assert!(matches!(
            register(&hub, "b", Some(Lsn(0x50))),
            Err(ConsumerError::TooOld { .. })
        ));
        assert!(matches!(
            register(&hub, "b", Some(Lsn(0x101))),
            Err(ConsumerError::AheadOfDurable { .. })
        ));
        assert!(matches!(
            register(&hub, "b c", None),
            Err(ConsumerError::InvalidName(_))
        ));
        let (r, _) = register(&hub, "a", Some(Lsn(0x50))).unwrap();
        assert_eq!(r, Registered::Existed, "idempotent, 'from' ignored");
        assert!(matches!(
            ack(&hub, "a", Lsn(0x101)),
            Err(ConsumerError::AheadOfDurable { .. })
        ));
        assert_eq!(ack(&hub, "a", Lsn(0x100)).unwrap().acked_lsn, Lsn(0x100));

        let req = StreamRequest {
            consumer: Some("a".into()),
            ..Default::default()
        };
        let stream = hub.open(&req).map_err(|e| e.to_string()).unwrap();
        assert_eq!(hub.consumers.view("a", Lsn(0x100), 0).unwrap().connected, 1);
        drop(stream);
        assert_eq!(hub.consumers.view("a", Lsn(0x100), 0).unwrap().connected, 0);
        let unknown = StreamRequest {
            consumer: Some("zz".into()),
            ..Default::default()
        };
        match hub.open(&unknown) {
            Err(e @ OpenError::Consumer(_)) => assert_eq!(e.code(), "unknown_consumer"),
            _ => panic!("an unknown consumer must be refused"),
        }
        // QUIC control answers
        let v = handle(
            &hub,
            Control::Ack {
                consumer: "nope".into(),
                lsn: Lsn(1),
            },
        );
        assert_eq!(v["code"], "unknown_consumer");
        remove(&hub, "a").unwrap();
        assert!(hub.consumers.is_empty());
        assert!(matches!(remove(&hub, "a"), Err(ConsumerError::NotFound(_))));
    }
}
