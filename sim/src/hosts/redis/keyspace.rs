//! The stand-in's data: sixteen databases of keys holding strings, hashes or
//! sorted sets, each key with an optional expiry on simulated time, and the
//! data commands over them (what both a connection and a script's
//! `redis.call` run).
//!
//! Keys expire as Redis's do: a key whose deadline (Unix milliseconds) is
//! strictly before now is gone; it is removed when touched, and every so many
//! commands a sweep removes the rest.

use std::collections::{BTreeMap, BTreeSet};

use super::{Now, Reply};

/// Databases `SELECT` reaches (Redis's default `databases 16`).
pub const DATABASES: usize = 16;

/// Commands between two sweeps of expired keys.
const SWEEP_EVERY: u64 = 4096;

/// The reply to a command on a key of another type.
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
const OVERFLOW: &str = "ERR increment or decrement would overflow";
const SYNTAX: &str = "ERR syntax error";

/// A score in a sorted set, ordered totally (no NaN is ever stored).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score(pub f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// A sorted set: members with their scores, and the same ordered by
/// (score, member) as Redis orders them.
#[derive(Debug, Clone, Default)]
pub struct SortedSet {
    scores: BTreeMap<Vec<u8>, Score>,
    order: BTreeSet<(Score, Vec<u8>)>,
}

impl SortedSet {
    fn insert(&mut self, member: &[u8], score: f64) {
        if let Some(old) = self.scores.insert(member.to_vec(), Score(score)) {
            self.order.remove(&(old, member.to_vec()));
        }
        self.order.insert((Score(score), member.to_vec()));
    }

    fn remove(&mut self, member: &[u8]) -> bool {
        match self.scores.remove(member) {
            Some(old) => {
                self.order.remove(&(old, member.to_vec()));
                true
            }
            None => false,
        }
    }

    fn len(&self) -> usize {
        self.scores.len()
    }
}

/// What a key holds.
#[derive(Debug, Clone)]
pub enum Value {
    Str(Vec<u8>),
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    ZSet(SortedSet),
}

/// A key's value and its deadline (Unix milliseconds), if it has one.
#[derive(Debug, Clone)]
pub struct Entry {
    pub value: Value,
    pub expires_ms: Option<u64>,
}

/// One database.
#[derive(Debug, Clone, Default)]
pub struct Db {
    keys: BTreeMap<Vec<u8>, Entry>,
}

impl Db {
    /// The live entry of `key`, removing it if it expired.
    fn live(&mut self, key: &[u8], now_ms: u64) -> Option<&mut Entry> {
        let expired = self
            .keys
            .get(key)
            .is_some_and(|e| e.expires_ms.is_some_and(|at| at < now_ms));
        if expired {
            self.keys.remove(key);
            return None;
        }
        self.keys.get_mut(key)
    }

    fn sweep(&mut self, now_ms: u64) {
        self.keys
            .retain(|_, e| e.expires_ms.is_none_or(|at| at >= now_ms));
    }

    /// Live keys.
    pub fn len(&mut self, now_ms: u64) -> usize {
        self.sweep(now_ms);
        self.keys.len()
    }
}

/// Every database, and the count of commands that paces the sweeps.
#[derive(Debug)]
pub struct Keyspace {
    pub dbs: Vec<Db>,
    commands: u64,
}

impl Default for Keyspace {
    fn default() -> Self {
        Keyspace {
            dbs: vec![Db::default(); DATABASES],
            commands: 0,
        }
    }
}

fn error(message: impl Into<String>) -> Reply {
    Reply::Error(message.into())
}

