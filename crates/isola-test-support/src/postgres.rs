//! A throwaway PostgreSQL cluster for tests: `initdb` in a temporary directory, the server on a
//! unix socket inside it (no TCP port, nothing shared with other tests), stopped and deleted
//! when dropped. Uses Debian's `postgresql` package (`scripts/test.sh` installs it).
//!
//! PostgreSQL refuses to run as root: when the tests run as root, the cluster is made and run
//! as `nobody` (uid/gid 65534), the directory owned by it.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// A running cluster; stopped and removed on drop.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Run as this uid/gid (root cannot run postgres).
    as_user: Option<u32>,
    port: u16,
    /// With TLS: the server's self-signed certificate (PEM, for `localhost` only), and a
    /// loopback TCP port that takes TLS connections only.
    tls: Option<PathBuf>,
}

const NOBODY: u32 = 65534;

/// Where `initdb` and `pg_ctl` are: Debian's `/usr/lib/postgresql/<version>/bin` (newest),
/// else `PATH`.
pub fn pg_bin() -> Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    if let Ok(out) = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        && out.status.success()
    {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if let Some(dir) = p.parent() {
            return Ok(dir.to_path_buf());
        }
    }
    bail!(
        "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb)\nhint: run scripts/test.sh, or: apt-get update && apt-get install -y postgresql"
    )
}

impl PgCluster {
    /// initdb and start a cluster; its superuser is `isola`, trusted on the socket.
    pub fn start() -> Result<Self> {
        Self::start_with(false)
    }

    /// [`PgCluster::start`], also listening on 127.0.0.1 for TLS connections only
    /// (`hostssl`; `hostnossl` is rejected), with a self-signed certificate for `localhost`
    /// made by `openssl` ([`PgCluster::tls_cert`]); [`PgCluster::tcp_url`] reaches it.
    pub fn start_tls() -> Result<Self> {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Result<Self> {
        let bin = pg_bin()?;
        let root = unsafe { libc::geteuid() } == 0;
        let dir = tempfile::Builder::new()
            .prefix("isola-pg-")
            .tempdir()
            .context("creating the cluster's directory")?;
        let as_user = root.then_some(NOBODY);
        // Other users (nobody) must reach the socket and data directories inside.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data)?;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))?;
        if let Some(uid) = as_user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(uid))?;
            std::os::unix::fs::chown(&data, Some(uid), Some(uid))?;
        }
        // Without TLS a port only names the socket file; with it, it must be free on loopback.
        let port = match tls {
            false => 20000 + (std::process::id() % 20000) as u16,
            true => std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port(),
        };
        let mut cluster = Self {
            dir,
            bin,
            as_user,
            port,
            tls: None,
        };
        cluster.run(
            "initdb",
            &[
                "-D",
                &data.to_string_lossy(),
                "-U",
                "isola",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        )?;
        let mut opts = format!(
            "-k {} -c listen_addresses='' -p {} -c fsync=on -c max_connections=40",
            cluster.dir.path().display(),
            cluster.port
        );
        if tls {
            let (cert, key) = (data.join("server.crt"), data.join("server.key"));
            let made = Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args([
                    "-subj",
                    "/CN=localhost",
                    "-addext",
                    "subjectAltName=DNS:localhost",
                ])
                // A server certificate, not a CA (rustls refuses a CA as the end entity).
                .args(["-addext", "basicConstraints=critical,CA:FALSE"])
                .args(["-addext", "extendedKeyUsage=serverAuth"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .output()
                .context("running openssl")?;
            if !made.status.success() {
                bail!("openssl failed: {}", String::from_utf8_lossy(&made.stderr));
            }
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
            if let Some(uid) = as_user {
                std::os::unix::fs::chown(&key, Some(uid), Some(uid))?;
                std::os::unix::fs::chown(&cert, Some(uid), Some(uid))?;
            }
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
            )?;
            opts = opts.replace("listen_addresses=''", "listen_addresses='127.0.0.1'");
            opts += " -c ssl=on";
            // The client reads the certificate from outside the data directory.
            let public = cluster.dir.path().join("server.crt");
            std::fs::copy(&cert, &public)?;
            cluster.tls = Some(public);
        }
        let log = cluster.dir.path().join("server.log");
        cluster.run(
            "pg_ctl",
            &[
                "-D",
                &data.to_string_lossy(),
                "-o",
                &opts,
                "-l",
                &log.to_string_lossy(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        )?;
        cluster.port = port;
        Ok(cluster)
    }

    fn run(&mut self, tool: &str, args: &[&str]) -> Result<()> {
        let mut cmd = Command::new(self.bin.join(tool));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        if let Some(uid) = self.as_user {
            cmd.uid(uid).gid(uid).env("HOME", self.dir.path());
        }
        let out = cmd
            .output()
            .with_context(|| format!("running {}", self.bin.join(tool).display()))?;
        if !out.status.success() {
            let log =
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            bail!(
                "{tool} failed ({}): {}{}\n{log}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// The directory of the server's socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's certificate (PEM), when started with TLS.
    pub fn tls_cert(&self) -> Option<&Path> {
        self.tls.as_deref()
    }

    /// A URL for database `db` over TCP to `host` (`localhost` or `127.0.0.1`), with `query`.
    pub fn tcp_url(&self, host: &str, db: &str, query: &str) -> String {
        format!("postgres://isola@{host}:{}/{db}?{query}", self.port)
    }

    /// A URL for database `db` (`postgres` always exists).
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres:///{db}?host={}&port={}&user=isola",
            self.dir.path().display(),
            self.port
        )
    }

    /// Create a database (through `psql` of the same installation).
    pub fn create_db(&mut self, name: &str) -> Result<String> {
        let host = self.dir.path().to_string_lossy().to_string();
        let port = self.port.to_string();
        self.run("createdb", &["-h", &host, "-p", &port, "-U", "isola", name])?;
        Ok(self.url(name))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data").to_string_lossy().to_string();
        let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }
}
