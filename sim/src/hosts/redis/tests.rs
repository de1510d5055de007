//! The stand-in's command layer, driven directly (the network path is tested in
//! `sim/tests/redis_standin.rs`).

use super::keyspace::{format_g17, format_score};
use super::script::sha1_hex;
use super::{After, Now, RedisOptions, Reply, Server, Session};

const T0_MS: u64 = 1_800_000_000_000;

struct Fixture {
    server: Server,
    session: Session,
    now: Now,
}

fn fixture() -> Fixture {
    Fixture {
        server: Server::new(RedisOptions::default()).unwrap(),
        session: Session::default(),
        now: Now {
            unix_us: T0_MS * 1000,
        },
    }
}

impl Fixture {
    fn run(&mut self, args: &[&str]) -> Reply {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        self.server.execute(&mut self.session, &args, self.now).0
    }

    fn advance_ms(&mut self, ms: u64) {
        self.now.unix_us += ms * 1000;
    }
}

fn ok() -> Reply {
    Reply::Status("OK".into())
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(s.as_bytes().to_vec())
}

fn is_error(reply: &Reply, prefix: &str) -> bool {
    matches!(reply, Reply::Error(e) if e.starts_with(prefix))
}

#[test]
fn ping_echo_time_and_select() {
    let mut f = fixture();
    assert_eq!(f.run(&["PING"]), Reply::Status("PONG".into()));
    assert_eq!(f.run(&["ping", "hi"]), bulk("hi"));
    assert_eq!(f.run(&["ECHO", "x y"]), bulk("x y"));
    f.advance_ms(1); // a microsecond field that is not zero
    f.now.unix_us += 7;
    assert_eq!(
        f.run(&["TIME"]),
        Reply::Array(vec![bulk("1800000000"), bulk("1007")])
    );
    assert_eq!(f.run(&["SET", "k", "zero"]), ok());
    assert_eq!(f.run(&["SELECT", "3"]), ok());
    assert_eq!(f.run(&["GET", "k"]), Reply::Nil, "another database");
    assert!(is_error(&f.run(&["SELECT", "16"]), "ERR DB index"));
    assert!(is_error(
        &f.run(&["SELECT", "x"]),
        "ERR value is not an integer"
    ));
    assert_eq!(f.run(&["SELECT", "0"]), ok());
    assert_eq!(f.run(&["GET", "k"]), bulk("zero"));
    assert_eq!(f.run(&["CLIENT", "SETNAME", "gw0"]), ok());
    assert_eq!(f.run(&["CLIENT", "GETNAME"]), bulk("gw0"));
    assert!(is_error(
        &f.run(&["NOPE", "a"]),
        "ERR unknown command 'nope'"
    ));
    assert!(is_error(
        &f.run(&["GET"]),
        "ERR wrong number of arguments for 'get'"
    ));
    let args = vec![b"QUIT".to_vec()];
    assert_eq!(
        f.server.execute(&mut f.session, &args, f.now).1,
        After::Close
    );
}

#[test]
fn auth_with_and_without_a_password() {
    let mut f = fixture();
    assert!(is_error(
        &f.run(&["AUTH", "pw"]),
        "ERR AUTH <password> called without"
    ));
    assert_eq!(f.run(&["AUTH", "default", "anything"]), ok());

    let mut f = Fixture {
        server: Server::new(RedisOptions {
            password: Some("s3cret".into()),
        })
        .unwrap(),
        ..fixture()
    };
    assert!(is_error(&f.run(&["GET", "k"]), "NOAUTH"));
    assert!(is_error(&f.run(&["PING"]), "NOAUTH"));
    assert!(is_error(&f.run(&["AUTH", "wrong"]), "WRONGPASS"));
    assert!(is_error(&f.run(&["AUTH", "alice", "s3cret"]), "WRONGPASS"));
    assert!(is_error(&f.run(&["GET", "k"]), "NOAUTH"));
    assert_eq!(f.run(&["AUTH", "default", "s3cret"]), ok());
    assert_eq!(f.run(&["GET", "k"]), Reply::Nil);
    f.session = Session::default();
    assert_eq!(f.run(&["AUTH", "s3cret"]), ok());
    assert_eq!(f.run(&["PING"]), Reply::Status("PONG".into()));
}