fn arity(name: &str) -> Reply {
    error(format!(
        "ERR wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    ))
}

/// An integer argument, as strictly as Redis reads one.
pub fn parse_int(raw: &[u8]) -> Result<i64, Reply> {
    let text = std::str::from_utf8(raw).map_err(|_| error(NOT_INTEGER))?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0";
    if !canonical {
        return Err(error(NOT_INTEGER));
    }
    text.parse().map_err(|_| error(NOT_INTEGER))
}

/// A float argument (`inf`, `+inf` and `-inf` included, never NaN).
pub fn parse_float(raw: &[u8], message: &str) -> Result<f64, Reply> {
    let text = std::str::from_utf8(raw).map_err(|_| error(message))?;
    let value = match text.to_ascii_lowercase().as_str() {
        "inf" | "+inf" => f64::INFINITY,
        "-inf" => f64::NEG_INFINITY,
        t if t.is_empty() || t.contains(|c: char| c.is_ascii_whitespace() || c == 'n') => {
            // (No "nan", "infinity" or spaces.)
            return Err(error(message));
        }
        t => t.parse().map_err(|_| error(message))?,
    };
    if value.is_nan() {
        return Err(error(message));
    }
    Ok(value)
}

/// A score as Redis 7.0 replies it: `%.17g` (so `0.1` reads
/// `0.10000000000000001`, as from a real Redis 7.0).
pub fn format_score(score: f64) -> String {
    format_g17(score)
}

/// A number as `%.17g` writes it (how Redis turns a Lua number argument into
/// text).
pub fn format_g17(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let scientific = format!("{x:.16e}");
    let (mantissa, exp) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s.to_owned()
        }
    };
    if !(-4..17).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
    } else {
        let decimals = (16 - exp).max(0) as usize;
        trim(&format!("{x:.decimals$}"))
    }
}

/// A score range bound: `(` makes it exclusive.
#[derive(Debug, Clone, Copy)]
struct Bound {
    value: f64,
    exclusive: bool,
}

fn parse_bound(raw: &[u8]) -> Result<Bound, Reply> {
    const MESSAGE: &str = "ERR min or max is not a float";
    match raw.strip_prefix(b"(") {
        Some(rest) => Ok(Bound {
            value: parse_float(rest, MESSAGE)?,
            exclusive: true,
        }),
        None => Ok(Bound {
            value: parse_float(raw, MESSAGE)?,
            exclusive: false,
        }),
    }
}

fn in_range(score: f64, min: Bound, max: Bound) -> bool {
    let above = if min.exclusive {
        score > min.value
    } else {
        score >= min.value
    };
    let below = if max.exclusive {
        score < max.value
    } else {
        score <= max.value
    };
    above && below
}

/// How an expiry is written.
#[derive(Debug, Clone, Copy)]
enum Unit {
    Seconds,
    Millis,
    UnixSeconds,
    UnixMillis,
}

/// The deadline (Unix milliseconds) of `amount` in `unit` from now; `None`
/// when it overflows.
fn deadline(amount: i64, unit: Unit, now_ms: u64) -> Option<i64> {
    let now = i64::try_from(now_ms).ok()?;
    match unit {
        Unit::Seconds => amount.checked_mul(1000)?.checked_add(now),
        Unit::Millis => amount.checked_add(now),
        Unit::UnixSeconds => amount.checked_mul(1000),
        Unit::UnixMillis => Some(amount),
    }
}

