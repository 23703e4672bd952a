//! Where and how to connect: a libpq-style URL and/or the usual `PG*` environment variables,
//! with the password kept out of every `Debug`, `Display`, log line and error.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::error::SourceError;

/// Session settings the walsender must run with: the decoder's text parsing relies on them
/// (ISO dates, UTC, round-trip floats, hex bytea, plain money).
pub const SESSION_OPTIONS: &str = "-c datestyle=ISO -c intervalstyle=postgres -c timezone=UTC \
     -c extra_float_digits=3 -c bytea_output=hex -c lc_monetary=C";

/// libpq's `sslmode`, minus `allow` (which only makes sense for libpq's retry dance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS if the server offers it, without certificate checks; plain otherwise.
    #[default]
    Prefer,
    /// TLS, encrypted but NOT authenticated (no certificate check), like libpq. If `sslrootcert`
    /// is given, behaves like `VerifyCa` (libpq does the same).
    Require,
    /// TLS; the certificate must chain to `sslrootcert` (or the system roots); any host name.
    VerifyCa,
    /// TLS; chain check plus the certificate must name the host we dialled.
    VerifyFull,
}

impl SslMode {
    pub fn parse(s: &str) -> Result<SslMode, SourceError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" | "allow" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(SourceError::Config(format!(
                "sslmode {other:?} is not one of disable, prefer, require, verify-ca, verify-full"
            )))
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// A TCP host name/address, or a unix socket directory (libpq: a host starting with `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Tcp(String),
    Unix(PathBuf),
}

impl Host {
    fn parse(s: &str) -> Host {
        if s.starts_with('/') {
            Host::Unix(PathBuf::from(s))
        } else {
            Host::Tcp(s.trim_start_matches('[').trim_end_matches(']').to_string())
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Tcp(h) if h.contains(':') => write!(f, "[{h}]"),
            Host::Tcp(h) => f.write_str(h),
            Host::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A secret that prints as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(s: impl Into<String>) -> Password {
        Password(s.into())
    }
    /// The cleartext, for the authentication exchange only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Everything needed to open the replication connection and the ordinary SQL connection.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceConfig {
    pub host: Host,
    pub port: u16,
    pub user: String,
    pub password: Option<Password>,
    pub dbname: String,
    pub sslmode: SslMode,
    pub sslrootcert: Option<PathBuf>,
    pub application_name: String,
    pub connect_timeout: Duration,
}

impl fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("dbname", &self.dbname)
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .field("application_name", &self.application_name)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl fmt::Display for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted_url())
    }
}

const DEFAULT_APP: &str = "walcast";

impl SourceConfig {
    /// Reads the libpq environment variables from the process environment.
    pub fn from_env() -> Result<SourceConfig, SourceError> {
        Self::from_url_and_env(None, |k| std::env::var(k).ok())
    }

    /// Parses a `postgres://` / `postgresql://` URL; anything it leaves out falls back to the
    /// process environment (`PGHOST`, …), then to libpq's defaults.
    pub fn from_url(url: &str) -> Result<SourceConfig, SourceError> {
        Self::from_url_and_env(Some(url), |k| std::env::var(k).ok())
    }