#[test]
fn strings_counters_and_wrong_types() {
    let mut f = fixture();
    assert_eq!(f.run(&["GET", "s"]), Reply::Nil);
    assert_eq!(f.run(&["SET", "s", "v"]), ok());
    assert_eq!(f.run(&["SET", "s", "w", "NX"]), Reply::Nil);
    assert_eq!(f.run(&["SET", "t", "w", "XX"]), Reply::Nil);
    assert_eq!(f.run(&["SET", "s", "w", "XX"]), ok());
    assert_eq!(f.run(&["SET", "s", "x", "GET"]), bulk("w"));
    assert_eq!(f.run(&["GET", "s"]), bulk("x"));
    assert!(is_error(
        &f.run(&["SET", "s", "v", "NX", "XX"]),
        "ERR syntax error"
    ));
    assert!(is_error(
        &f.run(&["SET", "s", "v", "EX", "0"]),
        "ERR invalid expire time"
    ));
    assert!(is_error(
        &f.run(&["SET", "s", "v", "PX"]),
        "ERR syntax error"
    ));
    assert_eq!(f.run(&["INCRBY", "n", "5"]), Reply::Int(5));
    assert_eq!(f.run(&["DECRBY", "n", "7"]), Reply::Int(-2));
    assert_eq!(f.run(&["INCR", "n"]), Reply::Int(-1));
    assert!(is_error(
        &f.run(&["INCRBY", "s", "1"]),
        "ERR value is not an integer"
    ));
    assert!(is_error(
        &f.run(&["INCRBY", "n", "1.5"]),
        "ERR value is not an integer"
    ));
    assert_eq!(f.run(&["SET", "big", &i64::MAX.to_string()]), ok());
    assert!(is_error(
        &f.run(&["INCR", "big"]),
        "ERR increment or decrement would overflow"
    ));
    assert_eq!(f.run(&["HSET", "h", "f", "1"]), Reply::Int(1));
    assert!(is_error(&f.run(&["GET", "h"]), "WRONGTYPE"));
    assert!(is_error(&f.run(&["INCR", "h"]), "WRONGTYPE"));
    assert!(is_error(&f.run(&["HGET", "s", "f"]), "WRONGTYPE"));
    assert!(is_error(&f.run(&["ZADD", "s", "1", "m"]), "WRONGTYPE"));
    assert!(is_error(&f.run(&["ZCARD", "h"]), "WRONGTYPE"));
    assert_eq!(
        f.run(&["SET", "h", "now a string"]),
        ok(),
        "SET replaces any type"
    );
    assert_eq!(f.run(&["EXISTS", "s", "s", "nope", "n"]), Reply::Int(3));
    assert_eq!(f.run(&["DEL", "s", "nope", "n"]), Reply::Int(2));
    assert_eq!(f.run(&["DBSIZE"]), Reply::Int(2));
    assert_eq!(f.run(&["FLUSHALL"]), ok());
    assert_eq!(f.run(&["DBSIZE"]), Reply::Int(0));
}

