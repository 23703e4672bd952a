//! Authentication and limits of a real relay (the `walcast` binary) in front of a real
//! PostgreSQL: bad tokens are refused with the documented codes, a granted token streams only
//! its tables, a non-loopback relay without auth refuses to start, and garbage requests do not
//! disturb a good client. Contract: docs/auth.md.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use walcast_testkit::{workspace_root, PgCluster};
use walcast_tests::relay::quic_request;

const SECRET: &[u8] = b"auth-test-secret-at-least-thirty-two-bytes";
const AUDIENCE: &str = "walcast-auth-test";

/// The `walcast` binary, built if needed (cargo does nothing when it is up to date).
fn walcast_bin() -> PathBuf {
    let root = workspace_root();
    let status = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "walcast-relay", "--bin", "walcast"])
        .current_dir(&root)
        .status()
        .expect("running cargo build");
    assert!(status.success(), "building the walcast binary failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    target.join("debug/walcast")
}

/// A relay process; killed on drop.
struct Relay {
    child: Child,
    http: SocketAddr,
    /// The QUIC address and the certificate's SHA-256, when QUIC is on.
    quic: Option<(SocketAddr, String)>,
    /// The relay's stderr.
    log: PathBuf,
    _data: tempfile::TempDir,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_relay(pg: &PgCluster, extra: &[&str]) -> Result<Relay> {
    let data = tempfile::tempdir()?;
    // The relay's log goes to a file: a pipe nobody drains would block the relay once full.
    let log_path = data.path().join("relay.log");
    let log_file = std::fs::File::create(&log_path)?;
    let mut child = Command::new(walcast_bin())
        .args(["relay", "--postgres", &pg.url(), "--slot", "auth_slot"])
        .args([
            "--publication",
            "auth_pub",
            "--tables",
            "public.granted,public.hidden",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .args(["--http", "127.0.0.1:0"])
        .args(extra)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .spawn()
        .context("starting the relay")?;
    // The relay prints its HTTP address on stdout once it listens.
    let stdout = child.stdout.take().context("relay stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    let (qtx, qrx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("QUIC on quic://").nth(1) {
                let mut words = rest.split_whitespace();
                let addr = words.next().unwrap_or("").to_string();
                let sha = words.last().unwrap_or("").to_string();
                let _ = qtx.send((addr, sha));
            } else if let Some(rest) = line.split("HTTP on ").nth(1) {
                let url = rest.split_whitespace().next().unwrap_or("");
                let addr = url.split("://").nth(1).unwrap_or("").to_string();
                let _ = tx.send(addr);
            }
        }
    });
    let tls = extra.contains(&"--tls-cert");
    let addr = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(a) => a.parse()?,
        Err(_) => {
            let _ = child.kill();
            let err = std::fs::read_to_string(&log_path).unwrap_or_default();
            bail!("the relay did not start: {err}");
        }
    };
    let quic = if extra.contains(&"--quic") {
        let (a, sha) = qrx.recv_timeout(Duration::from_secs(30))?;
        Some((a.parse()?, sha))
    } else {
        None
    };
    let relay = Relay {
        child,
        http: addr,
        quic,
        log: log_path,
        _data: data,
    };
    // Ready = streaming from PostgreSQL.
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = |addr: SocketAddr| -> Result<bool> {
        if tls {
            Ok(curl_https(addr, "/readyz", None)?.0 == 200)
        } else {
            Ok(get(addr, "/readyz", &[])?.0 == 200)
        }
    };
    while !ready(relay.http)? {
        if Instant::now() > deadline {
            bail!("the relay never became ready");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(relay)
}

fn auth_flags(secret_file: &std::path::Path) -> Vec<String> {
    vec![
        "--auth-hs256-secret-file".into(),
        secret_file.display().to_string(),
        "--auth-audience".into(),
        AUDIENCE.into(),
    ]
}

fn token_with(claims: serde_json::Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

fn token(tables: &[&str]) -> String {
    token_with(
        serde_json::json!({"sub": "auth-test", "aud": AUDIENCE, "exp": now() + 600,
                           "walcast": {"v": 1, "tables": tables}}),
        SECRET,
    )
}

/// One HTTP/1.1 GET with `Connection: close`: (status, body).
fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status line in {text:?}"))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body.to_string()))
}

/// A streaming client: everything it received so far, filled by a reader thread.
struct Streamer {
    bytes: Arc<Mutex<Vec<u8>>>,
    _socket: TcpStream,
}

impl Drop for Streamer {
    fn drop(&mut self) {
        // The reader thread holds a clone of the socket: shut the connection down for both.
        let _ = self._socket.shutdown(std::net::Shutdown::Both);
    }
}

impl Streamer {
    fn open(addr: SocketAddr, path: &str, token: &str) -> Result<Streamer> {
        let mut s = TcpStream::connect(addr)?;
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer {token}\r\n\r\n");
        s.write_all(req.as_bytes())?;
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let (mut r, sink) = (s.try_clone()?, bytes.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 16384];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Ok(Streamer { bytes, _socket: s })
    }

    fn contains(&self, needle: &str) -> bool {
        let b = self.bytes.lock().unwrap();
        b.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn head(&self) -> String {
        let b = self.bytes.lock().unwrap();
        String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned()
    }
}

fn cluster() -> Result<(PgCluster, tempfile::NamedTempFile)> {
    let pg = PgCluster::start(15)?;
    pg.psql(
        "CREATE TABLE granted (id serial PRIMARY KEY, note text);
         CREATE TABLE hidden (id serial PRIMARY KEY, note text);",
    )?;
    let mut secret = tempfile::NamedTempFile::new()?;
    secret.write_all(SECRET)?;
    Ok((pg, secret))
}

fn code_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("<not a JSON error: {body:?}>"))
}

