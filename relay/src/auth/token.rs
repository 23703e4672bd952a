//! JWT verification: the keys an operator configures, and the check of one token against them
//! (signature, `exp`, `nbf`, `aud`). No IO beyond reading key files at startup; the token itself
//! is never logged or put in an error message.

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, Validation};
use std::path::Path;
use std::str::FromStr;

use super::claims::{Grant, TokenClaims};

/// Clock skew tolerated for `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// Longest token accepted: bounds the work an unauthenticated client can cause.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// A key configuration problem, found at startup.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {detail}")]
    Invalid { path: String, detail: String },
    #[error("authentication needs --auth-audience (the `aud` tokens must carry)")]
    NoAudience,
    #[error("--auth-audience is set but no key is: give --auth-hs256-secret-file, --auth-public-key or --auth-jwks")]
    NoKeys,
}

/// Why a token was refused. The messages are safe to send to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no token: send Authorization: Bearer <jwt>")]
    Missing,
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token is longer than {MAX_TOKEN_BYTES} bytes")]
    TooLong,
    #[error("no configured key matches the token (kid {kid:?}, alg {alg:?})")]
    UnknownKey { kid: Option<String>, alg: String },
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token is not for this relay (aud)")]
    WrongAudience,
    #[error("the token lacks the {0} claim")]
    MissingClaim(String),
    #[error("{0}")]
    BadClaim(String),
}

/// One verification key and the algorithm it verifies.
struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// The configured keys and audience. Cheap to share behind an `Arc`.
pub struct Verifier {
    keys: Vec<Key>,
    audience: String,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.keys.len())
            .field("audience", &self.audience)
            .finish()
    }
}

/// The key sources an operator can configure.
#[derive(Debug, Default, Clone)]
pub struct KeySources<'a> {
    pub hs256_secret_file: Option<&'a Path>,
    pub public_key_file: Option<&'a Path>,
    pub jwks_file: Option<&'a Path>,
    pub audience: Option<&'a str>,
}

impl<'a> KeySources<'a> {
    pub fn any(&self) -> bool {
        self.hs256_secret_file.is_some()
            || self.public_key_file.is_some()
            || self.jwks_file.is_some()
            || self.audience.is_some()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn invalid(path: &Path, detail: impl Into<String>) -> KeyError {
    KeyError::Invalid {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

impl Verifier {
    /// Builds a verifier from the configured sources; `Ok(None)` when none is configured.
    pub fn load(src: &KeySources<'_>) -> Result<Option<Verifier>, KeyError> {
        if !src.any() {
            return Ok(None);
        }
        let audience = src.audience.ok_or(KeyError::NoAudience)?;
        if audience.is_empty() {
            return Err(KeyError::NoAudience);
        }
        let mut keys = Vec::new();
        if let Some(path) = src.hs256_secret_file {
            let bytes = read(path)?;
            // A trailing newline from `echo > file` is not part of the secret.
            let secret = bytes.trim_ascii_end();
            if secret.len() < 32 {
                return Err(invalid(
                    path,
                    "an HS256 secret must be at least 32 bytes (256 bits)",
                ));
            }
            keys.push(Key {
                kid: None,
                alg: Algorithm::HS256,
                key: DecodingKey::from_secret(secret),
            });
        }
        if let Some(path) = src.public_key_file {
            let pem = read(path)?;
            keys.push(Self::public_key_from_pem(path, &pem)?);
        }
        if let Some(path) = src.jwks_file {
            let bytes = read(path)?;
            let set: JwkSet = serde_json::from_slice(&bytes)
                .map_err(|e| invalid(path, format!("not a JWKS document: {e}")))?;
            let before = keys.len();
            for jwk in &set.keys {
                if let Some(key) = key_from_jwk(jwk).map_err(|d| invalid(path, d))? {
                    keys.push(key);
                }
            }
            if keys.len() == before {
                return Err(invalid(path, "no signature verification key in the JWKS"));
            }
        }
        if keys.is_empty() {
            return Err(KeyError::NoKeys);
        }
        Ok(Some(Verifier {
            keys,
            audience: audience.to_string(),
        }))
    }

    /// A PEM public key; its type gives the algorithm: RSA → RS256, EC → ES256, Ed25519 → EdDSA.
    fn public_key_from_pem(path: &Path, pem: &[u8]) -> Result<Key, KeyError> {
        let (alg, key) = if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
            (Algorithm::RS256, k)
        } else if let Ok(k) = DecodingKey::from_ec_pem(pem) {
            (Algorithm::ES256, k)
        } else if let Ok(k) = DecodingKey::from_ed_pem(pem) {
            (Algorithm::EdDSA, k)
        } else {
            return Err(invalid(
                path,
                "not a PEM RSA, EC (P-256) or Ed25519 public key",
            ));
        };
        Ok(Key {
            kid: None,
            alg,
            key,
        })
    }

    /// Verifies `token` and returns what it grants.
    pub fn verify(&self, token: &str) -> Result<Grant, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLong);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let key = self.select(header.kid.as_deref(), header.alg)?;
        let mut validation = Validation::new(key.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "aud"]);
        let data = jsonwebtoken::decode::<TokenClaims>(token, &key.key, &validation).map_err(
            |e| match e.kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidAudience => TokenError::WrongAudience,
                ErrorKind::MissingRequiredClaim(c) => TokenError::MissingClaim(c.clone()),
                ErrorKind::Json(e) => TokenError::BadClaim(format!("claims: {e}")),
                _ => TokenError::Malformed,
            },
        )?;
        Grant::from_claims(data.claims).map_err(|e| TokenError::BadClaim(e.to_string()))
    }

    /// The key for a token: by `kid` when the token names one, otherwise the only key of the
    /// token's algorithm. The algorithm always comes from the key, never from the token alone,
    /// so an RSA public key can never be used as an HMAC secret.
    fn select(&self, kid: Option<&str>, alg: Algorithm) -> Result<&Key, TokenError> {
        let unknown = || TokenError::UnknownKey {
            kid: kid.map(|k| k.chars().take(64).collect()),
            alg: format!("{alg:?}"),
        };
        let by_kid = kid.and_then(|kid| {
            self.keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid) && k.alg == alg)
        });
        if let Some(k) = by_kid {
            return Ok(k);
        }
        let mut candidates = self
            .keys
            .iter()
            .filter(|k| k.alg == alg && (kid.is_none() || k.kid.is_none()));
        match (candidates.next(), candidates.next()) {
            (Some(k), None) => Ok(k),
            _ => Err(unknown()),
        }
    }
}

