//! The stand-in's command layer: one [`Server`] (keyspace, scripts, the
//! password), and per connection a [`Session`] (authenticated or not, the
//! selected database). Commands run one at a time, each to its end.

use std::cell::RefCell;
use std::rc::Rc;

use super::keyspace::{parse_int, Keyspace, DATABASES};
use super::script::Scripting;
use super::{Now, Reply};

/// Every command the stand-in knows (data commands included).
pub const KNOWN: &[&str] = &[
    "PING",
    "ECHO",
    "AUTH",
    "SELECT",
    "CLIENT",
    "QUIT",
    "TIME",
    "GET",
    "SET",
    "DEL",
    "UNLINK",
    "EXISTS",
    "INCR",
    "DECR",
    "INCRBY",
    "DECRBY",
    "PTTL",
    "TTL",
    "PERSIST",
    "EXPIRE",
    "PEXPIRE",
    "EXPIREAT",
    "PEXPIREAT",
    "HGET",
    "HMGET",
    "HSET",
    "HMSET",
    "HINCRBY",
    "HGETALL",
    "HDEL",
    "HLEN",
    "ZADD",
    "ZREM",
    "ZCARD",
    "ZSCORE",
    "ZREMRANGEBYSCORE",
    "ZRANGEBYSCORE",
    "SCRIPT",
    "EVAL",
    "EVALSHA",
    "FLUSHALL",
    "FLUSHDB",
    "DBSIZE",
];

/// How the stand-in is set up.
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// `requirepass`: the default user's password (`None`: no password).
    pub password: Option<String>,
}

/// One connection's state.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// The selected database.
    pub db: usize,
    /// Whether `AUTH` succeeded (needed only with a password).
    pub authenticated: bool,
    /// The name `CLIENT SETNAME` gave.
    pub name: Option<Vec<u8>>,
}

/// What a command asks of its connection besides the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Go on reading commands.
    Continue,
    /// Close once the reply is written (`QUIT`).
    Close,
}

/// The stand-in's whole state.
#[derive(Debug)]
pub struct Server {
    options: RedisOptions,
    keyspace: Rc<RefCell<Keyspace>>,
    scripting: Scripting,
}

fn error(message: impl Into<String>) -> Reply {
    Reply::Error(message.into())
}

fn ok() -> Reply {
    Reply::Status("OK".into())
}