#[test]
fn refuses_bad_tokens_and_streams_only_granted_tables() -> Result<()> {
    let (pg, secret) = cluster()?;
    let flags = auth_flags(secret.path());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let relay = start_relay(&pg, &flags)?;
    let addr = relay.http;

    let bearer = |t: &str| format!("Bearer {t}");
    let expired = token_with(
        serde_json::json!({"aud": AUDIENCE, "exp": now() - 3600, "walcast": {"tables": ["*"]}}),
        SECRET,
    );
    let wrong_sig = token_with(
        serde_json::json!({"aud": AUDIENCE, "exp": now() + 600, "walcast": {"tables": ["*"]}}),
        b"some-other-secret-of-at-least-32-bytes",
    );
    let wrong_aud = token_with(
        serde_json::json!({"aud": "another-service", "exp": now() + 600, "walcast": {"tables": ["*"]}}),
        SECRET,
    );
    let not_yet = token_with(
        serde_json::json!({"aud": AUDIENCE, "exp": now() + 7200, "nbf": now() + 3600,
                           "walcast": {"tables": ["*"]}}),
        SECRET,
    );
    for (what, headers) in [
        ("no token", vec![]),
        (
            "garbage token",
            vec![("Authorization", bearer("not-a-jwt"))],
        ),
        ("expired", vec![("Authorization", bearer(&expired))]),
        (
            "wrong signature",
            vec![("Authorization", bearer(&wrong_sig))],
        ),
        (
            "wrong audience",
            vec![("Authorization", bearer(&wrong_aud))],
        ),
        (
            "nbf in the future",
            vec![("Authorization", bearer(&not_yet))],
        ),
    ] {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = get(addr, "/v1/stream", &h)?;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(code_of(&body), "unauthorized", "{what}");
        assert!(!body.contains("eyJ"), "{what}: the token is echoed: {body}");
    }

    // Granted only public.granted: asking for public.hidden is forbidden.
    let granted = token(&["public.granted"]);
    let (status, body) = get(
        addr,
        "/v1/stream?tables=public.hidden",
        &[("Authorization", &bearer(&granted))],
    )?;
    assert_eq!(
        (status, code_of(&body).as_str()),
        (403, "forbidden"),
        "{body}"
    );
    let (status, body) = get(
        addr,
        &format!("/v1/stream?tables=public.granted,public.hidden&access_token={granted}"),
        &[],
    )?;
    assert_eq!(
        (status, code_of(&body).as_str()),
        (403, "forbidden"),
        "{body}"
    );

    // Status needs a token; health, readiness and metrics stay open.
    assert_eq!(get(addr, "/v1/status", &[])?.0, 401);
    assert_eq!(
        get(addr, "/v1/status", &[("Authorization", &bearer(&granted))])?.0,
        200
    );
    // Durable-consumer calls need a token too.
    assert_eq!(get(addr, "/v1/consumers", &[])?.0, 401);
    assert_eq!(
        get(
            addr,
            "/v1/consumers",
            &[("Authorization", &bearer(&granted))]
        )?
        .0,
        200
    );
    // `walcast status` carries a token with --token.
    let status_cmd = |token: Option<&str>| -> Result<bool> {
        let mut cmd = Command::new(walcast_bin());
        cmd.args(["status", "--json", "--url", &format!("http://{addr}")]);
        if let Some(t) = token {
            cmd.args(["--token", t]);
        }
        Ok(cmd.env_remove("WALCAST_TOKEN").output()?.status.success())
    };
    assert!(
        !status_cmd(None)?,
        "walcast status without a token succeeded"
    );
    assert!(status_cmd(Some(&granted))?, "walcast status --token failed");
    for open in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(get(addr, open, &[])?.0, 200, "{open}");
    }

    // A granted token without a table filter streams its tables, and only those.
    let restricted = Streamer::open(addr, "/v1/stream", &granted)?;
    let everything = Streamer::open(addr, "/v1/stream", &token(&["*"]))?;
    pg.psql(
        "INSERT INTO hidden (note) VALUES ('hidden-marker-7a');
         INSERT INTO granted (note) VALUES ('granted-marker-3c');",
    )?;
    assert!(
        everything.wait_for("hidden-marker-7a", Duration::from_secs(20)),
        "the \"*\" token did not receive public.hidden: {}",
        everything.head()
    );
    assert!(everything.wait_for("granted-marker-3c", Duration::from_secs(20)));
    assert!(
        restricted.wait_for("granted-marker-3c", Duration::from_secs(20)),
        "the granted client did not receive its table: {}",
        restricted.head()
    );
    assert!(restricted.head().starts_with("HTTP/1.1 200"));
    assert!(
        !restricted.contains("hidden-marker-7a") && !restricted.contains("hidden"),
        "a table outside the grant leaked (row or schema)"
    );
    Ok(())
}

