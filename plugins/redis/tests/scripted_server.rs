//! The redis plugin against a small scripted RESP server on 127.0.0.1, for
//! server behaviour the installed redis-server 7 cannot show: an older
//! server that refuses `INFO` with several sections, and a server that holds
//! its replies until a whole pipeline has arrived.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use warden_plugin_api::{CheckResult, Host, Plugin, Reason, RunContext, Status};
use warden_redis::RedisCheck;

/// An `INFO` reply holding every field the check reads, one per section.
const INFO: &str = "# Server\r\nuptime_in_seconds:5\r\n\r\n\
                    # Clients\r\nconnected_clients:1\r\nblocked_clients:0\r\n\r\n\
                    # Memory\r\nused_memory:1000\r\nmaxmemory:0\r\n\r\n\
                    # Persistence\r\nloading:0\r\n\r\n\
                    # Stats\r\nrejected_connections:0\r\nevicted_keys:0\r\n\r\n\
                    # Replication\r\nrole:master\r\n";

/// How the scripted server behaves.
#[derive(Debug, Clone, Copy, Default)]
struct Script {
    /// Answer `INFO` with more than one section `-ERR syntax error`, as
    /// servers before Redis 7 do.
    one_info_section: bool,
    /// Send nothing after `SET` until `DEL` has arrived too, so a client that
    /// waits for each reply before sending the next command never finishes.
    hold_until_del: bool,
    /// Answer `GET` with a value other than the one `SET` stored.
    wrong_get: bool,
    /// Know no `INFO` at all, as after `rename-command INFO ""`.
    no_info: bool,
}

/// A scripted server; each connection is served on its own thread, and
/// every command received is recorded.
struct ScriptedServer {
    port: u16,
    commands: Arc<Mutex<Vec<Vec<String>>>>,
}

impl ScriptedServer {
    fn start(script: Script) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        let commands = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&commands);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = Arc::clone(&log);
                // A connection ends with an error when the client goes away.
                std::thread::spawn(move || serve(stream, script, &log).ok());
            }
        });
        Ok(ScriptedServer { port, commands })
    }

    fn commands(&self) -> Vec<Vec<String>> {
        self.commands.lock().unwrap().clone()
    }

    /// The `INFO` commands received, with their arguments.
    fn info_commands(&self) -> Vec<Vec<String>> {
        self.commands()
            .into_iter()
            .filter(|c| c[0].eq_ignore_ascii_case("INFO"))
            .collect()
    }
}

fn serve(stream: TcpStream, script: Script, log: &Mutex<Vec<Vec<String>>>) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut keys: HashMap<String, String> = HashMap::new();
    let mut held = Vec::new();
    let mut holding = false;
    loop {
        let command = read_command(&mut reader)?;
        log.lock().unwrap().push(command.clone());
        let name = command[0].to_ascii_uppercase();
        let reply = match (name.as_str(), &command[1..]) {
            ("PING", _) => b"+PONG\r\n".to_vec(),
            ("INFO", _) if script.no_info => {
                b"-ERR unknown command 'INFO', with args beginning with: \r\n".to_vec()
            }
            ("INFO", sections) if sections.len() > 1 && script.one_info_section => {
                b"-ERR syntax error\r\n".to_vec()
            }
            ("INFO", _) => bulk(INFO),
            ("SET", [key, value, ..]) => {
                keys.insert(key.clone(), value.clone());
                holding = script.hold_until_del;
                b"+OK\r\n".to_vec()
            }
            ("GET", [_]) if script.wrong_get => bulk("something else"),
            ("GET", [key]) => keys.get(key).map_or(b"$-1\r\n".to_vec(), |v| bulk(v)),
            ("DEL", [key]) => {
                holding = false;
                let removed = keys.remove(key).is_some();
                format!(":{}\r\n", u8::from(removed)).into_bytes()
            }
            _ => format!("-ERR unknown command '{name}'\r\n").into_bytes(),
        };
        held.extend_from_slice(&reply);
        if !holding {
            writer.write_all(&held)?;
            held.clear();
        }
    }
}

fn bulk(text: &str) -> Vec<u8> {
    format!("${}\r\n{text}\r\n", text.len()).into_bytes()
}

/// Reads one request: an array of bulk strings.
fn read_command(reader: &mut impl BufRead) -> io::Result<Vec<String>> {
    let count = read_header(reader, b'*')?;
    let mut args = Vec::with_capacity(count);
    for _ in 0..count {
        let len = read_header(reader, b'$')?;
        let mut arg = vec![0; len + 2];
        reader.read_exact(&mut arg)?;
        arg.truncate(len);
        args.push(String::from_utf8(arg).map_err(io::Error::other)?);
    }
    if args.is_empty() {
        return Err(io::Error::other("empty command"));
    }
    Ok(args)
}

