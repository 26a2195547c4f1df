//! A recording HTTP/1.1 receiver on 127.0.0.1:0 for notification tests:
//! every request (method, path, headers, body, arrival time) is kept, and a
//! handler decides each answer, or leaves the request hanging
//! ([`Answer::Stall`]) until the receiver is dropped. Validators check
//! bodies the way Slack and PagerDuty do and answer as they answer.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Largest request body read.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    /// `POST`, `GET`, ...
    pub method: String,
    /// The path, without query.
    pub path: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// When its head arrived.
    pub at: Instant,
}

impl Request {
    /// The first header called `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, or `Value::Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// An answer with status, headers and body.
    Reply {
        /// Status code.
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// Body.
        body: String,
    },
    /// No answer: the connection stays open until the receiver is dropped.
    Stall,
}

impl Answer {
    /// An answer with `status` and `body`.
    pub fn status(status: u16, body: impl Into<String>) -> Answer {
        Answer::Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Adds a header to a reply.
    #[must_use]
    pub fn header(self, name: &str, value: &str) -> Answer {
        match self {
            Answer::Reply {
                status,
                mut headers,
                body,
            } => {
                headers.push((name.to_owned(), value.to_owned()));
                Answer::Reply {
                    status,
                    headers,
                    body,
                }
            }
            Answer::Stall => Answer::Stall,
        }
    }
}

type Handler = dyn Fn(&Request, usize) -> Answer + Send + Sync;

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Request>>,
}

/// A running receiver; dropping it stops it and releases stalled requests.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Receiver {
    /// Starts a receiver; `handler` gets each request and its number (from
    /// 0, over all paths) and says how to answer.
    pub fn start(
        handler: impl Fn(&Request, usize) -> Answer + Send + Sync + 'static,
    ) -> io::Result<Receiver> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let acceptor = {
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (shared, stop, handler) =
                        (Arc::clone(&shared), Arc::clone(&stop), Arc::clone(&handler));
                    std::thread::spawn(move || {
                        let _ = serve(stream, &shared, &stop, &*handler);
                    });
                }
            })
        };
        Ok(Receiver {
            addr,
            shared,
            stop,
            acceptor: Some(acceptor),
        })
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until `count` requests arrived, polling every 20 ms; panics
    /// after `limit` with what did arrive.
    pub fn wait_for(&self, count: usize, limit: Duration) -> Vec<Request> {
        let start = Instant::now();
        loop {
            let requests = self.requests();
            if requests.len() >= count {
                return requests;
            }
            assert!(
                start.elapsed() < limit,
                "receiver got {} of {count} requests within {limit:?}: {:?}",
                requests.len(),
                requests
                    .iter()
                    .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(handle) = self.acceptor.take() {
            let _ = handle.join();
        }
    }
}

/// Serves requests on one connection (keep-alive) until it closes.
fn serve(
    mut stream: TcpStream,
    shared: &Shared,
    stop: &AtomicBool,
    handler: &Handler,
) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut buffer = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buffer)? else {
            return Ok(());
        };
        let index = {
            let mut requests = shared
                .requests
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            requests.push(request.clone());
            requests.len() - 1
        };
        match handler(&request, index) {
            Answer::Stall => {
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return Ok(());
            }
            Answer::Reply {
                status,
                headers,
                body,
            } => {
                let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
                for (name, value) in &headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
                stream.write_all(head.as_bytes())?;
                stream.write_all(body.as_bytes())?;
                stream.flush()?;
            }
        }
    }
}

/// Reads one request (head and `Content-Length` body); `None` at EOF.
fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> io::Result<Option<Request>> {
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 || buffer.len() > 64 * 1024 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let at = Instant::now();
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.lines();
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/").to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_BODY);
    while buffer.len() < head_end + length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = buffer[head_end..head_end + length].to_vec();
    buffer.drain(..head_end + length);
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
        at,
    }))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Checks a Slack incoming-webhook body as Slack does: JSON, a non-empty