#[test]
fn garbage_requests_do_not_harm_a_good_client() -> Result<()> {
    let (pg, secret) = cluster()?;
    let flags = auth_flags(secret.path());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let relay = start_relay(&pg, &flags)?;
    let addr = relay.http;
    let good = Streamer::open(addr, "/v1/stream?tables=public.granted", &token(&["*"]))?;

    let long = "a".repeat(20_000);
    let garbage: Vec<Vec<u8>> = vec![
        b"\x00\xff\xfe garbage\r\n\r\n".to_vec(),
        b"GET /v1/stream?from=zz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        format!("GET /v1/stream?tables={long} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes(),
        format!("GET /v1/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {long}\r\n\r\n")
            .into_bytes(),
        b"GET /v1/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a.b.c\r\n\r\n".to_vec(),
        b"GET /v1/stream HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n".to_vec(),
        b"GET /v1/str".to_vec(),
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x01\x01\x00".to_vec(),
    ];
    for round in 0..20 {
        for g in &garbage {
            if let Ok(mut s) = TcpStream::connect(addr) {
                let _ = s.write_all(g);
                if round % 2 == 0 {
                    // Half of them hang up at once, half wait for whatever the relay answers.
                    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                    let _ = s.read(&mut [0u8; 512]);
                }
            }
        }
        pg.psql(&format!(
            "INSERT INTO granted (note) VALUES ('good-marker-{round}')"
        ))?;
    }
    for round in 0..20 {
        let marker = format!("good-marker-{round}");
        assert!(
            good.wait_for(&marker, Duration::from_secs(20)),
            "the good client missed {marker}"
        );
    }
    // The relay still answers new clients.
    assert_eq!(get(addr, "/healthz", &[])?.0, 200);
    Ok(())
}

