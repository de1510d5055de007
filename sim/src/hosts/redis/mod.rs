//! A Redis stand-in host: enough of Redis for a gateway's shared store,
//! speaking RESP2 over turmoil's TCP (parsed and encoded with the
//! `redis-protocol` crate, as the driver's client does), single-threaded like
//! Redis (one command at a time, a script whole), with real Lua 5.1 scripts
//! (`mlua`) and keys that expire on simulated time.
//!
//! Commands: `PING`, `ECHO`, `AUTH` (password, or `default` + password),
//! `SELECT`, `CLIENT SETNAME|GETNAME|SETINFO|ID`, `QUIT`, `TIME`; strings `GET`,
//! `SET` (`EX|PX|EXAT|PXAT|KEEPTTL`, `NX|XX`, `GET`), `DEL`, `UNLINK`, `EXISTS`,
//! `INCR`, `DECR`, `INCRBY`, `DECRBY`; expiry `PTTL`, `TTL`, `PERSIST`,
//! `EXPIRE`, `PEXPIRE`, `EXPIREAT`, `PEXPIREAT` (`NX|XX|GT|LT`); hashes `HGET`,
//! `HMGET`, `HSET`, `HMSET`, `HINCRBY`, `HGETALL`, `HDEL`, `HLEN`; sorted sets
//! `ZADD` (`NX|XX|GT|LT|CH|INCR`), `ZREM`, `ZCARD`, `ZSCORE`,
//! `ZREMRANGEBYSCORE`, `ZRANGEBYSCORE` (`WITHSCORES`, `LIMIT`); `SCRIPT
//! LOAD|EXISTS|FLUSH`, `EVAL`, `EVALSHA`; `FLUSHALL`, `FLUSHDB`, `DBSIZE`.
//! Errors read as Redis's (`WRONGTYPE ...`, `NOSCRIPT ...`, `NOAUTH ...`).
//!
//! Like a Redis without persistence, a crash of the host loses every key and
//! script. The host is an ordinary turmoil host: `sim.partition(gw, REDIS)`
//! cuts a gateway off from it.

pub mod client;
pub mod keyspace;
pub mod script;
pub mod server;

#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;

use bytes::BytesMut;
use redis_protocol::resp2::decode::decode_bytes_mut;
use redis_protocol::resp2::encode::extend_encode;
use redis_protocol::resp2::types::BytesFrame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use server::{After, RedisOptions, Server, Session};

/// The stand-in's host name.
pub const REDIS: &str = "redis";
/// Its port.
pub const REDIS_PORT: u16 = 6379;

/// A reply, before it is encoded (or handed to a script).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Status(String),
    /// `-ERR ...`: the text, its code first.
    Error(String),
    /// `:1`.
    Int(i64),
    /// `$3\r\nfoo`.
    Bulk(Vec<u8>),
    /// `$-1`.
    Nil,
    /// `*2 ...`.
    Array(Vec<Reply>),
}

impl Reply {
    /// The reply as a RESP2 frame.
    pub fn to_frame(&self) -> BytesFrame {
        match self {
            Reply::Status(s) => BytesFrame::SimpleString(s.clone().into_bytes().into()),
            Reply::Error(e) => BytesFrame::Error(e.as_str().into()),
            Reply::Int(n) => BytesFrame::Integer(*n),
            Reply::Bulk(b) => BytesFrame::BulkString(b.clone().into()),
            Reply::Nil => BytesFrame::Null,
            Reply::Array(items) => BytesFrame::Array(items.iter().map(Reply::to_frame).collect()),
        }
    }

    /// The reply a RESP2 frame carries.
    pub fn from_frame(frame: &BytesFrame) -> Reply {
        match frame {
            BytesFrame::SimpleString(s) => Reply::Status(String::from_utf8_lossy(s).into_owned()),
            BytesFrame::Error(e) => Reply::Error(e.to_string()),
            BytesFrame::Integer(n) => Reply::Int(*n),
            BytesFrame::BulkString(b) => Reply::Bulk(b.to_vec()),
            BytesFrame::Null => Reply::Nil,
            BytesFrame::Array(items) => Reply::Array(items.iter().map(Reply::from_frame).collect()),
        }
    }
}