/// `text`, and `attachments` (if any) an array of objects whose `color`,
/// `title`, `text` and `fallback` are strings.
pub fn slack_problem(body: &[u8]) -> Option<&'static str> {
    let Ok(Value::Object(message)) = serde_json::from_slice::<Value>(body) else {
        return Some("invalid_payload");
    };
    match message.get("text") {
        Some(Value::String(text)) if !text.trim().is_empty() => {}
        _ => return Some("no_text"),
    }
    if let Some(attachments) = message.get("attachments") {
        let Value::Array(items) = attachments else {
            return Some("invalid_attachments");
        };
        for item in items {
            let Value::Object(item) = item else {
                return Some("invalid_attachments");
            };
            for key in ["color", "title", "text", "fallback", "title_link"] {
                if item.get(key).is_some_and(|v| !v.is_string()) {
                    return Some("invalid_attachments");
                }
            }
        }
    }
    None
}

/// Slack's answer to a body: `200 ok`, or 400 with the problem.
pub fn slack_answer(body: &[u8]) -> Answer {
    match slack_problem(body) {
        None => Answer::status(200, "ok"),
        Some(problem) => Answer::status(400, problem),
    }
}

/// Checks a PagerDuty Events API v2 body as the API does: a 32-character
/// `routing_key`, an `event_action`, a `dedup_key` of at most 255
/// characters, and for `trigger` a payload with `summary` (1 to 1024
/// characters), `source` and a `severity` of critical, error, warning or
/// info. Returns every problem found.
pub fn pagerduty_problems(body: &[u8]) -> Vec<String> {
    let Ok(Value::Object(event)) = serde_json::from_slice::<Value>(body) else {
        return vec!["body is not a JSON object".to_owned()];
    };
    let mut problems = Vec::new();
    let text = |key: &str| event.get(key).and_then(Value::as_str);
    if text("routing_key").is_none_or(|k| k.chars().count() != 32) {
        problems.push("routing_key must be 32 characters".to_owned());
    }
    let action = text("event_action").unwrap_or_default();
    if !["trigger", "acknowledge", "resolve"].contains(&action) {
        problems.push(format!("event_action {action:?} is invalid"));
    }
    match text("dedup_key") {
        Some(key) if !key.is_empty() && key.chars().count() <= 255 => {}
        _ => problems.push("dedup_key missing or too long".to_owned()),
    }
    if action == "trigger" {
        let payload = event.get("payload").and_then(Value::as_object);
        let field = |key: &str| payload.and_then(|p| p.get(key)).and_then(Value::as_str);
        match field("summary") {
            Some(s) if (1..=1024).contains(&s.chars().count()) => {}
            _ => problems.push("payload.summary must be 1 to 1024 characters".to_owned()),
        }
        if field("source").is_none_or(str::is_empty) {
            problems.push("payload.source is required".to_owned());
        }
        let severity = field("severity").unwrap_or_default();
        if !["critical", "error", "warning", "info"].contains(&severity) {
            problems.push(format!("payload.severity {severity:?} is invalid"));
        }
    }
    problems
}

/// PagerDuty's answer: 202 with the dedup key, or 400 with the errors.
pub fn pagerduty_answer(body: &[u8]) -> Answer {
    let problems = pagerduty_problems(body);
    if problems.is_empty() {
        let dedup_key = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["dedup_key"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let answer = serde_json::json!({
            "status": "success",
            "message": "Event processed",
            "dedup_key": dedup_key,
        });
        Answer::status(202, answer.to_string())
    } else {
        let answer = serde_json::json!({
            "status": "invalid event",
            "message": "Event object is invalid",
            "errors": problems,
        });
        Answer::status(400, answer.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators_refuse_what_the_services_refuse() {
        assert_eq!(slack_problem(b"not json"), Some("invalid_payload"));
        assert_eq!(slack_problem(br#"{"attachments":[]}"#), Some("no_text"));
        assert_eq!(
            slack_problem(br#"{"text":"x","attachments":[{"color":1}]}"#),
            Some("invalid_attachments")
        );
        assert_eq!(
            slack_problem(br##"{"text":"x","attachments":[{"color":"#fff"}]}"##),
            None
        );
        let problems = pagerduty_problems(
            br#"{"routing_key":"short","event_action":"trigger","dedup_key":"k",
                "payload":{"summary":"","source":"","severity":"bad"}}"#,
        );
        assert_eq!(problems.len(), 4, "{problems:?}");
        let key = "k".repeat(32);
        let ok = format!(r#"{{"routing_key":"{key}","event_action":"resolve","dedup_key":"k"}}"#);
        assert!(pagerduty_problems(ok.as_bytes()).is_empty());
    }
}
