//! A private PostgreSQL server for tests, started from the installed binaries
//! (`initdb`, `pg_ctl`, `psql`, `pg_basebackup` on `PATH`, else from
//! `/usr/lib/postgresql/<major>/bin`) in its own temporary directory on a free
//! 127.0.0.1 port, with its unix socket inside that directory. A test can
//! stop it, pause its postmaster with SIGSTOP, hold connections, or start a
//! streaming standby of it, without touching any other server on the machine.
//! Dropping the handle resumes, stops and removes the server.
//!
//! Tests often run as root, and `initdb` refuses root: the server then runs
//! as the `postgres` user (found in `/etc/passwd`) with its directory chowned
//! to it. `psql` always connects over the unix socket as the `postgres`
//! superuser, which `pg_hba.conf` trusts; TCP clients on 127.0.0.1 get the
//! method the test asked for.

use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The superuser every private server is created with.
pub const SUPERUSER: &str = "postgres";

/// How a [`PgServer`] is started.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `max_connections`.
    pub max_connections: u32,
    /// `superuser_reserved_connections`.
    pub superuser_reserved_connections: u32,
    /// When set, TCP clients must authenticate with SCRAM and the `postgres`
    /// superuser gets this password; otherwise TCP clients are trusted.
    pub password: Option<String>,
    /// Serve TLS with a CA and a server certificate for `localhost` and
    /// 127.0.0.1 made by the `openssl` CLI (see [`PgServer::ca_file`]).
    pub tls: bool,
    /// Extra `postgresql.conf` lines.
    pub extra_conf: Vec<String>,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: 20,
            superuser_reserved_connections: 3,
            password: None,
            tls: false,
            extra_conf: Vec::new(),
        }
    }
}

/// A running private PostgreSQL server.
#[derive(Debug)]
pub struct PgServer {
    dir: PathBuf,
    port: u16,
    bin: PgBin,
    owner: Option<Owner>,
    running: bool,
    paused: bool,
}

/// The server runs as this user when the tests run as root.
#[derive(Debug, Clone, Copy)]
struct Owner {
    uid: u32,
    gid: u32,
}

/// Where the server binaries are.
#[derive(Debug, Clone)]
struct PgBin {
    dir: Option<PathBuf>,
}

impl PgBin {
    fn find() -> PgBin {
        if which("initdb").is_some() && which("pg_ctl").is_some() {
            return PgBin { dir: None };
        }
        let root = Path::new("/usr/lib/postgresql");
        let mut majors: Vec<PathBuf> = std::fs::read_dir(root)
            .map(|entries| entries.flatten().map(|e| e.path().join("bin")).collect())
            .unwrap_or_default();
        majors.sort();
        match majors
            .into_iter()
            .rev()
            .find(|bin| bin.join("initdb").exists())
        {
            Some(dir) => PgBin { dir: Some(dir) },
            None => panic!(
                "no PostgreSQL binaries: initdb is not on PATH nor in {}",
                root.display()
            ),
        }
    }

    fn command(&self, name: &str) -> Command {
        match &self.dir {
            Some(dir) if dir.join(name).exists() => Command::new(dir.join(name)),
            _ => Command::new(name),
        }
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Looks up a user's uid and gid in `/etc/passwd`.
fn lookup_user(name: &str) -> Option<Owner> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() > 3 && fields[0] == name {
            Some(Owner {
                uid: fields[2].parse().ok()?,
                gid: fields[3].parse().ok()?,
            })
        } else {
            None
        }
    })
}

