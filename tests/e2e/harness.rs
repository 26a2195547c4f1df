//! Starting the real `warden` binary against configs written by the test,
//! and talking to it over real HTTP.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The `warden` binary under test.
pub fn warden_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_warden"))
}

/// The directory cargo puts the binary and the plugin libraries in.
pub fn target_dir() -> PathBuf {
    warden_bin()
        .parent()
        .expect("binary has a directory")
        .to_owned()
}

/// Builds the plugin libraries the tests load (cargo does not build cdylibs
/// for `cargo test`); once per test process, cheap when up to date.
pub fn build_plugins() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            // The same build as scripts/test, so this is a no-op after it.
            .args(["build", "--quiet", "--workspace"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the test plugins failed");
    });
}

/// The path of a built plugin library by its crate's lib name.
pub fn plugin_lib(lib_name: &str) -> PathBuf {
    build_plugins();
    let path = target_dir().join(format!("lib{lib_name}.so"));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// A scratch directory removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh directory, mode 0755 so plugin loading trusts it.
    pub fn new(tag: &str) -> TempDir {
        use std::os::unix::fs::PermissionsExt;
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("warden-e2e-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        TempDir(dir)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes a file inside it and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A plugin directory holding links to the named libraries.
pub fn plugin_dir(dir: &TempDir, lib_names: &[&str]) -> PathBuf {
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("create plugin dir");
    for lib in lib_names {
        let source = plugin_lib(lib);
        std::os::unix::fs::symlink(
            &source,
            plugins.join(source.file_name().expect("file name")),
        )
        .expect("link plugin");
    }
    plugins
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A running daemon, stopped with SIGTERM on drop.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    /// Its HTTP address.
    pub addr: String,
    log: PathBuf,
}

impl Daemon {
    /// Starts `warden run` with the config at `config` (or the embedded
    /// default when `None`) listening on `addr`, and waits for `/livez`.
    pub fn start(config: Option<&Path>, addr: &str, log_dir: &TempDir) -> Daemon {
        Daemon::start_with_env(config, addr, log_dir, &[])
    }

    /// As [`Daemon::start`], with extra environment variables.
    pub fn start_with_env(
        config: Option<&Path>,
        addr: &str,
        log_dir: &TempDir,
        env: &[(&str, &str)],
    ) -> Daemon {
        let log = log_dir.path().join("warden.log");
        let mut command = Command::new(warden_bin());
        command.arg("run");
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let child = command
            .env_remove("WARDEN_CONFIG")
            .env("RUST_LOG", "info,warden=debug")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn warden");
        let mut daemon = Daemon {
            child,
            addr: addr.to_owned(),
            log,
        };
        daemon.wait_until("/livez answers", Duration::from_secs(20), |d| {
            d.try_get("/livez").is_some_and(|r| r.status == 200)
        });
        daemon
    }

    /// Starts a daemon on a free port with config text; `{addr}` in the text
    /// is replaced by the listen address.
    pub fn with_config(dir: &TempDir, text: &str) -> Daemon {
        let addr = format!("127.0.0.1:{}", free_port());
        let config = dir.write("warden.toml", text.replace("{addr}", &addr));
        Daemon::start(Some(&config), &addr, dir)
    }

    /// Everything the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET `path`, panicking on connection errors.
    pub fn get(&self, path: &str) -> HttpResponse {
        self.request("GET", path, &[])
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log()))
    }

    /// GET `path`, `None` on connection errors.
    pub fn try_get(&self, path: &str) -> Option<HttpResponse> {
        self.request("GET", path, &[]).ok()
    }

    /// Any request with extra headers.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> std::io::Result<HttpResponse> {
        http_request(&self.addr, method, path, headers)
    }

    /// Polls `ready` every 20 ms until it holds, panicking with the log after
    /// `limit`.
    pub fn wait_until(
        &mut self,
        what: &str,
        limit: Duration,
        mut ready: impl FnMut(&Daemon) -> bool,
    ) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if ready(self) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "warden exited with {status} while waiting for {what}\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "timed out after {limit:?} waiting for {what}\n{}",
            self.log()
        );
    }

    /// Kills the daemon with SIGKILL, so it cleans up nothing, and reaps it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `limit` for the daemon to exit by itself.
    pub fn wait_exit(mut self, limit: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("warden did not exit within {limit:?}\n{}", self.log());
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.terminate()
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if start.elapsed() > Duration::from_secs(15) {
                let _ = self.child.kill();
                return self.child.wait().expect("wait");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.terminate();
        }
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
}

impl HttpResponse {
    /// The first header called `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request over a fresh connection.
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Content-Length: 0\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// Runs `warden` with `args` to completion.
pub fn warden(args: &[&str]) -> Output {
    Command::new(warden_bin())
        .args(args)
        .env_remove("WARDEN_CONFIG")
        .output()
        .expect("run warden")
}

/// Finds `promtool`, which the test set-up (`scripts/test`) installs.
pub fn promtool() -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("promtool"))
        .find(|p| p.exists());
    found.expect("promtool not found: run scripts/test, or apt-get install prometheus")
}
