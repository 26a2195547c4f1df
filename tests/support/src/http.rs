//! A small HTTP/1.1 server on 127.0.0.1:0 for tests: each path answers with
//! a scripted [`Response`] (status, headers, body), optionally trickling the
//! body one byte at a time or leaving out `Content-Length`. One thread per
//! connection, `Connection: close` on every answer; dropping the handle stops
//! the server and any trickle in progress.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the server answers on one path.
#[derive(Debug, Clone)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    trickle: Option<Duration>,
    content_length: bool,
}

impl Response {
    /// An empty answer with `status`.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            trickle: None,
            content_length: true,
        }
    }

    /// 200 with `Content-Type: application/json` and `body`.
    pub fn json(body: impl Into<Vec<u8>>) -> Self {
        Self::new(200)
            .header("Content-Type", "application/json")
            .body(body)
    }

    /// A redirect with `status` (301, 302, 307, 308) to `location`.
    pub fn redirect(status: u16, location: impl Into<String>) -> Self {
        Self::new(status).header("Location", location)
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends the headers at once, then the body one byte per `interval`.
    #[must_use]
    pub fn trickle(mut self, interval: Duration) -> Self {
        self.trickle = Some(interval);
        self
    }

    /// Leaves out `Content-Length`: the body ends when the connection closes.
    #[must_use]
    pub fn without_length(mut self) -> Self {
        self.content_length = false;
        self
    }
}

type Routes = Arc<Mutex<HashMap<String, (Response, usize)>>>;

/// A running test HTTP server.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    routes: Routes,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Starts a server with no routes (every path answers 404).
    pub fn start() -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let routes: Routes = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (routes, stop) = (Arc::clone(&routes), Arc::clone(&stop));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (routes, stop) = (Arc::clone(&routes), Arc::clone(&stop));
                    std::thread::spawn(move || {
                        let _ = serve(stream, &routes, &stop);
                    });
                }
            })
        };
        Ok(HttpServer {
            addr,
            routes,
            stop,
            acceptor: Some(acceptor),
        })
    }

    /// Sets (or replaces) the answer for `path`, e.g. `/jwks.json`.
    pub fn route(&self, path: &str, response: Response) {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        routes.insert(path.to_owned(), (response, 0));
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many requests `path` has answered.
    pub fn hits(&self, path: &str) -> usize {
        let routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        routes.get(path).map_or(0, |(_, hits)| *hits)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(handle) = self.acceptor.take() {
            let _ = handle.join();
        }
    }
}

fn serve(mut stream: TcpStream, routes: &Routes, stop: &AtomicBool) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let Some(path) = read_request_path(&mut stream)? else {
        return Ok(());
    };
    let response = {
        let mut routes = routes.lock().unwrap_or_else(PoisonError::into_inner);
        match routes.get_mut(&path) {
            Some((response, hits)) => {
                *hits += 1;
                response.clone()
            }
            None => Response::new(404)
                .header("Content-Type", "text/plain")
                .body("not found"),
        }
    };
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if response.content_length {
        head.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes())?;
    match response.trickle {
        None => stream.write_all(&response.body)?,
        Some(interval) => {
            stream.flush()?;
            for byte in &response.body {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                std::thread::sleep(interval);
                stream.write_all(std::slice::from_ref(byte))?;
                stream.flush()?;
            }
        }
    }
    stream.flush()
}

/// Reads the request head (at most 64 KiB) and returns its path.
fn read_request_path(stream: &mut TcpStream) -> io::Result<Option<String>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 || head.len() > 64 * 1024 {
            return Ok(None);
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let target = text
        .lines()
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .unwrap_or("/");
    // Route by path alone; a query string is ignored.
    Ok(Some(target.split('?').next().unwrap_or("/").to_owned()))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
