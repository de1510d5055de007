//! Scripts: real Lua 5.1 (what Redis runs), with `KEYS`, `ARGV` and the
//! `redis` table (`call`, `pcall`, `error_reply`, `status_reply`, `sha1hex`,
//! `log`), and Redis's conversions between Lua values and replies:
//!
//! | Lua → reply | reply → Lua |
//! | --- | --- |
//! | number → integer (truncated) | integer → number |
//! | string → bulk string | bulk string → string |
//! | `true` → integer 1 | nil bulk or array → `false` |
//! | `false`, `nil` → nil bulk | array → table (nested) |
//! | table → array, up to its first nil | status → `{ok = status}` |
//! | `{ok = s}` → status; `{err = s}` → error | error → `{err = message}` (`pcall`), raised (`call`) |
//!
//! A script runs whole before any other command: the stand-in is
//! single-threaded, and `redis.call` reaches the keyspace synchronously. A
//! script that runs longer than [`INSTRUCTION_BUDGET`] VM instructions is
//! stopped with an error (Redis would report a busy script; a simulation must
//! not hang).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, VmState};

use super::keyspace::{format_g17, Keyspace};
use super::{Now, Reply};

/// VM instructions a script may run (a few hundred milliseconds of Lua).
pub const INSTRUCTION_BUDGET: u64 = 50_000_000;

/// How often the budget is checked, in instructions.
const BUDGET_STEP: u32 = 100_000;

/// What a running script's `redis.call` reaches: the keyspace, the caller's
/// database and the script's (frozen) time.
#[derive(Debug)]
struct Context {
    keyspace: Rc<RefCell<Keyspace>>,
    db: Cell<usize>,
    now: Cell<Now>,
}

/// The Lua state, its compiled scripts by SHA-1, and the runner.
pub struct Scripting {
    lua: Lua,
    scripts: BTreeMap<String, Function>,
    runner: Function,
    context: Rc<Context>,
    spent: Rc<Cell<u64>>,
}