    /// The testable core: URL values win over `env` values, which win over defaults.
    pub fn from_url_and_env(
        url: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<SourceConfig, SourceError> {
        let mut host = env("PGHOST");
        let mut port = env("PGPORT");
        let mut user = env("PGUSER");
        let mut password = env("PGPASSWORD");
        let mut dbname = env("PGDATABASE");
        let mut sslmode = env("PGSSLMODE");
        let mut sslrootcert = env("PGSSLROOTCERT");
        let mut appname = env("PGAPPNAME");
        let mut connect_timeout = env("PGCONNECT_TIMEOUT");

        if let Some(raw) = url {
            // Never echo the URL itself in errors: it may hold the password.
            // libpq accepts an empty host (`postgres://u@/db?host=/sock`); the url crate does
            // not, so parse with a placeholder and forget it.
            let (parsed, empty_host) = match url::Url::parse(raw) {
                Err(url::ParseError::EmptyHost) => (
                    url::Url::parse(&raw.replacen("@/", "@placeholder/", 1)),
                    true,
                ),
                other => (other, false),
            };
            let parsed = parsed.map_err(|e| {
                SourceError::Config(format!("connection URL does not parse ({e}); expected postgres://user:pass@host:port/db"))
            })?;
            if parsed.scheme() != "postgres" && parsed.scheme() != "postgresql" {
                return Err(SourceError::Config(format!(
                    "connection URL scheme must be postgres:// or postgresql://, not {}://",
                    parsed.scheme()
                )));
            }
            if let Some(h) = parsed.host_str().filter(|h| !h.is_empty() && !empty_host) {
                host = Some(pct_decode(h)?);
            }
            if let Some(p) = parsed.port() {
                port = Some(p.to_string());
            }
            if !parsed.username().is_empty() {
                user = Some(pct_decode(parsed.username())?);
            }
            if let Some(p) = parsed.password() {
                password = Some(pct_decode(p)?);
            }
            let path = parsed.path().trim_start_matches('/');
            if !path.is_empty() {
                dbname = Some(pct_decode(path)?);
            }
            for (k, v) in parsed.query_pairs() {
                let v = v.into_owned();
                match &*k {
                    "host" => host = Some(v),
                    "port" => port = Some(v),
                    "user" => user = Some(v),
                    "password" => password = Some(v),
                    "dbname" => dbname = Some(v),
                    "sslmode" => sslmode = Some(v),
                    "sslrootcert" => sslrootcert = Some(v),
                    "application_name" => appname = Some(v),
                    "connect_timeout" => connect_timeout = Some(v),
                    other => {
                        return Err(SourceError::Config(format!(
                            "connection URL parameter {other:?} is not supported (known: host, port, user, \
                             password, dbname, sslmode, sslrootcert, application_name, connect_timeout)"
                        )))
                    }
                }
            }
        }

        let host = Host::parse(host.as_deref().unwrap_or("localhost"));
        let port = match port {
            None => 5432,
            Some(p) => p.parse::<u16>().map_err(|_| {
                SourceError::Config(format!("port {p:?} is not a number from 1 to 65535"))
            })?,
        };
        let user = user.unwrap_or_else(|| "postgres".to_string());
        let dbname = dbname.unwrap_or_else(|| user.clone());
        let sslmode = match sslmode {
            None => SslMode::Prefer,
            Some(s) => SslMode::parse(&s)?,
        };
        let connect_timeout = match connect_timeout {
            None => Duration::from_secs(30),
            Some(s) => Duration::from_secs(
                s.parse::<u64>()
                    .map_err(|_| {
                        SourceError::Config(format!(
                            "connect_timeout {s:?} is not a number of seconds"
                        ))
                    })?
                    .max(2),
            ),
        };
        Ok(SourceConfig {
            host,
            port,
            user,
            password: password.map(Password),
            dbname,
            sslmode,
            sslrootcert: sslrootcert.map(PathBuf::from),
            application_name: appname.unwrap_or_else(|| DEFAULT_APP.to_string()),
            connect_timeout,
        })
    }

    /// The URL with the password replaced by `***`: safe for logs.
    pub fn redacted_url(&self) -> String {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let auth = match &self.password {
            Some(_) => format!("{}:***@", enc(&self.user)),
            None => format!("{}@", enc(&self.user)),
        };
        let (host, extra) = match &self.host {
            Host::Tcp(_) => (self.host.to_string(), String::new()),
            Host::Unix(p) => (
                String::new(),
                format!("&host={}", enc(&p.display().to_string())),
            ),
        };
        format!(
            "postgres://{auth}{host}:{}/{}?sslmode={}{extra}",
            self.port,
            enc(&self.dbname),
            self.sslmode.as_str()
        )
    }

    /// The same target as an ordinary (non-replication) tokio-postgres config, with the same
    /// session settings. TLS is chosen by [`super::tls`], not by this config's `ssl_mode`.
    pub fn tokio_postgres_config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        match &self.host {
            Host::Tcp(h) => c.host(h),
            Host::Unix(p) => c.host_path(p),
        };
        c.port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name(&self.application_name)
            .options(SESSION_OPTIONS)
            .connect_timeout(self.connect_timeout);
        if let Some(p) = &self.password {
            c.password(p.expose());
        }
        c.ssl_mode(match self.sslmode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        c
    }
}

fn pct_decode(s: &str) -> Result<String, SourceError> {
    let bytes: Vec<u8> =
        url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned().into_bytes())
            .unwrap_or_default();
    String::from_utf8(bytes)
        .map_err(|_| SourceError::Config("connection URL has a component that is not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn url_parses_every_part() {
        let c = SourceConfig::from_url_and_env(
            Some("postgres://al%40ice:s3cr%2Ft@db.example:6543/app?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x"),
            env(&[]),
        )
        .unwrap();
        assert_eq!(c.host, Host::Tcp("db.example".into()));
        assert_eq!(c.port, 6543);
        assert_eq!(c.user, "al@ice");
        assert_eq!(c.password.as_ref().unwrap().expose(), "s3cr/t");
        assert_eq!(c.dbname, "app");
        assert_eq!(c.sslmode, SslMode::VerifyFull);
        assert_eq!(c.sslrootcert, Some(PathBuf::from("/ca.pem")));
        assert_eq!(c.application_name, "x");
    }

    #[test]
    fn url_wins_over_env_and_env_fills_gaps() {
        let e = env(&[
            ("PGHOST", "envhost"),
            ("PGPORT", "1111"),
            ("PGUSER", "envuser"),
            ("PGPASSWORD", "envpw"),
            ("PGDATABASE", "envdb"),
            ("PGSSLMODE", "require"),
            ("PGAPPNAME", "envapp"),
        ]);
        let c = SourceConfig::from_url_and_env(Some("postgres://u@h/d"), &e).unwrap();
        assert_eq!(
            (
                c.host.to_string(),
                c.port,
                c.user.as_str(),
                c.dbname.as_str()
            ),
            ("h".into(), 1111, "u", "d")
        );
        assert_eq!(c.password.unwrap().expose(), "envpw");
        assert_eq!(c.sslmode, SslMode::Require);
        assert_eq!(c.application_name, "envapp");
        let c = SourceConfig::from_url_and_env(None, &e).unwrap();
        assert_eq!(c.host, Host::Tcp("envhost".into()));
        assert_eq!(c.dbname, "envdb");
    }

    #[test]
    fn unix_socket_host() {
        let c = SourceConfig::from_url_and_env(
            Some("postgres://u@/d?host=/var/run/postgresql"),
            env(&[]),
        )
        .unwrap();
        assert_eq!(c.host, Host::Unix(PathBuf::from("/var/run/postgresql")));
        let c = SourceConfig::from_url_and_env(None, env(&[("PGHOST", "/tmp/sock")])).unwrap();
        assert_eq!(c.host, Host::Unix(PathBuf::from("/tmp/sock")));
    }

    #[test]
    fn password_never_printed() {
        let c =
            SourceConfig::from_url_and_env(Some("postgres://u:hunter2@h:5/d"), env(&[])).unwrap();
        for s in [format!("{c:?}"), format!("{c}"), c.redacted_url()] {
            assert!(!s.contains("hunter2"), "{s}");
            assert!(s.contains("***"), "{s}");
        }
        let err = SourceConfig::from_url_and_env(
            Some("postgres://u:hunter2@h:5/d?sslmode=bogus"),
            env(&[]),
        )
        .unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        let err = SourceConfig::from_url_and_env(Some("postgres://u:hunter2@h:99999/d"), env(&[]))
            .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn bad_inputs_are_clear() {
        assert!(SourceConfig::from_url_and_env(Some("mysql://h/d"), env(&[])).is_err());
        assert!(SourceConfig::from_url_and_env(None, env(&[("PGPORT", "x")])).is_err());
        assert!(SourceConfig::from_url_and_env(Some("postgres://h/d?bogus=1"), env(&[])).is_err());
        let d = SourceConfig::from_url_and_env(None, env(&[])).unwrap();
        assert_eq!(
            (d.port, d.user.as_str(), d.dbname.as_str(), d.sslmode),
            (5432, "postgres", "postgres", SslMode::Prefer)
        );
    }
}