/// A fresh directory under the system temp dir, kept short because the unix
/// socket path inside it must fit in 107 bytes.
fn fresh_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("warden-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// Gives `path` to `owner` (when running as root), recursively.
fn chown_tree(path: &Path, owner: Option<Owner>) {
    let Some(owner) = owner else { return };
    std::os::unix::fs::chown(path, Some(owner.uid), Some(owner.gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
            chown_tree(&entry.expect("dir entry").path(), Some(owner));
        }
    }
}

/// The user to run the server as: `postgres` when we are root, else ourselves.
fn owner_for(dir: &Path) -> Option<Owner> {
    let uid = std::fs::metadata(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .uid();
    if uid != 0 {
        return None;
    }
    match lookup_user("postgres") {
        Some(owner) => Some(owner),
        None => panic!("running as root, and initdb refuses root, but there is no `postgres` user"),
    }
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

fn run(mut command: Command, what: &str) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    if !output.status.success() {
        panic!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output
}

impl PgServer {
    /// Starts a server with default options (trust auth, 20 connections).
    pub fn start() -> PgServer {
        PgServer::start_with(&PgOptions::default())
    }

    /// Initialises and starts a server with `options`.
    pub fn start_with(options: &PgOptions) -> PgServer {
        let bin = PgBin::find();
        let dir = fresh_dir("pg");
        let owner = owner_for(&dir);
        std::fs::create_dir_all(dir.join("sock")).expect("create socket dir");
        chown_tree(&dir, owner);
        let mut server = PgServer {
            dir,
            port: 0,
            bin,
            owner,
            running: false,
            paused: false,
        };

        let mut initdb = server.as_owner(server.bin.command("initdb"));
        initdb.arg("-D").arg(server.data_dir()).args([
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        run(initdb, "initdb");

        let method = if options.password.is_some() {
            "scram-sha-256"
        } else {
            "trust"
        };
        server.write_file(
            "data/pg_hba.conf",
            &format!(
                "local all all trust\nlocal replication all trust\n\
                 host all all 127.0.0.1/32 {method}\nhost replication all 127.0.0.1/32 {method}\n"
            ),
        );
        let mut conf = vec![
            "listen_addresses = '127.0.0.1'".to_owned(),
            format!(
                "unix_socket_directories = '{}'",
                server.socket_dir().display()
            ),
            format!("max_connections = {}", options.max_connections),
            format!(
                "superuser_reserved_connections = {}",
                options.superuser_reserved_connections
            ),
            "shared_buffers = 16MB".to_owned(),
            "fsync = off".to_owned(),
            "synchronous_commit = off".to_owned(),
            "full_page_writes = off".to_owned(),
            "max_wal_senders = 4".to_owned(),
        ];
        if options.tls {
            server.make_certificates();
            conf.extend([
                "ssl = on".to_owned(),
                "ssl_cert_file = 'server.crt'".to_owned(),
                "ssl_key_file = 'server.key'".to_owned(),
            ]);
        }
        conf.extend(options.extra_conf.iter().cloned());
        server.append_conf(&conf);
        server.start_on_free_port();
        if let Some(password) = &options.password {
            server.psql(&format!(
                "ALTER ROLE {SUPERUSER} PASSWORD {}",
                quote_literal(password)
            ));
        }
        server
    }

    /// Starts a streaming standby of `primary` made with `pg_basebackup -R`.
    pub fn start_standby(primary: &PgServer) -> PgServer {
        let dir = fresh_dir("pg-standby");
        std::fs::create_dir_all(dir.join("sock")).expect("create socket dir");
        chown_tree(&dir, primary.owner);
        let mut server = PgServer {
            dir,
            port: 0,
            bin: primary.bin.clone(),
            owner: primary.owner,
            running: false,
            paused: false,
        };
        let mut backup = server.as_owner(server.bin.command("pg_basebackup"));
        backup
            .arg("-h")
            .arg(primary.socket_dir())
            .args(["-p", &primary.port.to_string(), "-U", SUPERUSER, "-D"])
            .arg(server.data_dir())
            .args(["-R", "-X", "stream", "--no-sync"]);
        run(backup, "pg_basebackup");
        // The copied postgresql.conf names the primary's socket dir; later
        // lines win, and the port is appended at start.
        server.append_conf(&[format!(
            "unix_socket_directories = '{}'",
            server.socket_dir().display()
        )]);
        server.start_on_free_port();
        server
    }

    fn as_owner(&self, mut command: Command) -> Command {
        if let Some(owner) = self.owner {
            command.uid(owner.uid).gid(owner.gid);
        }
        // initdb and postgres must be able to enter their working directory.
        command.current_dir(&self.dir);
        // Keep a stray PGPASSWORD or PGHOST of the caller out of our tools.
        command
            .env_remove("PGHOST")
            .env_remove("PGPASSWORD")
            .env_remove("PGPORT");
        command.stdin(Stdio::null());
        command
    }

    fn write_file(&self, relative: &str, text: &str) {
        let path = self.dir.join(relative);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        chown_tree(&path, self.owner);
    }

    fn append_conf(&self, lines: &[String]) {
        let path = self.data_dir().join("postgresql.conf");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        for line in lines {
            writeln!(file, "{line}").unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        }
    }

    /// A throwaway CA and a server certificate for localhost/127.0.0.1.
    fn make_certificates(&self) {
        let data = self.data_dir();
        let openssl = |args: &[&str], what: &str| {
            let mut command = Command::new("openssl");
            command.current_dir(&data).args(args);
            run(command, what);
        };
        let subject_ca = "/CN=warden test CA";
        openssl(
            &[
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", subject_ca,
                "-keyout", "ca.key", "-out", "ca.crt",
            ],
            "openssl CA",
        );
        openssl(
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
            "openssl server key",
        );
        std::fs::write(
            data.join("san.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .expect("write san.ext");
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "san.ext",
                "-out",
                "server.crt",
            ],
            "openssl server certificate",
        );
        let key = data.join("server.key");
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod server.key");
        chown_tree(&data, self.owner);
    }

    /// Picks a free port and starts; retries when another process took the
    /// port between the probe and the bind.
    fn start_on_free_port(&mut self) {
        let mut last_log = String::new();
        for _ in 0..5 {
            self.port = free_port();
            self.append_conf(&[format!("port = {}", self.port)]);
            if self.pg_ctl_start() {
                self.running = true;
                return;
            }
            last_log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            if !last_log.contains("could not bind") && !last_log.contains("in use") {
                break;
            }
        }
        panic!(
            "postgres did not start in {}:\n{last_log}",
            self.dir.display()
        );
    }

    fn pg_ctl_start(&self) -> bool {
        let mut start = self.as_owner(self.bin.command("pg_ctl"));
        start
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "60", "start"])
            // pg_ctl's forked server would otherwise hold the test's stdout.
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        start.status().map(|s| s.success()).unwrap_or(false)
    }

    /// Starts the server again after [`PgServer::stop`], on the same port.
    pub fn restart(&mut self) {
        if self.running {
            self.stop();
        }
        assert!(
            self.pg_ctl_start(),
            "postgres did not restart in {}",
            self.dir.display()
        );
        self.running = true;
    }

    /// Stops the server (fast shutdown) and waits for it to exit.
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.resume();
        let mut stop = self.as_owner(self.bin.command("pg_ctl"));
        stop.arg("-D")
            .arg(self.data_dir())
            .args(["-w", "-t", "60", "-m", "fast", "stop"]);
        let _ = stop.output();
        self.running = false;
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.join("sock")
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The CA certificate that signed the server certificate (TLS servers only).
    pub fn ca_file(&self) -> PathBuf {
        self.data_dir().join("ca.crt")
    }

    /// A `postgres://` URL for `user` (and `password`) over TCP.
    pub fn url(&self, user: &str, password: Option<&str>) -> String {
        let auth = match password {
            Some(p) => format!("{user}:{p}"),
            None => user.to_owned(),
        };
        format!("postgres://{auth}@127.0.0.1:{}/postgres", self.port)
    }

    /// The postmaster's pid, from `postmaster.pid`.
    pub fn postmaster_pid(&self) -> u32 {
        let path = self.data_dir().join("postmaster.pid");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        text.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("pid in postmaster.pid")
    }

    fn signal(&self, signal: &str) {
        let mut kill = Command::new("kill");
        kill.args([signal, &self.postmaster_pid().to_string()]);
        run(kill, "kill");
    }

    /// Stops the postmaster with SIGSTOP: established backends keep working,
    /// new connections queue in the listen backlog unanswered.
    pub fn pause(&mut self) {
        self.signal("-STOP");
        self.paused = true;
    }

    /// Resumes a paused postmaster with SIGCONT.
    pub fn resume(&mut self) {
        if self.paused {
            self.signal("-CONT");
            self.paused = false;
        }
    }

    fn psql_command(&self, sql: &str) -> Command {
        let mut psql = self.as_owner(self.bin.command("psql"));
        psql.arg("-h")
            .arg(self.socket_dir())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                "postgres",
            ])
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql]);
        psql
    }

    /// Runs `sql` as the superuser; `Err` holds psql's stderr.
    pub fn try_psql(&self, sql: &str) -> Result<String, String> {
        let output = self
            .psql_command(sql)
            .output()
            .map_err(|e| format!("cannot start psql: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    }

    /// Runs `sql` as the superuser and returns its unaligned output, trimmed;
    /// panics when it fails.
    pub fn psql(&self, sql: &str) -> String {
        self.try_psql(sql)
            .unwrap_or_else(|e| panic!("psql `{sql}` failed: {e}"))
    }

    /// Creates a login role with `password`; `superuser` picks its rights.
    pub fn create_role(&self, name: &str, password: &str, superuser: bool) {
        let rights = if superuser {
            "SUPERUSER"
        } else {
            "NOSUPERUSER"
        };
        self.psql(&format!(
            "CREATE ROLE {} LOGIN {rights} PASSWORD {}",
            quote_ident(name),
            quote_literal(password)
        ));
    }

    /// How many client backends have `application_name = name`.
    pub fn count_backends(&self, application_name: &str) -> usize {
        self.psql(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = {}",
            quote_literal(application_name)
        ))
        .parse()
        .expect("count is a number")
    }

    /// Polls `condition` every 100 ms until it holds or `limit` passes;
    /// returns whether it held.
    pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + limit;
        loop {
            if condition() {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Opens a connection over TCP as `user` (password via `PGPASSWORD`) with
    /// `application_name` and keeps it idle until the handle is dropped.
    /// Waits until the server lists it, so the slot is taken on return.
    pub fn hold_connection(
        &self,
        user: &str,
        password: Option<&str>,
        application_name: &str,
    ) -> HeldConnection {
        let before = self.count_backends(application_name);
        let mut psql = self.as_owner(self.bin.command("psql"));
        psql.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", user])
            .args(["-d", "postgres", "-X", "-q"])
            .env("PGAPPNAME", application_name)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(password) = password {
            psql.env("PGPASSWORD", password);
        }
        let child = psql.spawn().expect("start psql");
        let held = HeldConnection { child };
        let listed = PgServer::wait_until(Duration::from_secs(20), || {
            self.count_backends(application_name) > before
        });
        assert!(
            listed,
            "held connection as {user} never appeared in pg_stat_activity"
        );
        held
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            self.resume();
            let mut stop = self.as_owner(self.bin.command("pg_ctl"));
            stop.arg("-D")
                .arg(self.data_dir())
                .args(["-w", "-t", "30", "-m", "immediate", "stop"]);
            let _ = stop.output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An idle `psql` session holding one connection slot; dropping it closes it.
#[derive(Debug)]
pub struct HeldConnection {
    child: Child,
}

impl Drop for HeldConnection {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `'text'` with quotes doubled, for SQL literals built by tests.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `"name"` with quotes doubled, for SQL identifiers built by tests.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