impl Keyspace {
    /// Runs data command `args` (name first) on database `db` at `now`; `None`
    /// when it is not a data command.
    pub fn command(&mut self, db: usize, args: &[Vec<u8>], now: Now) -> Option<Reply> {
        let name = String::from_utf8_lossy(args.first()?).to_ascii_uppercase();
        let now_ms = now.unix_ms();
        self.commands += 1;
        if self.commands.is_multiple_of(SWEEP_EVERY) {
            for db in &mut self.dbs {
                db.sweep(now_ms);
            }
        }
        let db = self.dbs.get_mut(db)?;
        let a = &args[1..];
        let reply = match name.as_str() {
            "GET" => one_key(&name, a, |k| get(db, k, now_ms)),
            "SET" => set(db, a, now_ms),
            "DEL" | "UNLINK" => at_least(&name, a, 1, || {
                let n = a
                    .iter()
                    .filter(|k| db.live(k, now_ms).is_some() && db.keys.remove(*k).is_some())
                    .count();
                Reply::Int(n as i64)
            }),
            "EXISTS" => at_least(&name, a, 1, || {
                Reply::Int(a.iter().filter(|k| db.live(k, now_ms).is_some()).count() as i64)
            }),
            "INCR" => one_key(&name, a, |k| incr_by(db, k, 1, now_ms)),
            "DECR" => one_key(&name, a, |k| incr_by(db, k, -1, now_ms)),
            "INCRBY" | "DECRBY" => match a {
                [key, by] => match parse_int(by) {
                    Ok(by) if name == "INCRBY" => incr_by(db, key, by, now_ms),
                    Ok(by) => match by.checked_neg() {
                        Some(by) => incr_by(db, key, by, now_ms),
                        None => error("ERR decrement would overflow"),
                    },
                    Err(e) => e,
                },
                _ => arity(&name),
            },
            "PTTL" => one_key(&name, a, |k| ttl(db, k, now_ms, false)),
            "TTL" => one_key(&name, a, |k| ttl(db, k, now_ms, true)),
            "PERSIST" => one_key(&name, a, |k| match db.live(k, now_ms) {
                Some(e) if e.expires_ms.is_some() => {
                    e.expires_ms = None;
                    Reply::Int(1)
                }
                _ => Reply::Int(0),
            }),
            "EXPIRE" => expire(db, &name, a, Unit::Seconds, now_ms),
            "PEXPIRE" => expire(db, &name, a, Unit::Millis, now_ms),
            "EXPIREAT" => expire(db, &name, a, Unit::UnixSeconds, now_ms),
            "PEXPIREAT" => expire(db, &name, a, Unit::UnixMillis, now_ms),
            "HGET" => match a {
                [key, field] => match hash(db, key, now_ms) {
                    Ok(Some(h)) => h.get(field).map_or(Reply::Nil, |v| Reply::Bulk(v.clone())),
                    Ok(None) => Reply::Nil,
                    Err(e) => e,
                },
                _ => arity(&name),
            },
            "HMGET" => at_least(&name, a, 2, || match hash(db, &a[0], now_ms) {
                Ok(h) => Reply::Array(
                    a[1..]
                        .iter()
                        .map(|f| {
                            h.as_ref()
                                .and_then(|h| h.get(f))
                                .map_or(Reply::Nil, |v| Reply::Bulk(v.clone()))
                        })
                        .collect(),
                ),
                Err(e) => e,
            }),
            "HSET" | "HMSET" => {
                if a.len() < 3 || a.len().is_multiple_of(2) {
                    arity(&name)
                } else {
                    match hash_for_write(db, &a[0], now_ms) {
                        Ok(h) => {
                            let added = a[1..]
                                .chunks(2)
                                .filter(|p| h.insert(p[0].clone(), p[1].clone()).is_none())
                                .count();
                            if name == "HSET" {
                                Reply::Int(added as i64)
                            } else {
                                Reply::Status("OK".into())
                            }
                        }
                        Err(e) => e,
                    }
                }
            }
            "HINCRBY" => match a {
                [key, field, by] => match parse_int(by) {
                    Ok(by) => hincr_by(db, key, field, by, now_ms),
                    Err(e) => e,
                },
                _ => arity(&name),
            },
            "HGETALL" => one_key(&name, a, |k| match hash(db, k, now_ms) {
                Ok(h) => Reply::Array(
                    h.into_iter()
                        .flat_map(|h| h.iter())
                        .flat_map(|(f, v)| [Reply::Bulk(f.clone()), Reply::Bulk(v.clone())])
                        .collect(),
                ),
                Err(e) => e,
            }),
            "HDEL" => at_least(&name, a, 2, || match hash(db, &a[0], now_ms) {
                Ok(Some(h)) => {
                    let n = a[1..].iter().filter(|f| h.remove(*f).is_some()).count();
                    if h.is_empty() {
                        db.keys.remove(&a[0]);
                    }
                    Reply::Int(n as i64)
                }
                Ok(None) => Reply::Int(0),
                Err(e) => e,
            }),
            "HLEN" => one_key(&name, a, |k| match hash(db, k, now_ms) {
                Ok(h) => Reply::Int(h.map_or(0, |h| h.len()) as i64),
                Err(e) => e,
            }),
            "ZADD" => zadd(db, a, now_ms),
            "ZREM" => at_least(&name, a, 2, || match zset(db, &a[0], now_ms) {
                Ok(Some(z)) => {
                    let n = a[1..].iter().filter(|m| z.remove(m)).count();
                    if z.len() == 0 {
                        db.keys.remove(&a[0]);
                    }
                    Reply::Int(n as i64)
                }
                Ok(None) => Reply::Int(0),
                Err(e) => e,
            }),
            "ZCARD" => one_key(&name, a, |k| match zset(db, k, now_ms) {
                Ok(z) => Reply::Int(z.map_or(0, |z| z.len()) as i64),
                Err(e) => e,
            }),
            "ZSCORE" => match a {
                [key, member] => match zset(db, key, now_ms) {
                    Ok(z) => z
                        .and_then(|z| z.scores.get(member))
                        .map_or(Reply::Nil, |s| Reply::Bulk(format_score(s.0).into_bytes())),
                    Err(e) => e,
                },
                _ => arity(&name),
            },
            "ZREMRANGEBYSCORE" => match a {
                [key, min, max] => match (parse_bound(min), parse_bound(max)) {
                    (Ok(min), Ok(max)) => match zset(db, key, now_ms) {
                        Ok(Some(z)) => {
                            let gone: Vec<Vec<u8>> = z
                                .order
                                .iter()
                                .filter(|(s, _)| in_range(s.0, min, max))
                                .map(|(_, m)| m.clone())
                                .collect();
                            for m in &gone {
                                z.remove(m);
                            }
                            if z.len() == 0 {
                                db.keys.remove(key);
                            }
                            Reply::Int(gone.len() as i64)
                        }
                        Ok(None) => Reply::Int(0),
                        Err(e) => e,
                    },
                    (Err(e), _) | (_, Err(e)) => e,
                },
                _ => arity(&name),
            },
            "ZRANGEBYSCORE" => zrange_by_score(db, a, now_ms),
            _ => return None,
        };
        Some(reply)
    }
}