fn arity(name: &str) -> Reply {
    error(format!(
        "ERR wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    ))
}

impl Server {
    /// An empty server.
    pub fn new(options: RedisOptions) -> mlua::Result<Server> {
        let keyspace = Rc::new(RefCell::new(Keyspace::default()));
        Ok(Server {
            options,
            scripting: Scripting::new(keyspace.clone())?,
            keyspace,
        })
    }

    /// Runs one command (`args`, its name first) for `session` at `now`.
    pub fn execute(&mut self, session: &mut Session, args: &[Vec<u8>], now: Now) -> (Reply, After) {
        let Some(first) = args.first() else {
            return (error("ERR empty command"), After::Continue);
        };
        let name = String::from_utf8_lossy(first).to_ascii_uppercase();
        let a = &args[1..];
        if name == "QUIT" {
            return (ok(), After::Close);
        }
        if name == "AUTH" {
            return (self.auth(session, a), After::Continue);
        }
        if self.options.password.is_some() && !session.authenticated {
            return (error("NOAUTH Authentication required."), After::Continue);
        }
        let reply = match name.as_str() {
            "PING" => match a {
                [] => Reply::Status("PONG".into()),
                [message] => Reply::Bulk(message.clone()),
                _ => arity(&name),
            },
            "ECHO" => match a {
                [message] => Reply::Bulk(message.clone()),
                _ => arity(&name),
            },
            "SELECT" => match a {
                [db] => match parse_int(db) {
                    Ok(db) if (0..DATABASES as i64).contains(&db) => {
                        session.db = db as usize;
                        ok()
                    }
                    Ok(_) => error("ERR DB index is out of range"),
                    Err(e) => e,
                },
                _ => arity(&name),
            },
            "CLIENT" => client(session, a),
            "TIME" => now.time_reply(),
            "DBSIZE" => match self.keyspace.try_borrow_mut() {
                Ok(mut ks) => Reply::Int(
                    ks.dbs
                        .get_mut(session.db)
                        .map_or(0, |db| db.len(now.unix_ms())) as i64,
                ),
                Err(_) => error("ERR the keyspace is busy"),
            },
            "FLUSHALL" | "FLUSHDB" => match self.keyspace.try_borrow_mut() {
                Ok(mut ks) => {
                    if name == "FLUSHALL" {
                        *ks = Keyspace::default();
                    } else if let Some(db) = ks.dbs.get_mut(session.db) {
                        *db = Default::default();
                    }
                    ok()
                }
                Err(_) => error("ERR the keyspace is busy"),
            },
            "SCRIPT" => self.script(a),
            "EVAL" | "EVALSHA" => self.eval(&name, session, a, now),
            _ => match self.keyspace.try_borrow_mut() {
                Ok(mut ks) => match ks.command(session.db, args, now) {
                    Some(reply) => reply,
                    None => unknown(&name, a),
                },
                Err(_) => error("ERR the keyspace is busy"),
            },
        };
        (reply, After::Continue)
    }

    /// `AUTH password` or `AUTH username password`: the only user is
    /// `default`.
    fn auth(&self, session: &mut Session, a: &[Vec<u8>]) -> Reply {
        let (user, password) = match a {
            [password] => (None, password),
            [user, password] => (Some(user.as_slice()), password),
            _ => return arity("AUTH"),
        };
        match &self.options.password {
            None if user.is_none() => error(
                "ERR AUTH <password> called without any password configured for the default user. \
                 Are you sure your configuration is correct?",
            ),
            None if user == Some(b"default") => {
                session.authenticated = true;
                ok()
            }
            Some(wanted)
                if user.is_none_or(|u| u == b"default")
                    && wanted.as_bytes() == password.as_slice() =>
            {
                session.authenticated = true;
                ok()
            }
            _ => error("WRONGPASS invalid username-password pair or user is disabled."),
        }
    }

    /// `SCRIPT LOAD|EXISTS|FLUSH`.
    fn script(&mut self, a: &[Vec<u8>]) -> Reply {
        let Some(sub) = a.first() else {
            return arity("SCRIPT");
        };
        match String::from_utf8_lossy(sub).to_ascii_uppercase().as_str() {
            "LOAD" => match &a[1..] {
                [body] => match self.scripting.load(body) {
                    Ok(sha) => Reply::Bulk(sha.into_bytes()),
                    Err(e) => e,
                },
                _ => arity("SCRIPT|LOAD"),
            },
            "EXISTS" if a.len() > 1 => Reply::Array(
                a[1..]
                    .iter()
                    .map(|sha| Reply::Int(i64::from(self.scripting.exists(sha))))
                    .collect(),
            ),
            "FLUSH" if a.len() <= 2 => {
                self.scripting.flush();
                ok()
            }
            other => error(format!(
                "ERR unknown subcommand or wrong number of arguments for '{other}'. Try SCRIPT HELP."
            )),
        }
    }

    /// `EVAL script numkeys key... arg...` and `EVALSHA sha1 numkeys ...`.
    fn eval(&mut self, name: &str, session: &mut Session, a: &[Vec<u8>], now: Now) -> Reply {
        let [script, numkeys, rest @ ..] = a else {
            return arity(name);
        };
        let numkeys = match parse_int(numkeys) {
            Ok(n) if n < 0 => return error("ERR Number of keys can't be negative"),
            Ok(n) if n as u64 > rest.len() as u64 => {
                return error("ERR Number of keys can't be greater than number of args")
            }
            Ok(n) => n as usize,
            Err(e) => return e,
        };
        let sha = if name == "EVAL" {
            match self.scripting.load(script) {
                Ok(sha) => sha.into_bytes(),
                Err(e) => return e,
            }
        } else {
            script.clone()
        };
        let (keys, argv) = rest.split_at(numkeys);
        self.scripting.run(&sha, keys, argv, session.db, now)
    }
}

/// `CLIENT SETNAME|GETNAME|SETINFO|ID`.
fn client(session: &mut Session, a: &[Vec<u8>]) -> Reply {
    let Some(sub) = a.first() else {
        return arity("CLIENT");
    };
    match (
        String::from_utf8_lossy(sub).to_ascii_uppercase().as_str(),
        &a[1..],
    ) {
        ("SETNAME", [name]) => {
            if name.iter().any(|b| *b <= b' ' || *b > b'~') {
                return error(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            session.name = (!name.is_empty()).then(|| name.clone());
            ok()
        }
        ("GETNAME", []) => session.name.clone().map_or(Reply::Nil, Reply::Bulk),
        ("SETINFO", [_, _]) => ok(),
        ("ID", []) => Reply::Int(1),
        (other, _) => error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{other}'. Try CLIENT HELP."
        )),
    }
}

fn unknown(name: &str, a: &[Vec<u8>]) -> Reply {
    if KNOWN.contains(&name) {
        return arity(name);
    }
    let args: String = a
        .iter()
        .take(3)
        .map(|x| format!("'{}' ", String::from_utf8_lossy(x)))
        .collect();
    error(format!(
        "ERR unknown command '{}', with args beginning with: {args}",
        name.to_ascii_lowercase()
    ))
}