#[test]
fn refuses_to_listen_publicly_without_auth() -> Result<()> {
    let data = tempfile::tempdir()?;
    for extra in [
        vec!["--http", "0.0.0.0:0"],
        vec!["--http", "127.0.0.1:0", "--quic", "0.0.0.0:0"],
    ] {
        let out = Command::new(walcast_bin())
            .args(["relay", "--postgres", "postgres://nobody@127.0.0.1:1/none"])
            .arg("--data-dir")
            .arg(data.path())
            .args(&extra)
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra:?}: the relay started");
        assert!(
            stderr.contains("--insecure-no-auth") && stderr.contains("not loopback"),
            "{extra:?}: unclear error: {stderr}"
        );
    }
    Ok(())
}

/// `curl -k` over HTTPS: (status, HTTP version negotiated, body).
fn curl_https(addr: SocketAddr, path: &str, token: Option<&str>) -> Result<(u16, String)> {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sk",
        "--max-time",
        "5",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{http_version}",
    ]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    cmd.arg(format!("https://localhost:{}{path}", addr.port()));
    cmd.args(["--resolve", &format!("localhost:{}:127.0.0.1", addr.port())]);
    let out = cmd.output().context("running curl")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut parts = text.split_whitespace();
    let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, parts.next().unwrap_or("").to_string()))
}

