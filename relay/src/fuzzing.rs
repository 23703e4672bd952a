//! The bodies of the relay's fuzz targets (relay/fuzz), here so that
//! `relay/tests/fuzz_regressions.rs` replays every past crash on each test run.
//!
//! Everything a client can send before it is admitted goes through [`client_input`]: the HTTP
//! query string, the QUIC request JSON (stream or control), and the bearer token, both as
//! garbage and as a validly signed token whose claims are the garbage. Properties: nothing
//! panics, and what parses survives a round trip through the relay's own encoding.
//! [`scope_change`] puts arbitrary pgoutput changes through the row-scope decoder and requires
//! every re-encoded message to parse again.

use std::sync::OnceLock;

use crate::auth::token::{KeySources, Verifier};
use crate::serve::control::Control;
use crate::serve::request::StreamRequest;
use crate::serve::scope::memo::{decode, ColumnRef};
use walcast_decoder::pgoutput::{self, Message};

const SECRET: &[u8] = b"walcast-fuzzing-secret-of-at-least-32-bytes";
const AUDIENCE: &str = "walcast-fuzz";

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("walcast-fuzz-secret-{}", std::process::id()));
        std::fs::write(&path, SECRET).expect("writing the fuzzing secret");
        let v = Verifier::load(&KeySources {
            hs256_secret_file: Some(&path),
            audience: Some(AUDIENCE),
            ..Default::default()
        })
        .expect("loading the fuzzing secret")
        .expect("a verifier");
        let _ = std::fs::remove_file(&path);
        v
    })
}

/// Every parser a client reaches before admission, fed `data`.
pub fn client_input(data: &[u8]) {
    let text = String::from_utf8_lossy(data);

    // HTTP: the query string of /v1/stream.
    if let Ok((req, _token)) = StreamRequest::from_query_with_token(Some(&text)) {
        let mut url = url::Url::parse("http://relay/v1/stream").expect("literal URL");
        req.write_query(&mut url);
        let again = StreamRequest::from_query(url.query()).expect("a written query parses");
        assert_eq!(again, req, "query round trip");
    }

    // QUIC: the first stream's JSON, a control request or a stream request.
    if Control::is_control(data) {
        if let Ok(c) = Control::from_json(data) {
            let again = Control::from_json(c.to_json().as_bytes()).expect("control round trip");
            assert_eq!(again.to_json(), c.to_json());
        }
    } else if let Ok((req, token)) = StreamRequest::from_json_with_token(data) {
        let json = req.to_json_with_token(token.as_deref());
        let (again, t2) =
            StreamRequest::from_json_with_token(json.as_bytes()).expect("request round trip");
        assert_eq!((again, t2), (req, token));
    }

    // Tokens: the bytes as a token, and the bytes as the claims of a validly signed token.
    let v = verifier();
    let _ = v.verify(&text);
    if let Ok(mut claims) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Some(obj) = claims.as_object_mut() {
            obj.insert("aud".into(), AUDIENCE.into());
            obj.insert(
                "exp".into(),
                (jsonwebtoken::get_current_timestamp() + 600).into(),
            );
            obj.remove("nbf");
        }
        if let Ok(token) = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET),
        ) {
            if let Ok(grant) = v.verify(&token) {
                for requested in [Vec::new(), grant.scopes.keys().cloned().collect()] {
                    if let Ok(tables) = grant.authorize(&requested) {
                        for (t, _) in grant.scopes_for(&tables) {
                            assert!(tables.contains(&t), "a scope for a table not served");
                        }
                    }
                }
            }
        }
    }
}

/// An arbitrary pgoutput change through the row-scope decoder: the first two bytes pick the
/// scoped column and whether the change sits in a stream block; re-encoded messages must parse
/// as the Delete or Insert of the same relation.
pub fn scope_change(data: &[u8]) {
    let [sel, idx, payload @ ..] = data else {
        return;
    };
    let in_stream = sel & 1 != 0;
    let col = ColumnRef {
        index: u16::from(*idx & 0x0f),
        type_oid: if sel & 2 != 0 { 23 } else { 25 },
        in_identity: sel & 4 != 0,
    };
    let Some(d) = decode(payload, in_stream, col) else {
        return;
    };
    if let Some(del) = &d.as_delete {
        match pgoutput::parse(del, in_stream) {
            Ok(Message::Delete(x)) => assert_eq!(x.relation_id, d.relid),
            other => panic!("re-encoded delete does not parse: {other:?}"),
        }
    }
    if let Some(ins) = &d.as_insert {
        match pgoutput::parse(ins, in_stream) {
            Ok(Message::Insert(x)) => assert_eq!(x.relation_id, d.relid),
            other => panic!("re-encoded insert does not parse: {other:?}"),
        }
    }
}