#[test]
fn keys_expire_on_the_clock() {
    let mut f = fixture();
    assert_eq!(f.run(&["SET", "a", "1", "PX", "1500"]), ok());
    assert_eq!(f.run(&["SET", "b", "1", "EX", "2"]), ok());
    assert_eq!(f.run(&["SET", "c", "1"]), ok());
    assert_eq!(f.run(&["PTTL", "a"]), Reply::Int(1500));
    assert_eq!(f.run(&["TTL", "a"]), Reply::Int(2), "1.5 s rounds to 2");
    assert_eq!(f.run(&["PTTL", "c"]), Reply::Int(-1));
    assert_eq!(f.run(&["PTTL", "nope"]), Reply::Int(-2));
    f.advance_ms(1500);
    assert_eq!(f.run(&["GET", "a"]), bulk("1"), "alive at its deadline");
    f.advance_ms(1);
    assert_eq!(f.run(&["GET", "a"]), Reply::Nil);
    assert_eq!(f.run(&["EXISTS", "a"]), Reply::Int(0));
    assert_eq!(f.run(&["DBSIZE"]), Reply::Int(2));
    // PEXPIRE, EXPIRE, PEXPIREAT and their options.
    assert_eq!(f.run(&["PEXPIRE", "c", "100"]), Reply::Int(1));
    assert_eq!(f.run(&["PEXPIRE", "c", "50", "GT"]), Reply::Int(0));
    assert_eq!(f.run(&["PEXPIRE", "c", "50", "LT"]), Reply::Int(1));
    assert_eq!(f.run(&["PEXPIRE", "c", "500", "NX"]), Reply::Int(0));
    assert_eq!(f.run(&["PTTL", "c"]), Reply::Int(50));
    assert_eq!(f.run(&["EXPIRE", "c", "10"]), Reply::Int(1));
    assert_eq!(f.run(&["PTTL", "c"]), Reply::Int(10_000));
    let at = (T0_MS + 1501 + 3000).to_string();
    assert_eq!(f.run(&["PEXPIREAT", "c", &at]), Reply::Int(1));
    assert_eq!(f.run(&["PTTL", "c"]), Reply::Int(3000));
    assert_eq!(f.run(&["PEXPIRE", "nope", "100"]), Reply::Int(0));
    // INCRBY and HINCRBY keep the deadline; SET drops it.
    assert_eq!(f.run(&["INCRBY", "b", "1"]), Reply::Int(2));
    assert_eq!(f.run(&["PTTL", "b"]), Reply::Int(499));
    assert_eq!(f.run(&["SET", "b", "x"]), ok());
    assert_eq!(f.run(&["PTTL", "b"]), Reply::Int(-1));
    // A deadline in the past deletes.
    assert_eq!(f.run(&["PEXPIRE", "b", "0"]), Reply::Int(1));
    assert_eq!(f.run(&["EXISTS", "b"]), Reply::Int(0));
    // Hashes and sorted sets expire too.
    assert_eq!(f.run(&["HSET", "h", "f", "1"]), Reply::Int(1));
    assert_eq!(f.run(&["PEXPIRE", "h", "10"]), Reply::Int(1));
    f.advance_ms(11);
    assert_eq!(f.run(&["HGET", "h", "f"]), Reply::Nil);
    assert_eq!(
        f.run(&["HINCRBY", "h", "f", "1"]),
        Reply::Int(1),
        "a new hash"
    );
}

#[test]
fn hashes() {
    let mut f = fixture();
    assert_eq!(f.run(&["HSET", "h", "a", "1", "b", "2"]), Reply::Int(2));
    assert_eq!(f.run(&["HSET", "h", "a", "3", "c", "4"]), Reply::Int(1));
    assert!(is_error(
        &f.run(&["HSET", "h", "a"]),
        "ERR wrong number of arguments for 'hset'"
    ));
    assert_eq!(f.run(&["HGET", "h", "a"]), bulk("3"));
    assert_eq!(f.run(&["HGET", "h", "z"]), Reply::Nil);
    assert_eq!(
        f.run(&["HMGET", "h", "a", "z", "c"]),
        Reply::Array(vec![bulk("3"), Reply::Nil, bulk("4")])
    );
    assert_eq!(
        f.run(&["HMGET", "nope", "a"]),
        Reply::Array(vec![Reply::Nil])
    );
    assert_eq!(f.run(&["HINCRBY", "h", "a", "-5"]), Reply::Int(-2));
    assert_eq!(f.run(&["HINCRBY", "h", "new", "2"]), Reply::Int(2));
    assert_eq!(f.run(&["HSET", "h", "s", "text"]), Reply::Int(1));
    assert!(is_error(
        &f.run(&["HINCRBY", "h", "s", "1"]),
        "ERR hash value is not an integer"
    ));
    assert_eq!(f.run(&["HLEN", "h"]), Reply::Int(5));
    assert_eq!(f.run(&["HDEL", "h", "s", "new", "zz"]), Reply::Int(2));
    assert_eq!(
        f.run(&["HGETALL", "h"]),
        Reply::Array(vec![
            bulk("a"),
            bulk("-2"),
            bulk("b"),
            bulk("2"),
            bulk("c"),
            bulk("4")
        ])
    );
    assert_eq!(f.run(&["HDEL", "h", "a", "b", "c"]), Reply::Int(3));
    assert_eq!(
        f.run(&["EXISTS", "h"]),
        Reply::Int(0),
        "an empty hash is no key"
    );
    assert_eq!(f.run(&["HGETALL", "h"]), Reply::Array(vec![]));
    assert_eq!(f.run(&["HLEN", "h"]), Reply::Int(0));
}