/// A self-signed certificate for localhost / 127.0.0.1, made with the openssl CLI.
fn self_signed(dir: &std::path::Path) -> Result<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .context("running openssl")?;
    if !out.status.success() {
        bail!("openssl: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok((cert, key))
}

fn has(bytes: &[u8], needle: &str) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn https_and_quic_enforce_tokens() -> Result<()> {
    let (pg, secret) = cluster()?;
    let certs = tempfile::tempdir()?;
    let (cert, key) = self_signed(certs.path())?;
    let mut flags = auth_flags(secret.path());
    flags.extend([
        "--tls-cert".into(),
        cert.display().to_string(),
        "--tls-key".into(),
        key.display().to_string(),
        "--quic".into(),
        "127.0.0.1:0".into(),
    ]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let relay = start_relay(&pg, &flags)?;

    // HTTPS, negotiated as HTTP/2 by ALPN; the token is checked there too.
    let (status, version) = curl_https(relay.http, "/v1/status", None)?;
    assert_eq!((status, version.as_str()), (401, "2"));
    let granted = token(&["public.granted"]);
    assert_eq!(curl_https(relay.http, "/v1/status", Some(&granted))?.0, 200);

    let (quic, sha) = relay.quic.clone().context("QUIC address")?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let refused = quic_request(quic, &sha, r#"{"tables":["public.granted"]}"#, "\"code\"", Duration::from_secs(10)).await?;
        assert!(has(&refused, r#""code":"unauthorized""#), "{}", String::from_utf8_lossy(&refused));
        let body = serde_json::json!({"tables": ["public.hidden"], "token": granted}).to_string();
        let forbidden = quic_request(quic, &sha, &body, "\"code\"", Duration::from_secs(10)).await?;
        assert!(has(&forbidden, r#""code":"forbidden""#), "{}", String::from_utf8_lossy(&forbidden));
        assert!(!has(&forbidden, "eyJ"), "the token is echoed");

        // A granted QUIC stream (filter from the grant) receives its table only.
        let mut insert = pg.psql_command();
        insert.args([
            "-c",
            "INSERT INTO hidden (note) VALUES ('quic-hidden-9'); INSERT INTO granted (note) VALUES ('quic-granted-9')",
        ]);
        let writer = tokio::task::spawn_blocking(move || {
            // After the stream below is open.
            std::thread::sleep(Duration::from_millis(500));
            insert.output()
        });
        let body = serde_json::json!({"token": granted}).to_string();
        let got = quic_request(quic, &sha, &body, "quic-granted-9", Duration::from_secs(20)).await?;
        let inserted = writer.await?;
        assert!(inserted?.status.success(), "insert failed");
        assert!(has(&got, "quic-granted-9"), "granted QUIC stream got nothing: {}", String::from_utf8_lossy(&got[..got.len().min(300)]));
        assert!(!has(&got, "quic-hidden-9") && !has(&got, "hidden"), "public.hidden leaked over QUIC");
        anyhow::Ok(())
    })?;
    Ok(())
}

#[test]
fn limits_refuse_extra_streams_and_cut_off_a_client_that_does_not_read() -> Result<()> {
    let (pg, secret) = cluster()?;
    let mut flags = auth_flags(secret.path());
    flags.extend(
        [
            "--max-clients",
            "3",
            "--max-streams-per-token",
            "2",
            "--slow-client-timeout",
            "2s",
        ]
        .map(String::from),
    );
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let relay = start_relay(&pg, &flags)?;
    let addr = relay.http;
    let t1 = token(&["*"]);
    let t2 = token(&["public.granted"]);
    let wait_open = |s: &Streamer| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !s.head().starts_with("HTTP/1.1 200") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(s.head().starts_with("HTTP/1.1 200"), "{}", s.head());
    };
    let a = Streamer::open(addr, "/v1/stream", &t1)?;
    let b = Streamer::open(addr, "/v1/stream", &t1)?;
    wait_open(&a);
    wait_open(&b);
    // A third stream for the same token: 429 too_many_streams.
    let (status, body) = get(
        addr,
        "/v1/stream",
        &[("Authorization", &format!("Bearer {t1}"))],
    )?;
    assert_eq!(
        (status, code_of(&body).as_str()),
        (429, "too_many_streams"),
        "{body}"
    );
    // Another token fills the relay; then nobody gets in: 503 too_many_clients.
    let c = Streamer::open(addr, "/v1/stream", &t2)?;
    wait_open(&c);
    let (status, body) = get(
        addr,
        "/v1/stream",
        &[("Authorization", &format!("Bearer {t2}"))],
    )?;
    assert_eq!(
        (status, code_of(&body).as_str()),
        (503, "too_many_clients"),
        "{body}"
    );
    // Closing a stream frees its slot.
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // A probe that gets in holds its slot until it is dropped, so keep only the status.
        let probe = Streamer::open(addr, "/v1/stream", &t2)?;
        std::thread::sleep(Duration::from_millis(200));
        if probe.head().starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot was never freed: {}",
            probe.head()
        );
    }
    drop((a, b));

    // A client that never reads while the relay has megabytes for it is cut off. The slots of
    // the streams closed above free up once the relay notices (at the latest at a heartbeat).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stuck = loop {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "GET /v1/stream HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer {t1}\r\n\r\n"
        )?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head)?;
        if &head == b"HTTP/1.1 200" {
            break s;
        }
        assert!(Instant::now() < deadline, "no slot for the stuck client");
        std::thread::sleep(Duration::from_millis(500));
    };
    pg.psql("INSERT INTO granted (note) SELECT repeat(md5(i::text), 64) FROM generate_series(1, 20000) i")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&relay.log)?.contains("too slow") {
        assert!(
            Instant::now() < deadline,
            "the stuck client was never cut off"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Its connection is closed: draining it now reaches the end instead of blocking.
    let mut sink = Vec::new();
    let drained = stuck.read_to_end(&mut sink);
    assert!(drained.is_ok() || !sink.is_empty(), "{drained:?}");
    // The relay keeps serving.
    assert_eq!(get(addr, "/healthz", &[])?.0, 200);
    Ok(())
}