/// The time a command runs at: Unix microseconds (the simulated clock plus
/// the simulation's epoch, [`super::EPOCH_UNIX`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Now {
    pub unix_us: u64,
}

impl Now {
    /// Now, on the simulated clock.
    pub fn simulated() -> Now {
        let since = super::wall_clock()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Now {
            unix_us: since.as_micros() as u64,
        }
    }

    /// Unix milliseconds.
    pub fn unix_ms(self) -> u64 {
        self.unix_us / 1000
    }

    /// `TIME`'s reply: seconds and microseconds, as bulk strings.
    pub fn time_reply(self) -> Reply {
        Reply::Array(vec![
            Reply::Bulk((self.unix_us / 1_000_000).to_string().into_bytes()),
            Reply::Bulk((self.unix_us % 1_000_000).to_string().into_bytes()),
        ])
    }
}

/// The stand-in: serves until the host crashes (which loses every key).
pub async fn serve(options: RedisOptions) -> turmoil::Result {
    let server = Rc::new(RefCell::new(
        Server::new(options).map_err(|e| e.to_string())?,
    ));
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), REDIS_PORT);
    let listener = turmoil::net::TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        // turmoil runs a host on one thread (a `LocalSet`): connections share
        // the server without locks, and a command runs to its end before the
        // next one starts.
        tokio::task::spawn_local(connection(server.clone(), stream));
    }
}

/// One client connection: commands in, replies out, in order (pipelining
/// included).
async fn connection(server: Rc<RefCell<Server>>, mut stream: turmoil::net::TcpStream) {
    let mut session = Session::default();
    let mut input = BytesMut::with_capacity(4096);
    let mut output = BytesMut::new();
    loop {
        let mut close = false;
        loop {
            let frame = match decode_bytes_mut(&mut input) {
                Ok(Some((frame, _, _))) => frame,
                Ok(None) => break,
                Err(e) => {
                    encode(
                        &mut output,
                        &Reply::Error(format!("ERR Protocol error: {e:?}")),
                    );
                    close = true;
                    break;
                }
            };
            let reply = match command_args(frame) {
                Ok(args) => {
                    let Ok(mut server) = server.try_borrow_mut() else {
                        return;
                    };
                    let (reply, after) = server.execute(&mut session, &args, Now::simulated());
                    close = after == After::Close;
                    reply
                }
                Err(reply) => {
                    close = true;
                    reply
                }
            };
            encode(&mut output, &reply);
            if close {
                break;
            }
        }
        if !output.is_empty() {
            if stream.write_all(&output).await.is_err() {
                return;
            }
            output.clear();
        }
        if close {
            return;
        }
        match stream.read_buf(&mut input).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn encode(output: &mut BytesMut, reply: &Reply) {
    // Encoding into a growing buffer cannot fail for a well-formed frame.
    let _ = extend_encode(output, &reply.to_frame(), false);
}

/// A command frame's arguments: an array of bulk strings.
fn command_args(frame: BytesFrame) -> Result<Vec<Vec<u8>>, Reply> {
    let BytesFrame::Array(items) = frame else {
        return Err(Reply::Error(
            "ERR Protocol error: expected an array of bulk strings (inline commands are not supported)"
                .into(),
        ));
    };
    items
        .into_iter()
        .map(|item| match item {
            BytesFrame::BulkString(b) | BytesFrame::SimpleString(b) => Ok(b.to_vec()),
            BytesFrame::Integer(n) => Ok(n.to_string().into_bytes()),
            _ => Err(Reply::Error(
                "ERR Protocol error: expected a bulk string".into(),
            )),
        })
        .collect()
}