fn one_key(name: &str, a: &[Vec<u8>], f: impl FnOnce(&[u8]) -> Reply) -> Reply {
    match a {
        [key] => f(key),
        _ => arity(name),
    }
}

fn at_least(name: &str, a: &[Vec<u8>], n: usize, f: impl FnOnce() -> Reply) -> Reply {
    if a.len() < n {
        arity(name)
    } else {
        f()
    }
}

fn get(db: &mut Db, key: &[u8], now_ms: u64) -> Reply {
    match db.live(key, now_ms) {
        None => Reply::Nil,
        Some(Entry {
            value: Value::Str(s),
            ..
        }) => Reply::Bulk(s.clone()),
        Some(_) => error(WRONGTYPE),
    }
}

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]`.
fn set(db: &mut Db, a: &[Vec<u8>], now_ms: u64) -> Reply {
    let [key, value, options @ ..] = a else {
        return arity("SET");
    };
    let (mut nx, mut xx, mut keep_ttl, mut get_old) = (false, false, false, false);
    let mut expiry: Option<(Unit, i64)> = None;
    let mut i = 0;
    while i < options.len() {
        let option = String::from_utf8_lossy(&options[i]).to_ascii_uppercase();
        let unit = match option.as_str() {
            "NX" if !xx => {
                nx = true;
                None
            }
            "XX" if !nx => {
                xx = true;
                None
            }
            "GET" => {
                get_old = true;
                None
            }
            "KEEPTTL" if expiry.is_none() => {
                keep_ttl = true;
                None
            }
            "EX" => Some(Unit::Seconds),
            "PX" => Some(Unit::Millis),
            "EXAT" => Some(Unit::UnixSeconds),
            "PXAT" => Some(Unit::UnixMillis),
            _ => return error(SYNTAX),
        };
        if let Some(unit) = unit {
            if expiry.is_some() || keep_ttl {
                return error(SYNTAX);
            }
            let Some(amount) = options.get(i + 1) else {
                return error(SYNTAX);
            };
            match parse_int(amount) {
                Ok(n) => expiry = Some((unit, n)),
                Err(e) => return e,
            }
            i += 1;
        }
        i += 1;
    }
    let expires_ms = match expiry {
        None => None,
        Some((unit, n)) => match deadline(n, unit, now_ms) {
            Some(at) if n > 0 && at > 0 => Some(at as u64),
            _ => return error("ERR invalid expire time in 'set' command"),
        },
    };
    let old = db
        .live(key, now_ms)
        .map(|e| (e.value.clone(), e.expires_ms));
    let old_value = match (&old, get_old) {
        (Some((Value::Str(s), _)), true) => Reply::Bulk(s.clone()),
        (Some(_), true) => return error(WRONGTYPE),
        _ => Reply::Nil,
    };
    if (nx && old.is_some()) || (xx && old.is_none()) {
        return if get_old { old_value } else { Reply::Nil };
    }
    let expires_ms = if keep_ttl {
        old.and_then(|(_, at)| at)
    } else {
        expires_ms
    };
    db.keys.insert(
        key.clone(),
        Entry {
            value: Value::Str(value.clone()),
            expires_ms,
        },
    );
    if get_old {
        old_value
    } else {
        Reply::Status("OK".into())
    }
}

fn incr_by(db: &mut Db, key: &[u8], by: i64, now_ms: u64) -> Reply {
    match db.live(key, now_ms) {
        None => {
            db.keys.insert(
                key.to_vec(),
                Entry {
                    value: Value::Str(by.to_string().into_bytes()),
                    expires_ms: None,
                },
            );
            Reply::Int(by)
        }
        Some(Entry {
            value: Value::Str(s),
            ..
        }) => match parse_int(s) {
            Ok(n) => match n.checked_add(by) {
                Some(n) => {
                    *s = n.to_string().into_bytes();
                    Reply::Int(n)
                }
                None => error(OVERFLOW),
            },
            Err(e) => e,
        },
        Some(_) => error(WRONGTYPE),
    }
}

fn ttl(db: &mut Db, key: &[u8], now_ms: u64, seconds: bool) -> Reply {
    match db.live(key, now_ms) {
        None => Reply::Int(-2),
        Some(Entry {
            expires_ms: None, ..
        }) => Reply::Int(-1),
        Some(Entry {
            expires_ms: Some(at),
            ..
        }) => {
            let left = at.saturating_sub(now_ms) as i64;
            Reply::Int(if seconds { (left + 500) / 1000 } else { left })
        }
    }
}

/// `(P)EXPIRE(AT) key amount [NX|XX|GT|LT]`.
fn expire(db: &mut Db, name: &str, a: &[Vec<u8>], unit: Unit, now_ms: u64) -> Reply {
    let [key, amount, options @ ..] = a else {
        return arity(name);
    };
    let amount = match parse_int(amount) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let mut flags = Vec::new();
    for option in options {
        let option = String::from_utf8_lossy(option).to_ascii_uppercase();
        if !matches!(option.as_str(), "NX" | "XX" | "GT" | "LT") {
            return error(format!("ERR Unsupported option {option}"));
        }
        flags.push(option);
    }
    let has = |f: &str| flags.iter().any(|x| x == f);
    if (has("NX") && flags.len() > 1) || (has("GT") && has("LT")) {
        return error("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    let Some(at) = deadline(amount, unit, now_ms) else {
        return error(format!(
            "ERR invalid expire time in '{}' command",
            name.to_ascii_lowercase()
        ));
    };
    let Some(entry) = db.live(key, now_ms) else {
        return Reply::Int(0);
    };
    // A missing deadline counts as infinite for GT and LT.
    let current = entry.expires_ms.map(|c| c as i64);
    let allowed = (!has("NX") || current.is_none())
        && (!has("XX") || current.is_some())
        && (!has("GT") || current.is_some_and(|c| at > c))
        && (!has("LT") || current.is_none_or(|c| at < c));
    if !allowed {
        return Reply::Int(0);
    }
    if at <= now_ms as i64 {
        db.keys.remove(key);
    } else {
        entry.expires_ms = Some(at as u64);
    }
    Reply::Int(1)
}

type Hash = BTreeMap<Vec<u8>, Vec<u8>>;

fn hash<'a>(db: &'a mut Db, key: &[u8], now_ms: u64) -> Result<Option<&'a mut Hash>, Reply> {
    match db.live(key, now_ms) {
        None => Ok(None),
        Some(Entry {
            value: Value::Hash(h),
            ..
        }) => Ok(Some(h)),
        Some(_) => Err(error(WRONGTYPE)),
    }
}

fn hash_for_write<'a>(db: &'a mut Db, key: &[u8], now_ms: u64) -> Result<&'a mut Hash, Reply> {
    if db.live(key, now_ms).is_none() {
        db.keys.insert(
            key.to_vec(),
            Entry {
                value: Value::Hash(Hash::new()),
                expires_ms: None,
            },
        );
    }
    hash(db, key, now_ms)?.ok_or_else(|| error("ERR the hash vanished"))
}

fn hincr_by(db: &mut Db, key: &[u8], field: &[u8], by: i64, now_ms: u64) -> Reply {
    let h = match hash_for_write(db, key, now_ms) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let current = match h.get(field) {
        None => 0,
        Some(v) => match parse_int(v) {
            Ok(n) => n,
            Err(_) => return error("ERR hash value is not an integer"),
        },
    };
    match current.checked_add(by) {
        Some(n) => {
            h.insert(field.to_vec(), n.to_string().into_bytes());
            Reply::Int(n)
        }
        None => error(OVERFLOW),
    }
}

fn zset<'a>(db: &'a mut Db, key: &[u8], now_ms: u64) -> Result<Option<&'a mut SortedSet>, Reply> {
    match db.live(key, now_ms) {
        None => Ok(None),
        Some(Entry {
            value: Value::ZSet(z),
            ..
        }) => Ok(Some(z)),
        Some(_) => Err(error(WRONGTYPE)),
    }
}

/// `ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]`.
fn zadd(db: &mut Db, a: &[Vec<u8>], now_ms: u64) -> Reply {
    let Some((key, rest)) = a.split_first() else {
        return arity("ZADD");
    };
    let mut flags = Vec::new();
    let mut i = 0;
    while let Some(option) = rest.get(i) {
        let option = String::from_utf8_lossy(option).to_ascii_uppercase();
        if !matches!(option.as_str(), "NX" | "XX" | "GT" | "LT" | "CH" | "INCR") {
            break;
        }
        flags.push(option);
        i += 1;
    }
    let pairs = &rest[i..];
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return if pairs.is_empty() {
            arity("ZADD")
        } else {
            error(SYNTAX)
        };
    }
    let has = |f: &str| flags.iter().any(|x| x == f);
    if has("NX") && has("XX") {
        return error("ERR XX and NX options at the same time are not compatible");
    }
    if (has("GT") && has("LT")) || (has("NX") && (has("GT") || has("LT"))) {
        return error("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if has("INCR") && pairs.len() != 2 {
        return error("ERR INCR option supports a single increment-element pair");
    }
    let mut parsed = Vec::with_capacity(pairs.len() / 2);
    for pair in pairs.chunks(2) {
        match parse_float(&pair[0], "ERR value is not a valid float") {
            Ok(score) => parsed.push((score, &pair[1])),
            Err(e) => return e,
        }
    }
    if zset(db, key, now_ms).is_err() {
        return error(WRONGTYPE);
    }
    if db.live(key, now_ms).is_none() {
        if has("XX") {
            return if has("INCR") {
                Reply::Nil
            } else {
                Reply::Int(0)
            };
        }
        db.keys.insert(
            key.clone(),
            Entry {
                value: Value::ZSet(SortedSet::default()),
                expires_ms: None,
            },
        );
    }
    let Ok(Some(z)) = zset(db, key, now_ms) else {
        return error("ERR the sorted set vanished");
    };
    let (mut added, mut changed) = (0i64, 0i64);
    let mut incr_result = Reply::Nil;
    for (score, member) in parsed {
        let old = z.scores.get(member.as_slice()).map(|s| s.0);
        let new = if has("INCR") {
            let sum = old.unwrap_or(0.0) + score;
            if sum.is_nan() {
                return error("ERR resulting score is not a number (NaN)");
            }
            sum
        } else {
            score
        };
        let allowed = match old {
            None => !has("XX"),
            Some(old) => !has("NX") && (!has("GT") || new > old) && (!has("LT") || new < old),
        };
        if !allowed {
            continue;
        }
        match old {
            None => {
                added += 1;
                changed += 1;
            }
            Some(old) if old != new => changed += 1,
            Some(_) => {}
        }
        z.insert(member, new);
        incr_result = Reply::Bulk(format_score(new).into_bytes());
    }
    if z.len() == 0 {
        db.keys.remove(key.as_slice());
    }
    if has("INCR") {
        incr_result
    } else if has("CH") {
        Reply::Int(changed)
    } else {
        Reply::Int(added)
    }
}

/// `ZRANGEBYSCORE key min max [WITHSCORES] [LIMIT offset count]`.
fn zrange_by_score(db: &mut Db, a: &[Vec<u8>], now_ms: u64) -> Reply {
    let [key, min, max, options @ ..] = a else {
        return arity("ZRANGEBYSCORE");
    };
    let (min, max) = match (parse_bound(min), parse_bound(max)) {
        (Ok(min), Ok(max)) => (min, max),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let mut with_scores = false;
    let mut limit: Option<(i64, i64)> = None;
    let mut i = 0;
    while let Some(option) = options.get(i) {
        match String::from_utf8_lossy(option)
            .to_ascii_uppercase()
            .as_str()
        {
            "WITHSCORES" => with_scores = true,
            "LIMIT" => {
                let (Some(offset), Some(count)) = (options.get(i + 1), options.get(i + 2)) else {
                    return error(SYNTAX);
                };
                match (parse_int(offset), parse_int(count)) {
                    (Ok(o), Ok(c)) => limit = Some((o, c)),
                    (Err(e), _) | (_, Err(e)) => return e,
                }
                i += 2;
            }
            _ => return error(SYNTAX),
        }
        i += 1;
    }
    let z = match zset(db, key, now_ms) {
        Ok(Some(z)) => z,
        Ok(None) => return Reply::Array(Vec::new()),
        Err(e) => return e,
    };
    let (offset, count) = limit.unwrap_or((0, -1));
    if offset < 0 {
        return Reply::Array(Vec::new());
    }
    let count = if count < 0 {
        usize::MAX
    } else {
        count as usize
    };
    let members = z
        .order
        .iter()
        .filter(|(s, _)| in_range(s.0, min, max))
        .skip(offset as usize)
        .take(count);
    let mut out = Vec::new();
    for (score, member) in members {
        out.push(Reply::Bulk(member.clone()));
        if with_scores {
            out.push(Reply::Bulk(format_score(score.0).into_bytes()));
        }
    }
    Reply::Array(out)
}