impl std::fmt::Debug for Scripting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripting")
            .field("scripts", &self.scripts.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The hex SHA-1 of `bytes` (a script's name in `EVALSHA`).
pub fn sha1_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The Lua side of `redis.call` and `redis.pcall` over the raw command
/// function (which returns the converted reply and whether it is an error),
/// and the runner that calls a script under `pcall`.
const PRELUDE: &str = r#"
local raw, redis = ...
redis.pcall = function(...)
  local reply = raw(...)
  return reply
end
redis.call = function(...)
  local reply, failed, line = raw(...)
  if failed then
    reply.line = line
    error(reply, 0)
  end
  return reply
end
redis.error_reply = function(message)
  if type(message) ~= 'string' then error('wrong number or type of arguments', 2) end
  return { err = message }
end
redis.status_reply = function(message)
  if type(message) ~= 'string' then error('wrong number or type of arguments', 2) end
  return { ok = message }
end
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.log = function() end
return function(f) return pcall(f) end
"#;

impl Scripting {
    /// A Lua state with the base, table, string and math libraries and the
    /// `redis` table, over `keyspace`.
    pub fn new(keyspace: Rc<RefCell<Keyspace>>) -> mlua::Result<Scripting> {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::default(),
        )?;
        let context = Rc::new(Context {
            keyspace,
            db: Cell::new(0),
            now: Cell::new(Now::default()),
        });
        let raw = {
            let context = context.clone();
            lua.create_function(move |lua, args: MultiValue| {
                let reply = match command_args(&args) {
                    Ok(args) => run_command(&context, &args),
                    Err(e) => Reply::Error(e),
                };
                let failed = matches!(reply, Reply::Error(_));
                let line = if failed { script_line(lua) } else { None };
                Ok((reply_to_lua(lua, &reply)?, failed, line))
            })?
        };
        let redis = lua.create_table()?;
        redis.set(
            "sha1hex",
            lua.create_function(|_, s: mlua::LuaString| Ok(sha1_hex(&s.as_bytes())))?,
        )?;
        lua.globals().set("redis", redis.clone())?;
        let runner: Function = lua.load(PRELUDE).set_name("=redis").call((raw, redis))?;
        let spent = Rc::new(Cell::new(0u64));
        {
            let spent = spent.clone();
            lua.set_hook(
                HookTriggers::new().every_nth_instruction(BUDGET_STEP),
                move |_, _| {
                    let now = spent.get() + u64::from(BUDGET_STEP);
                    spent.set(now);
                    if now > INSTRUCTION_BUDGET {
                        Err(mlua::Error::runtime(
                            "script killed: it ran past the stand-in's instruction budget",
                        ))
                    } else {
                        Ok(VmState::Continue)
                    }
                },
            )?;
        }
        Ok(Scripting {
            lua,
            scripts: BTreeMap::new(),
            runner,
            context,
            spent,
        })
    }

    /// Compiles `body` and keeps it under its SHA-1, which it returns.
    pub fn load(&mut self, body: &[u8]) -> Result<String, Reply> {
        let sha = sha1_hex(body);
        if !self.scripts.contains_key(&sha) {
            let function = self
                .lua
                .load(body)
                .set_name("@user_script")
                .into_function()
                .map_err(|e| {
                    Reply::Error(format!(
                        "ERR Error compiling script (new function): {}",
                        first_line(&e)
                    ))
                })?;
            self.scripts.insert(sha.clone(), function);
        }
        Ok(sha)
    }

    /// Whether a script is known by `sha`.
    pub fn exists(&self, sha: &[u8]) -> bool {
        std::str::from_utf8(sha)
            .is_ok_and(|sha| self.scripts.contains_key(&sha.to_ascii_lowercase()))
    }

    /// Forgets every script.
    pub fn flush(&mut self) {
        self.scripts.clear();
    }

    /// Runs the script `sha` with `keys` and `argv` on database `db` at `now`.
    pub fn run(
        &mut self,
        sha: &[u8],
        keys: &[Vec<u8>],
        argv: &[Vec<u8>],
        db: usize,
        now: Now,
    ) -> Reply {
        let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
        let Some(function) = self.scripts.get(&sha) else {
            return Reply::Error("NOSCRIPT No matching script. Please use EVAL.".into());
        };
        self.context.db.set(db);
        self.context.now.set(now);
        self.spent.set(0);
        match self.call(function, keys, argv) {
            Ok(Ok(reply)) => reply,
            Ok(Err((message, line))) => Reply::Error(located(&message, &sha, line)),
            Err(e) => Reply::Error(located(&format!("ERR {}", first_line(&e)), &sha, None)),
        }
    }

    /// The script's reply, or its error's message and the line it came from.
    fn call(
        &self,
        function: &Function,
        keys: &[Vec<u8>],
        argv: &[Vec<u8>],
    ) -> mlua::Result<Result<Reply, (String, Option<usize>)>> {
        let globals = self.lua.globals();
        globals.set("KEYS", self.strings(keys)?)?;
        globals.set("ARGV", self.strings(argv)?)?;
        let mut results = self
            .runner
            .call::<MultiValue>(function.clone())?
            .into_iter();
        let ok = matches!(results.next(), Some(mlua::Value::Boolean(true)));
        let value = results.next().unwrap_or(mlua::Value::Nil);
        if ok {
            return Ok(Ok(lua_to_reply(&value)));
        }
        Ok(Err(match &value {
            mlua::Value::Table(t) => match t.raw_get::<mlua::Value>("err")? {
                mlua::Value::String(s) => {
                    let message = match error_reply(&s.as_bytes()) {
                        Reply::Error(m) => m,
                        _ => String::new(),
                    };
                    (message, t.raw_get::<Option<usize>>("line").ok().flatten())
                }
                _ => ("ERR unknown error".into(), None),
            },
            mlua::Value::String(s) => {
                let text = s.to_string_lossy();
                let line = line_of(&text);
                (format!("ERR {text}"), line)
            }
            mlua::Value::Error(e) => {
                let text = first_line(e);
                let line = line_of(&text);
                (format!("ERR {text}"), line)
            }
            other => (
                format!("ERR {}", other.to_string().unwrap_or_default()),
                None,
            ),
        }))
    }

    fn strings(&self, items: &[Vec<u8>]) -> mlua::Result<Table> {
        let table = self.lua.create_table_with_capacity(items.len(), 0)?;
        for (i, item) in items.iter().enumerate() {
            table.raw_set(i + 1, self.lua.create_string(item)?)?;
        }
        Ok(table)
    }
}

/// An uncaught script error as Redis 7.0 words it: the message, then the
/// script and the line.
fn located(message: &str, sha: &str, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{message} script: {sha}, on @user_script:{line}."),
        None => format!("{message} script: {sha}"),
    }
}

/// The line of `user_script:N: ...`, Lua's position in an error message.
fn line_of(text: &str) -> Option<usize> {
    let rest = text.split("user_script:").nth(1)?;
    rest.split(':').next()?.parse().ok()
}

/// The line the running script is at (the innermost frame of the script).
fn script_line(lua: &Lua) -> Option<usize> {
    (0..32).find_map(|level| {
        lua.inspect_stack(level, |debug| {
            (debug.source().source.as_deref() == Some("@user_script"))
                .then(|| debug.current_line())
                .flatten()
        })
        .flatten()
    })
}

fn first_line(e: &mlua::Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_owned()
}