#[test]
fn sorted_sets() {
    let mut f = fixture();
    assert_eq!(
        f.run(&["ZADD", "z", "1", "a", "2", "b", "2", "c"]),
        Reply::Int(3)
    );
    assert_eq!(f.run(&["ZADD", "z", "5", "a", "0.5", "d"]), Reply::Int(1));
    assert_eq!(
        f.run(&["ZADD", "z", "CH", "6", "a", "7", "e"]),
        Reply::Int(2)
    );
    assert_eq!(f.run(&["ZADD", "z", "NX", "1", "a"]), Reply::Int(0));
    assert_eq!(f.run(&["ZADD", "z", "XX", "1", "zz"]), Reply::Int(0));
    assert_eq!(f.run(&["ZADD", "z", "INCR", "1.5", "a"]), bulk("7.5"));
    assert!(is_error(
        &f.run(&["ZADD", "z", "x", "a"]),
        "ERR value is not a valid float"
    ));
    assert!(is_error(&f.run(&["ZADD", "z", "1"]), "ERR syntax error"));
    assert_eq!(f.run(&["ZCARD", "z"]), Reply::Int(5));
    assert_eq!(f.run(&["ZSCORE", "z", "a"]), bulk("7.5"));
    assert_eq!(f.run(&["ZSCORE", "z", "b"]), bulk("2"));
    assert_eq!(f.run(&["ZSCORE", "z", "nope"]), Reply::Nil);
    assert_eq!(
        f.run(&["ZRANGEBYSCORE", "z", "-inf", "+inf"]),
        Reply::Array(vec![bulk("d"), bulk("b"), bulk("c"), bulk("e"), bulk("a")])
    );
    assert_eq!(
        f.run(&["ZRANGEBYSCORE", "z", "(0.5", "2", "WITHSCORES"]),
        Reply::Array(vec![bulk("b"), bulk("2"), bulk("c"), bulk("2")])
    );
    assert_eq!(
        f.run(&["ZRANGEBYSCORE", "z", "0", "10", "LIMIT", "1", "2"]),
        Reply::Array(vec![bulk("b"), bulk("c")])
    );
    assert!(is_error(
        &f.run(&["ZRANGEBYSCORE", "z", "x", "1"]),
        "ERR min or max is not a float"
    ));
    assert_eq!(
        f.run(&["ZREMRANGEBYSCORE", "z", "-inf", "(2"]),
        Reply::Int(1)
    );
    assert_eq!(f.run(&["ZREM", "z", "b", "nope"]), Reply::Int(1));
    assert_eq!(f.run(&["ZCARD", "z"]), Reply::Int(3));
    assert_eq!(
        f.run(&["ZREMRANGEBYSCORE", "z", "0", "+inf"]),
        Reply::Int(3)
    );
    assert_eq!(f.run(&["EXISTS", "z"]), Reply::Int(0));
}

#[test]
fn number_formats_follow_redis() {
    assert_eq!(format_score(3.0), "3");
    assert_eq!(format_score(-0.25), "-0.25");
    assert_eq!(
        format_score(0.1),
        "0.10000000000000001",
        "Redis 7.0's %.17g"
    );
    assert_eq!(format_score(f64::INFINITY), "inf");
    assert_eq!(format_g17(3.0), "3");
    assert_eq!(format_g17(0.1), "0.10000000000000001");
    assert_eq!(format_g17(1e20), "1e+20");
    assert_eq!(format_g17(-2.5e-7), "-2.4999999999999999e-07");
    assert_eq!(format_g17(123456.5), "123456.5");
}

/// The kind of script a gateway's exact rate limit runs: a fixed-window
/// counter in a hash, with the window's start from Redis's own clock.
const WINDOW_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local period = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local window = tostring(now_ms - now_ms % period)
local used = tonumber(redis.call('HGET', KEYS[1], window) or '0')
if used >= limit then
  return {0, used, redis.call('PTTL', KEYS[1])}