/// A JWKS entry as a key; `Ok(None)` for keys that are not for verifying signatures.
fn key_from_jwk(jwk: &Jwk) -> Result<Option<Key>, String> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Ok(None);
    }
    let kid = jwk.common.key_id.clone();
    let alg = match (&jwk.common.key_algorithm, &jwk.algorithm) {
        (Some(KeyAlgorithm::RSA1_5 | KeyAlgorithm::RSA_OAEP | KeyAlgorithm::RSA_OAEP_256), _) => {
            return Ok(None)
        }
        (Some(a), _) => Algorithm::from_str(&a.to_string())
            .map_err(|_| format!("key {kid:?}: unsupported alg {a}"))?,
        (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
        (None, AlgorithmParameters::EllipticCurve(p)) => match p.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return Err(format!("key {kid:?}: unsupported curve")),
        },
        (None, AlgorithmParameters::OctetKeyPair(_)) => Algorithm::EdDSA,
        (None, AlgorithmParameters::OctetKey(_)) => {
            return Err(format!(
                "key {kid:?}: a symmetric key needs \"alg\" (e.g. HS256)"
            ))
        }
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {kid:?}: {e}"))?;
    Ok(Some(Key { kid, alg, key }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::claims::TableGrant;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use std::io::Write;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test";

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn claims(aud: &str, exp_in: i64) -> serde_json::Value {
        serde_json::json!({
            "sub": "tester", "aud": aud, "exp": (now() as i64 + exp_in),
            "walcast": {"tables": ["public.orders"]}
        })
    }

    fn file(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    fn hs_verifier() -> (Verifier, tempfile::NamedTempFile) {
        let f = file(SECRET);
        let v = Verifier::load(&KeySources {
            hs256_secret_file: Some(f.path()),
            audience: Some("walcast-test"),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
        (v, f)
    }

    fn hs_token(c: &serde_json::Value, secret: &[u8]) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            c,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    #[test]
    fn accepts_a_good_hs256_token() {
        let (v, _f) = hs_verifier();
        let g = v
            .verify(&hs_token(&claims("walcast-test", 600), SECRET))
            .unwrap();
        assert_eq!(g.subject.as_deref(), Some("tester"));
        assert_eq!(
            g.tables,
            TableGrant::Only([("public".into(), "orders".into())].into())
        );
    }

    #[test]
    fn refuses_bad_tokens_with_the_reason() {
        let (v, _f) = hs_verifier();
        assert_eq!(v.verify("").unwrap_err(), TokenError::Malformed);
        assert_eq!(v.verify("a.b.c").unwrap_err(), TokenError::Malformed);
        assert_eq!(
            v.verify(&"x".repeat(MAX_TOKEN_BYTES + 1)).unwrap_err(),
            TokenError::TooLong
        );
        // Expired beyond the leeway.
        let expired = hs_token(&claims("walcast-test", -(LEEWAY_SECS as i64) - 60), SECRET);
        assert_eq!(v.verify(&expired).unwrap_err(), TokenError::Expired);
        // Expired within the leeway still passes (clock skew).
        let skewed = hs_token(&claims("walcast-test", -5), SECRET);
        assert!(v.verify(&skewed).is_ok());
        let wrong_sig = hs_token(
            &claims("walcast-test", 600),
            b"another secret of enough length!!",
        );
        assert_eq!(v.verify(&wrong_sig).unwrap_err(), TokenError::BadSignature);
        let wrong_aud = hs_token(&claims("someone-else", 600), SECRET);
        assert_eq!(v.verify(&wrong_aud).unwrap_err(), TokenError::WrongAudience);
        let mut c = claims("walcast-test", 600);
        c["nbf"] = serde_json::json!(now() + 3600);
        assert_eq!(
            v.verify(&hs_token(&c, SECRET)).unwrap_err(),
            TokenError::NotYetValid
        );
        let mut no_aud = claims("x", 600);
        no_aud.as_object_mut().unwrap().remove("aud");
        assert_eq!(
            v.verify(&hs_token(&no_aud, SECRET)).unwrap_err(),
            TokenError::MissingClaim("aud".into())
        );
        let mut no_exp = claims("walcast-test", 600);
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            v.verify(&hs_token(&no_exp, SECRET)).unwrap_err(),
            TokenError::MissingClaim("exp".into())
        );
        // Signed right, but with a claim this relay cannot honour.
        let mut bad_claim = claims("walcast-test", 600);
        bad_claim["walcast"]["v"] = serde_json::json!(9);
        assert!(matches!(
            v.verify(&hs_token(&bad_claim, SECRET)).unwrap_err(),
            TokenError::BadClaim(_)
        ));
        // An algorithm the relay has no key for (the "alg: none" family of attacks).
        let hs512 = encode(
            &Header::new(Algorithm::HS512),
            &claims("walcast-test", 600),
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(matches!(
            v.verify(&hs512).unwrap_err(),
            TokenError::UnknownKey { .. }
        ));
        let none = format!(
            "{}.{}.",
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0", "eyJhdWQiOiJ3YWxjYXN0LXRlc3QifQ"
        );
        assert!(v.verify(&none).is_err());
    }

    #[test]
    fn refuses_weak_or_missing_configuration() {
        let short = file(b"short\n");
        let err = Verifier::load(&KeySources {
            hs256_secret_file: Some(short.path()),
            audience: Some("a"),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("32 bytes"), "{err}");
        let good = file(SECRET);
        assert!(matches!(
            Verifier::load(&KeySources {
                hs256_secret_file: Some(good.path()),
                ..Default::default()
            }),
            Err(KeyError::NoAudience)
        ));
        assert!(matches!(
            Verifier::load(&KeySources {
                audience: Some("a"),
                ..Default::default()
            }),
            Err(KeyError::NoKeys)
        ));
        assert!(Verifier::load(&KeySources::default()).unwrap().is_none());
        let garbage = file(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
        assert!(Verifier::load(&KeySources {
            public_key_file: Some(garbage.path()),
            audience: Some("a"),
            ..Default::default()
        })
        .is_err());
    }

    /// Key pairs made with rcgen (already a dependency): PKCS#8 private key, SPKI public key.
    fn keypair(alg: &'static rcgen::SignatureAlgorithm) -> (EncodingKey, Vec<u8>) {
        let kp = rcgen::KeyPair::generate_for(alg).unwrap();
        let private_pem = kp.serialize_pem();
        let public_pem = kp.public_key_pem();
        let enc = if std::ptr::eq(alg, &rcgen::PKCS_ECDSA_P256_SHA256) {
            EncodingKey::from_ec_pem(private_pem.as_bytes()).unwrap()
        } else if std::ptr::eq(alg, &rcgen::PKCS_ED25519) {
            EncodingKey::from_ed_pem(private_pem.as_bytes()).unwrap()
        } else {
            EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap()
        };
        (enc, public_pem.into_bytes())
    }

    #[test]
    fn each_public_key_algorithm_verifies() {
        for (rc, alg) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, Algorithm::ES256),
            (&rcgen::PKCS_ED25519, Algorithm::EdDSA),
        ] {
            let (enc, public_pem) = keypair(rc);
            let f = file(&public_pem);
            let v = Verifier::load(&KeySources {
                public_key_file: Some(f.path()),
                audience: Some("walcast-test"),
                ..Default::default()
            })
            .unwrap()
            .unwrap();
            let token = encode(&Header::new(alg), &claims("walcast-test", 600), &enc).unwrap();
            assert!(v.verify(&token).is_ok(), "{alg:?}");
            // Same claims under another key of the same type: refused.
            let (other, _) = keypair(rc);
            let forged = encode(&Header::new(alg), &claims("walcast-test", 600), &other).unwrap();
            assert_eq!(
                v.verify(&forged).unwrap_err(),
                TokenError::BadSignature,
                "{alg:?}"
            );
            // An HMAC token "signed" with the public key bytes (algorithm confusion): refused.
            let confused = encode(
                &Header::new(Algorithm::HS256),
                &claims("walcast-test", 600),
                &EncodingKey::from_secret(&public_pem),
            )
            .unwrap();
            assert!(v.verify(&confused).is_err(), "{alg:?}");
        }
    }

    #[test]
    fn rs256_public_key_verifies() {
        // rcgen with ring cannot generate RSA keys; this is a fixed 2048-bit test key pair.
        let enc = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
        let f = file(RSA_PUBLIC);
        let v = Verifier::load(&KeySources {
            public_key_file: Some(f.path()),
            audience: Some("walcast-test"),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
        let token = encode(
            &Header::new(Algorithm::RS256),
            &claims("walcast-test", 600),
            &enc,
        )
        .unwrap();
        assert!(v.verify(&token).is_ok());
        let expired = encode(
            &Header::new(Algorithm::RS256),
            &claims("walcast-test", -600),
            &enc,
        )
        .unwrap();
        assert_eq!(v.verify(&expired).unwrap_err(), TokenError::Expired);
    }

    #[test]
    fn jwks_selects_the_key_by_kid() {
        let kp1 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let kp2 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let jwk = |kp: &rcgen::KeyPair, kid: &str| {
            // Uncompressed SEC1 point: 0x04 | x | y.
            let raw = kp.public_key_raw();
            serde_json::json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
                "x": b64(&raw[1..33]), "y": b64(&raw[33..65])})
        };
        let set = serde_json::json!({"keys": [
            jwk(&kp1, "one"), jwk(&kp2, "two"),
            {"kty": "RSA", "use": "enc", "kid": "enc-key", "n": "AQAB", "e": "AQAB"}
        ]});
        let f = file(set.to_string().as_bytes());
        let v = Verifier::load(&KeySources {
            jwks_file: Some(f.path()),
            audience: Some("walcast-test"),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
        let sign = |kp: &rcgen::KeyPair, kid: Option<&str>| {
            let mut h = Header::new(Algorithm::ES256);
            h.kid = kid.map(str::to_owned);
            let enc = EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()).unwrap();
            encode(&h, &claims("walcast-test", 600), &enc).unwrap()
        };
        assert!(v.verify(&sign(&kp1, Some("one"))).is_ok());
        assert!(v.verify(&sign(&kp2, Some("two"))).is_ok());
        // Right key, wrong kid: the named key's signature check fails.
        assert_eq!(
            v.verify(&sign(&kp1, Some("two"))).unwrap_err(),
            TokenError::BadSignature
        );
        assert!(matches!(
            v.verify(&sign(&kp1, Some("three"))).unwrap_err(),
            TokenError::UnknownKey { .. }
        ));
        // No kid with two candidate keys: ambiguous, refused.
        assert!(matches!(
            v.verify(&sign(&kp1, None)).unwrap_err(),
            TokenError::UnknownKey { .. }
        ));
    }

    /// base64url without padding (RFC 7515), enough for test JWKs.
    fn b64(bytes: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().fold(0u32, |n, b| (n << 8) | *b as u32) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            }
        }
        out
    }

    const RSA_PRIVATE: &[u8] = include_bytes!("testdata/rsa_private.pem");
    const RSA_PUBLIC: &[u8] = include_bytes!("testdata/rsa_public.pem");
}