/// An error reply from a script's `{err = ...}`: its text, without a leading
/// `-`.
fn error_reply(message: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(message);
    let text = text.strip_prefix('-').unwrap_or(&text);
    // Redis keeps one line of an error.
    Reply::Error(text.lines().next().unwrap_or_default().to_owned())
}

/// A command's arguments from Lua: strings and numbers only.
fn command_args(args: &MultiValue) -> Result<Vec<Vec<u8>>, String> {
    if args.is_empty() {
        return Err("ERR Please specify at least one argument for this redis lib call".into());
    }
    args.iter()
        .map(|v| match v {
            mlua::Value::String(s) => Ok(s.as_bytes().to_vec()),
            mlua::Value::Integer(i) => Ok(i.to_string().into_bytes()),
            mlua::Value::Number(n) => Ok(format_g17(*n).into_bytes()),
            _ => Err("ERR Lua redis lib command arguments must be strings or integers".into()),
        })
        .collect()
}

/// Runs one command from a script.
fn run_command(context: &Context, args: &[Vec<u8>]) -> Reply {
    let Some(name) = args.first() else {
        return Reply::Error("ERR Please specify at least one argument".into());
    };
    let name = String::from_utf8_lossy(name).to_ascii_uppercase();
    let now = context.now.get();
    match name.as_str() {
        "TIME" => return now.time_reply(),
        "PING" => return Reply::Status("PONG".into()),
        "SELECT" => {
            return match args.get(1).map(|db| super::keyspace::parse_int(db)) {
                Some(Ok(db)) if (0..super::keyspace::DATABASES as i64).contains(&db) => {
                    context.db.set(db as usize);
                    Reply::Status("OK".into())
                }
                Some(Ok(_)) => Reply::Error("ERR DB index is out of range".into()),
                Some(Err(e)) => e,
                None => Reply::Error("ERR wrong number of arguments for 'select' command".into()),
            };
        }
        "DBSIZE" => {
            return match context.keyspace.try_borrow_mut() {
                Ok(mut ks) => match ks.dbs.get_mut(context.db.get()) {
                    Some(db) => Reply::Int(db.len(now.unix_ms()) as i64),
                    None => Reply::Int(0),
                },
                Err(_) => Reply::Error("ERR the keyspace is busy".into()),
            }
        }
        _ => {}
    }
    let Ok(mut keyspace) = context.keyspace.try_borrow_mut() else {
        return Reply::Error("ERR the keyspace is busy".into());
    };
    match keyspace.command(context.db.get(), args, now) {
        Some(reply) => reply,
        None if super::server::KNOWN.contains(&name.as_str()) => {
            Reply::Error("ERR This Redis command is not allowed from script".into())
        }
        None => Reply::Error("ERR Unknown Redis command called from script".into()),
    }
}

/// A reply as a script sees it.
fn reply_to_lua(lua: &Lua, reply: &Reply) -> mlua::Result<mlua::Value> {
    Ok(match reply {
        Reply::Int(n) => mlua::Value::Number(*n as f64),
        Reply::Bulk(b) => mlua::Value::String(lua.create_string(b)?),
        Reply::Nil => mlua::Value::Boolean(false),
        Reply::Status(s) => {
            let t = lua.create_table()?;
            t.raw_set("ok", s.as_str())?;
            mlua::Value::Table(t)
        }
        Reply::Error(e) => {
            let t = lua.create_table()?;
            t.raw_set("err", e.as_str())?;
            mlua::Value::Table(t)
        }
        Reply::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, reply_to_lua(lua, item)?)?;
            }
            mlua::Value::Table(t)
        }
    })
}

/// A script's result as a reply.
fn lua_to_reply(value: &mlua::Value) -> Reply {
    match value {
        mlua::Value::Integer(i) => Reply::Int(*i),
        // Truncated toward zero, saturating, as C's cast in Redis.
        mlua::Value::Number(n) => Reply::Int(*n as i64),
        mlua::Value::String(s) => Reply::Bulk(s.as_bytes().to_vec()),
        mlua::Value::Boolean(true) => Reply::Int(1),
        mlua::Value::Table(t) => {
            if let Ok(mlua::Value::String(e)) = t.raw_get::<mlua::Value>("err") {
                return error_reply(&e.as_bytes());
            }
            if let Ok(mlua::Value::String(s)) = t.raw_get::<mlua::Value>("ok") {
                return Reply::Status(s.to_string_lossy());
            }
            let mut items = Vec::new();
            for i in 1.. {
                match t.raw_get::<mlua::Value>(i) {
                    Ok(mlua::Value::Nil) | Err(_) => break,
                    Ok(v) => items.push(lua_to_reply(&v)),
                }
            }
            Reply::Array(items)
        }
        _ => Reply::Nil,
    }
}