end
used = redis.call('HINCRBY', KEYS[1], window, 1)
redis.call('PEXPIRE', KEYS[1], period)
return {1, used, redis.call('PTTL', KEYS[1])}
"#;

#[test]
fn eval_runs_a_script_with_hincrby_pexpire_and_time() {
    let mut f = fixture();
    let run = |f: &mut Fixture| f.run(&["EVAL", WINDOW_SCRIPT, "1", "rl:key", "1000", "2"]);
    let admitted =
        |used: i64| Reply::Array(vec![Reply::Int(1), Reply::Int(used), Reply::Int(1000)]);
    assert_eq!(run(&mut f), admitted(1));
    assert_eq!(run(&mut f), admitted(2));
    assert_eq!(
        run(&mut f),
        Reply::Array(vec![Reply::Int(0), Reply::Int(2), Reply::Int(1000)])
    );
    assert_eq!(f.run(&["HGET", "rl:key", "1800000000000"]), bulk("2"));
    // The next window (TIME moved on), then the key's expiry.
    f.advance_ms(1000);
    assert_eq!(run(&mut f), admitted(1));
    assert_eq!(f.run(&["HLEN", "rl:key"]), Reply::Int(2));
    f.advance_ms(1001);
    assert_eq!(f.run(&["EXISTS", "rl:key"]), Reply::Int(0));
    // EVAL keeps the script: EVALSHA finds it, until SCRIPT FLUSH.
    let sha = sha1_hex(WINDOW_SCRIPT.as_bytes());
    assert_eq!(
        f.run(&["SCRIPT", "EXISTS", &sha, "0000"]),
        Reply::Array(vec![Reply::Int(1), Reply::Int(0)])
    );
    assert_eq!(
        f.run(&["EVALSHA", &sha, "1", "rl:key", "1000", "2"]),
        admitted(1)
    );
    assert_eq!(f.run(&["SCRIPT", "FLUSH"]), ok());
    assert_eq!(
        f.run(&["EVALSHA", &sha, "1", "rl:key", "1000", "2"]),
        Reply::Error("NOSCRIPT No matching script. Please use EVAL.".into())
    );
    assert_eq!(f.run(&["SCRIPT", "LOAD", WINDOW_SCRIPT]), bulk(&sha));
    assert_eq!(
        f.run(&["EVALSHA", &sha.to_uppercase(), "1", "rl:key", "1000", "2"]),
        admitted(2)
    );
}

