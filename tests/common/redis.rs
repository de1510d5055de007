//! A real `redis-server` for the shared-store tests: started on a free loopback
//! port with a throw-away directory (no persistence), stopped and restarted on
//! the same port for the "Redis down" tests, killed on drop; and a few lines of
//! RESP over a blocking socket to look at what the gateways wrote.
//!
//! `scripts/test` installs `redis-server` (Debian package `redis-server`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::WAIT;

/// A `redis-server` process of this test.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    password: Option<String>,
    dir: tempfile::TempDir,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

impl RedisServer {
    /// Starts a server without a password on a free port.
    pub fn start() -> RedisServer {
        Self::start_inner(None)
    }

    /// Starts a server that requires `password` (`--requirepass`).
    pub fn start_with_password(password: &str) -> RedisServer {
        Self::start_inner(Some(password.to_owned()))
    }

    fn start_inner(password: Option<String>) -> RedisServer {
        // A port taken by someone else between our probe and redis-server's bind
        // makes it exit at once: try another.
        let mut last_log = String::new();
        for _ in 0..5 {
            let mut server = RedisServer {
                child: None,
                port: free_port(),
                password: password.clone(),
                dir: tempfile::tempdir().expect("temp dir for redis-server"),
            };
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(log) => last_log = log,
            }
        }
        panic!("redis-server did not start; its log:\n{last_log}");
    }

    /// `redis://[:password@]127.0.0.1:port/0`, for `--store`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Kills the server (SIGKILL): what a crashed or unreachable Redis looks
    /// like to the gateways. Its port stays reserved for `restart`.
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Starts the server again on the same port and directory (empty: nothing
    /// is persisted), and waits until it answers PING.
    pub fn restart(&mut self) {
        self.kill();
        // The port was free a moment ago and redis-server binds with
        // SO_REUSEADDR; retry briefly in case the old process is still going away.
        let deadline = Instant::now() + WAIT;
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(log) if Instant::now() > deadline => {
                    panic!(
                        "redis-server did not restart on port {}; log:\n{log}",
                        self.port
                    )
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing is
    /// answered, what a hung or partitioned Redis looks like. `resume` thaws it.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self
            .child
            .as_ref()
            .expect("redis-server is running")
            .id()
            .to_string();
        let status = Command::new("kill")
            .args([format!("-{sig}"), pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} redis-server failed");
    }

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A paused server dies of SIGKILL as well; nothing to thaw.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Spawns redis-server and waits until it answers PING; on failure, its log.
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let dir = self.dir.path().display().to_string();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("redis-server log file");
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port, "--dir", &dir])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--bind", "127.0.0.1", "--protected-mode", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log file handle")))
            .stderr(Stdio::from(log));
        if let Some(pw) = &self.password {
            cmd.args(["--requirepass", pw]);
        }
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not installed (not on PATH): run scripts/test, it installs redis-server"
            ),
            Err(e) => panic!("could not run redis-server: {e}"),
        };
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("exited with {status}\n{}", self.log()));
                }
            }
            if let Ok(mut conn) = self.try_connect() {
                if matches!(conn.command(&["PING"]), Ok(Resp::Simple(ref s)) if s == "PONG") {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!("no PONG within {WAIT:?}\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn try_connect(&self) -> std::io::Result<RedisConn> {
        let stream = TcpStream::connect_timeout(&self.addr(), Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        let mut conn = RedisConn {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        if let Some(pw) = &self.password {
            match conn.command(&["AUTH", pw])? {
                Resp::Simple(_) => {}
                other => {
                    return Err(std::io::Error::other(format!("AUTH answered {other:?}")));
                }
            }
        }
        Ok(conn)
    }

    /// A new connection (authenticated when the server has a password).
    pub fn connect(&self) -> RedisConn {
        self.try_connect()
            .unwrap_or_else(|e| panic!("connect to redis-server on {}: {e}", self.addr()))
    }

    /// Sends one command on a new connection and returns the answer.
    pub fn command(&self, args: &[&str]) -> Resp {
        self.connect()
            .command(args)
            .unwrap_or_else(|e| panic!("redis {args:?}: {e}"))
    }

    /// Every key (sorted), found with SCAN.
    pub fn keys(&self) -> Vec<String> {
        let mut conn = self.connect();
        let mut cursor = "0".to_owned();
        let mut keys = Vec::new();
        loop {
            let answer = conn
                .command(&["SCAN", &cursor, "COUNT", "1000"])
                .expect("SCAN");
            let Resp::Array(Some(parts)) = answer else {
                panic!("SCAN answered {answer:?}");
            };
            let [next, batch] = parts.as_slice() else {
                panic!("SCAN answered {parts:?}");
            };
            cursor = next.text().expect("SCAN cursor");
            if let Resp::Array(Some(batch)) = batch {
                keys.extend(batch.iter().filter_map(Resp::text));
            }
            if cursor == "0" {
                break;
            }
        }
        keys.sort();
        keys
    }
}

/// A free loopback port (bound once, then released).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local address").port()
}

/// One RESP (2) value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resp {
    /// `+OK`
    Simple(String),
    /// `-ERR ...`
    Error(String),
    /// `:1`
    Int(i64),
    /// `$3\r\nabc` (`None`: the null bulk string).
    Bulk(Option<Vec<u8>>),
    /// `*2 ...` (`None`: the null array).
    Array(Option<Vec<Resp>>),
}

impl Resp {
    /// The value as text: a simple or bulk string, or an integer.
    pub fn text(&self) -> Option<String> {
        match self {
            Resp::Simple(s) => Some(s.clone()),
            Resp::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            Resp::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }

    /// The value as an integer (an integer reply, or a string holding one).
    pub fn int(&self) -> Option<i64> {
        match self {
            Resp::Int(i) => Some(*i),
            other => other.text()?.parse().ok(),
        }
    }
}

/// A blocking connection to the test's redis-server.
pub struct RedisConn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl RedisConn {
    /// Sends `args` as one command (an array of bulk strings), reads the answer.
    pub fn command(&mut self, args: &[&str]) -> std::io::Result<Resp> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out)?;
        read_resp(&mut self.reader)
    }
}

fn read_resp(r: &mut BufReader<TcpStream>) -> std::io::Result<Resp> {
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at(line.len().min(1));
    let number = || {
        rest.parse::<i64>()
            .map_err(|_| bad(format!("bad RESP number line {line:?}")))
    };
    Ok(match kind {
        "+" => Resp::Simple(rest.to_owned()),
        "-" => Resp::Error(rest.to_owned()),
        ":" => Resp::Int(number()?),
        "$" => {
            let n = number()?;
            if n < 0 {
                Resp::Bulk(None)
            } else {
                let mut buf = vec![0; n as usize + 2];
                r.read_exact(&mut buf)?;
                buf.truncate(n as usize);
                Resp::Bulk(Some(buf))
            }
        }
        "*" => {
            let n = number()?;
            if n < 0 {
                Resp::Array(None)
            } else {
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(read_resp(r)?);
                }
                Resp::Array(Some(items))
            }
        }
        _ => return Err(bad(format!("bad RESP line {line:?}"))),
    })
}
