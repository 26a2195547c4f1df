//! HTTP hardening: idle connections neither starve new clients nor stay
//! open, an idle keep-alive connection is closed too, an oversized request
//! head is refused without disturbing the daemon, and HEAD probes get GET's
//! status and headers without a body.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::{Daemon, TempDir, http_request, plugin_dir};

/// Idle sockets opened at once; well under the daemon's connection cap.
const IDLE_CONNECTIONS: usize = 500;
/// How long a read waits for the server to close an idle connection: far
/// beyond the daemon's header timeout, so only a server that never closes
/// fails.
const CLOSE_WAIT: Duration = Duration::from_secs(30);

/// Raises this process's soft limit on open files to the hard limit: the
/// test holds hundreds of sockets, next to other tests in the same process.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read or write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn ready_daemon(dir: &TempDir) -> Daemon {
    let plugins = plugin_dir(dir, &["warden_test_scripted"]);
    let script = dir.write("ok.json", "ok");
    let text = format!(
        r#"
[server]
listen = "{{addr}}"
[plugins]
dir = "{plugins}"
beside_executable = false
[[check]]
name = "db"
plugin = "scripted"
interval = "200ms"
[check.config]
file = "{script}"
"#,
        plugins = plugins.display(),
        script = script.display(),
    );
    let mut daemon = Daemon::with_config(dir, &text);
    daemon.wait_until("ready", Duration::from_secs(20), |d| {
        d.try_get("/readyz").is_some_and(|r| r.status == 200)
    });
    daemon
}

/// Whether the server closed `stream`: a read ends (EOF or reset) rather
/// than timing out.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(CLOSE_WAIT)).expect("timeout");
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            // A 408 or similar before the close is fine; keep reading.
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn idle_connections_do_not_starve_clients_and_are_closed() {
    raise_fd_limit();
    let dir = TempDir::new("idle");
    let daemon = ready_daemon(&dir);

    let mut idle: Vec<TcpStream> = (0..IDLE_CONNECTIONS)
        .map(|i| {
            TcpStream::connect(&daemon.addr).unwrap_or_else(|e| panic!("idle connection {i}: {e}"))
        })
        .collect();
    // A new client is served while all of them hold their connections.
    let ready = daemon.get("/readyz");
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(daemon.get("/livez").status, 200);

    let still_open = idle
        .iter_mut()
        .map(closed_by_server)
        .filter(|closed| !closed)
        .count();
    assert_eq!(
        still_open, 0,
        "{still_open} of {IDLE_CONNECTIONS} idle connections were never closed"
    );
    drop(idle);
    assert_eq!(daemon.get("/readyz").status, 200);
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let dir = TempDir::new("keepalive");
    let daemon = ready_daemon(&dir);
    let mut stream = TcpStream::connect(&daemon.addr).unwrap();
    stream
        .write_all(format!("GET /livez HTTP/1.1\r\nHost: {}\r\n\r\n", daemon.addr).as_bytes())
        .unwrap();
    // Read the one answer (its body is small JSON with a Content-Length).
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&answer).contains("\"alive\"") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed before answering");
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"));
    // Kept alive, then closed by the server once idle too long.
    assert!(
        closed_by_server(&mut stream),
        "idle keep-alive connection stayed open"
    );
}

#[test]
fn an_oversized_request_head_is_refused_and_the_daemon_keeps_serving() {
    let dir = TempDir::new("bighead");
    let daemon = ready_daemon(&dir);
    let mut stream = TcpStream::connect(&daemon.addr).unwrap();
    let filler = "a".repeat(100 * 1024);
    let request = format!(
        "GET /readyz HTTP/1.1\r\nHost: {}\r\nX-Filler: {filler}\r\nConnection: close\r\n\r\n",
        daemon.addr
    );
    // The server may close before taking all of it; that is a refusal too.
    let _ = stream.write_all(request.as_bytes());
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    assert_eq!(daemon.get("/readyz").status, 200);
}

#[test]
fn head_answers_like_get_without_a_body() {
    let dir = TempDir::new("head");
    let daemon = ready_daemon(&dir);
    for path in ["/readyz", "/health", "/livez", "/metrics"] {
        let get = http_request(&daemon.addr, "GET", path, &[]).unwrap();
        let head = http_request(&daemon.addr, "HEAD", path, &[]).unwrap();
        assert_eq!(head.status, get.status, "HEAD {path}");
        assert_eq!(head.body, "", "HEAD {path} sent a body");
        let content_type = |r: &crate::harness::HttpResponse| {
            r.headers
                .iter()
                .find(|(k, _)| k == "content-type")
                .map(|(_, v)| v.clone())
        };
        assert_eq!(content_type(&head), content_type(&get), "HEAD {path}");
        assert!(!get.body.is_empty(), "GET {path} has a body");
    }
    // Other methods are still refused.
    let post = http_request(&daemon.addr, "POST", "/readyz", &[]).unwrap();
    assert_eq!(post.status, 405);
}