#[test]
fn lua_and_replies_convert_as_in_redis() {
    let mut f = fixture();
    let eval = |f: &mut Fixture, script: &str| f.run(&["EVAL", script, "0"]);
    assert_eq!(eval(&mut f, "return 3.99"), Reply::Int(3), "truncated");
    assert_eq!(eval(&mut f, "return -3.99"), Reply::Int(-3));
    assert_eq!(eval(&mut f, "return 'text'"), bulk("text"));
    assert_eq!(eval(&mut f, "return true"), Reply::Int(1));
    assert_eq!(eval(&mut f, "return false"), Reply::Nil);
    assert_eq!(eval(&mut f, "return nil"), Reply::Nil);
    assert_eq!(eval(&mut f, "return"), Reply::Nil);
    assert_eq!(
        eval(&mut f, "return {1, 'two', {3, false}, nil, 5}"),
        Reply::Array(vec![
            Reply::Int(1),
            bulk("two"),
            Reply::Array(vec![Reply::Int(3), Reply::Nil])
        ]),
        "up to the first nil"
    );
    assert_eq!(
        eval(&mut f, "return {ok='FINE'}"),
        Reply::Status("FINE".into())
    );
    assert_eq!(
        eval(&mut f, "return redis.status_reply('FINE')"),
        Reply::Status("FINE".into())
    );
    assert_eq!(
        eval(&mut f, "return {err='BAD thing'}"),
        Reply::Error("BAD thing".into())
    );
    assert_eq!(
        eval(&mut f, "return redis.error_reply('MY code')"),
        Reply::Error("MY code".into())
    );
    // Replies as Lua sees them.
    assert_eq!(f.run(&["SET", "s", "v"]), ok());
    assert_eq!(
        eval(&mut f, "return type(redis.call('GET', 'nope'))"),
        bulk("boolean")
    );
    assert_eq!(
        eval(&mut f, "return redis.call('GET', 'nope') == false"),
        Reply::Int(1)
    );
    assert_eq!(
        eval(&mut f, "return redis.call('SET', 'x', 1).ok"),
        bulk("OK")
    );
    assert_eq!(eval(&mut f, "return redis.call('SET', 'x', 1)"), ok());
    assert_eq!(
        eval(&mut f, "return redis.call('GET', 'x')"),
        bulk("1"),
        "a number argument as text"
    );
    assert_eq!(
        eval(
            &mut f,
            "return redis.call('SET', 'y', 1.5) and redis.call('GET', 'y')"
        ),
        bulk("1.5")
    );
    assert_eq!(
        eval(&mut f, "return type(redis.call('INCR', 'x'))"),
        bulk("number")
    );
    assert_eq!(eval(&mut f, "return #redis.call('TIME')"), Reply::Int(2));
    // Errors: pcall hands them over, call raises them.
    assert_eq!(
        eval(&mut f, "return redis.pcall('HGET', 's', 'f').err"),
        bulk("WRONGTYPE Operation against a key holding the wrong kind of value")
    );
    assert!(is_error(
        &eval(&mut f, "return redis.call('HGET', 's', 'f')"),
        "WRONGTYPE"
    ));
    assert!(is_error(
        &eval(&mut f, "redis.call('NOPE') return 1"),
        "ERR Unknown Redis command"
    ));
    assert!(is_error(
        &eval(&mut f, "return redis.call('EVAL', 'return 1', 0)"),
        "ERR This Redis command is not allowed"
    ));
    assert!(is_error(
        &eval(&mut f, "return redis.call('GET', {})"),
        "ERR Lua redis lib command arguments"
    ));
    let sha = sha1_hex(b"error('boom')");
    assert_eq!(
        eval(&mut f, "error('boom')"),
        Reply::Error(format!(
            "ERR user_script:1: boom script: {sha}, on @user_script:1."
        )),
        "worded as Redis 7.0 words it"
    );
    // (Not a tail call: Lua 5.1 drops the frame of a function that tail-calls a
    // Lua function, so `return redis.call(...)` errors name no line here.)
    let script = "local x = 1\nlocal r = redis.call('HGET', 's', 'f')\nreturn r";
    assert_eq!(
        eval(&mut f, script),
        Reply::Error(format!(
            "WRONGTYPE Operation against a key holding the wrong kind of value script: {}, on @user_script:2.",
            sha1_hex(script.as_bytes())
        ))
    );
    assert!(is_error(
        &eval(&mut f, "return +"),
        "ERR Error compiling script"
    ));
    assert!(
        is_error(&eval(&mut f, "while true do end"), "ERR "),
        "a runaway script is stopped"
    );
    assert_eq!(
        eval(&mut f, "return 1"),
        Reply::Int(1),
        "and the next one runs"
    );
    // KEYS, ARGV and the argument checks.
    assert_eq!(
        f.run(&[
            "EVAL",
            "return {KEYS[1], KEYS[2], ARGV[1], #ARGV}",
            "2",
            "k1",
            "k2",
            "a1"
        ]),
        Reply::Array(vec![bulk("k1"), bulk("k2"), bulk("a1"), Reply::Int(1)])
    );
    assert!(is_error(
        &f.run(&["EVAL", "return 1", "2", "k1"]),
        "ERR Number of keys can't be greater"
    ));
    assert!(is_error(
        &f.run(&["EVAL", "return 1", "-1"]),
        "ERR Number of keys can't be negative"
    ));
    assert_eq!(
        eval(&mut f, "return redis.sha1hex('')"),
        bulk("da39a3ee5e6b4b0d3255bfef95601890afd80709")
    );
    // A script sees the caller's database.
    assert_eq!(f.run(&["SELECT", "2"]), ok());
    assert_eq!(eval(&mut f, "return redis.call('GET', 's')"), Reply::Nil);
}