/// Reads a `<kind><number>\r\n` line.
fn read_header(reader: &mut impl BufRead, kind: u8) -> io::Result<usize> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    line.trim_end()
        .strip_prefix(kind as char)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad RESP header {line:?}")))
}

fn create(server: &ScriptedServer, extra: Value) -> RedisCheck {
    let mut config = json!({"host": "127.0.0.1", "port": server.port});
    for (key, value) in extra.as_object().unwrap() {
        config[key] = value.clone();
    }
    RedisCheck::create(config, Host::detached()).expect("config is valid")
}

/// One run; the deadline only bounds a run that would otherwise hang.
fn run(check: &mut RedisCheck) -> CheckResult {
    check.check(&RunContext::with_timeout(Duration::from_secs(5)))
}

fn metric(result: &CheckResult, name: &str) -> Option<f64> {
    result
        .metrics
        .iter()
        .find(|m| m.name == name)
        .map(|m| m.value)
}

const SECTIONS: [&str; 7] = [
    "INFO",
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
];

#[test]
fn info_asks_only_for_the_sections_it_reads() {
    let server = ScriptedServer::start(Script::default()).unwrap();
    let mut check = create(&server, json!({}));
    for _ in 0..2 {
        let result = run(&mut check);
        assert_eq!(result.status, Status::Ok, "{result:?}");
        assert_eq!(metric(&result, "uptime_seconds"), Some(5.0));
    }
    assert_eq!(server.info_commands(), vec![SECTIONS.to_vec(); 2]);
}

#[test]
fn info_falls_back_to_plain_info_when_sections_are_refused() {
    let server = ScriptedServer::start(Script {
        one_info_section: true,
        ..Script::default()
    })
    .unwrap();
    let mut check = create(&server, json!({}));
    for _ in 0..3 {
        let result = run(&mut check);
        assert_eq!(result.status, Status::Ok, "{result:?}");
        assert_eq!(metric(&result, "used_memory_bytes"), Some(1000.0));
        assert_eq!(metric(&result, "uptime_seconds"), Some(5.0));
        assert_eq!(metric(&result, "rejected_connections_total"), Some(0.0));
    }
    // Refused once, then the connection remembers: one round trip per run.
    assert_eq!(
        server.info_commands(),
        vec![SECTIONS.to_vec(), vec!["INFO"], vec!["INFO"], vec!["INFO"]]
    );
}

#[test]
fn roundtrip_sends_set_get_del_in_one_pipeline() {
    // The server answers SET only once DEL has arrived: a client waiting for
    // each reply would hang until the deadline.
    let server = ScriptedServer::start(Script {
        hold_until_del: true,
        ..Script::default()
    })
    .unwrap();
    let mut check = create(&server, json!({"roundtrip": true}));
    let result = run(&mut check);
    assert_eq!(result.status, Status::Ok, "{result:?}");
    assert!(metric(&result, "roundtrip_seconds").is_some());
    let names: Vec<String> = server
        .commands()
        .into_iter()
        .map(|c| c[0].clone())
        .collect();
    assert_eq!(names, ["PING", "SET", "GET", "DEL", "INFO"]);
}

#[test]
fn roundtrip_reading_another_value_is_protocol() {
    let server = ScriptedServer::start(Script {
        wrong_get: true,
        ..Script::default()
    })
    .unwrap();
    let mut check = create(&server, json!({"roundtrip": true}));
    let result = run(&mut check);
    assert_eq!(result.status, Status::Critical, "{result:?}");
    assert_eq!(result.reason, Some(Reason::Protocol), "{result:?}");
    assert!(
        result.message.contains("not the value just SET"),
        "{}",
        result.message
    );
    let set = server
        .commands()
        .into_iter()
        .find(|c| c[0] == "SET")
        .unwrap();
    let del = server
        .commands()
        .into_iter()
        .find(|c| c[0] == "DEL")
        .unwrap();
    assert_eq!(set[1], del[1], "the key written is the key deleted");
}

#[test]
fn a_server_without_info_passes_liveness_with_a_warning() {
    let server = ScriptedServer::start(Script {
        no_info: true,
        ..Script::default()
    })
    .unwrap();
    let result = run(&mut create(&server, json!({"roundtrip": true})));
    assert_eq!(result.status, Status::Warning, "{result:?}");
    assert_eq!(result.reason, Some(Reason::Other), "{result:?}");
    assert!(
        result.message.contains("INFO is disabled"),
        "{}",
        result.message
    );
    assert!(metric(&result, "ping_seconds").is_some());
    assert!(metric(&result, "roundtrip_seconds").is_some());
}
