//! The Redis stand-in over turmoil's network: RESP2 round trips, pipelining, a
//! script, the password, and the simulation's faults (a partition between a
//! gateway host and the stand-in, a crash of the stand-in).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use portcullis_sim::hosts::redis::client::Client;
use portcullis_sim::hosts::redis::{serve, RedisOptions, Reply, REDIS, REDIS_PORT};
use portcullis_sim::hosts::EPOCH_UNIX;

fn sim<'a>(password: Option<&str>) -> turmoil::Sim<'a> {
    let mut sim = turmoil::Builder::new()
        .simulation_duration(Duration::from_secs(120))
        .tick_duration(Duration::from_millis(10))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(5))
        .epoch(UNIX_EPOCH + Duration::from_secs(EPOCH_UNIX))
        .build();
    let options = RedisOptions {
        password: password.map(str::to_owned),
    };
    sim.host(REDIS, move || serve(options.clone()));
    sim
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(s.as_bytes().to_vec())
}

#[test]
fn commands_pipelines_and_scripts_over_the_simulated_network() {
    let mut sim = sim(Some("pw"));
    sim.client("gw0", async {
        let mut c = Client::connect(REDIS, REDIS_PORT).await?;
        assert!(matches!(c.cmd(&["GET", "k"]).await?, Reply::Error(e) if e.starts_with("NOAUTH")));
        assert_eq!(
            c.cmd(&["AUTH", "default", "pw"]).await?,
            Reply::Status("OK".into())
        );
        assert_eq!(
            c.cmd(&["CLIENT", "SETNAME", "gw0"]).await?,
            Reply::Status("OK".into())
        );
        // Several commands in one write, answered in order.
        let replies = c
            .pipeline(&[
                &[b"SET", b"k", b"v", b"PX", b"1000"],
                &[b"INCRBY", b"n", b"2"],
                &[b"INCRBY", b"n", b"3"],
                &[b"GET", b"k"],
                &[b"HGET", b"k", b"f"],
            ])
            .await?;
        assert_eq!(
            replies,
            vec![
                Reply::Status("OK".into()),
                Reply::Int(2),
                Reply::Int(5),
                bulk("v"),
                Reply::Error(
                    "WRONGTYPE Operation against a key holding the wrong kind of value".into()
                ),
            ]
        );
        // TIME is the simulated clock from the simulation's epoch.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let Reply::Array(time) = c.cmd(&["TIME"]).await? else {
            panic!("TIME is an array");
        };
        let seconds: u64 = match &time[0] {
            Reply::Bulk(s) => String::from_utf8_lossy(s).parse()?,
            other => panic!("{other:?}"),
        };
        assert!(
            (EPOCH_UNIX + 1..EPOCH_UNIX + 5).contains(&seconds),
            "{seconds}"
        );
        // The key expired on simulated time.
        assert_eq!(c.cmd(&["GET", "k"]).await?, Reply::Nil);
        // A script, a binary-safe argument, EVALSHA.
        let script = "redis.call('HINCRBY', KEYS[1], ARGV[1], 1) \
                      redis.call('PEXPIRE', KEYS[1], 5000) \
                      return {redis.call('HGET', KEYS[1], ARGV[1]), redis.call('PTTL', KEYS[1])}";
        let sha = match c.cmd(&["SCRIPT", "LOAD", script]).await? {
            Reply::Bulk(sha) => String::from_utf8(sha)?,
            other => panic!("{other:?}"),
        };
        let field: &[u8] = b"f\r\n\0";
        let reply = c
            .call(&[b"EVALSHA", sha.as_bytes(), b"1", b"h", field])
            .await?;
        assert_eq!(reply, Reply::Array(vec![bulk("1"), Reply::Int(5000)]));
        assert_eq!(
            c.call(&[b"HGET", b"h", field]).await?,
            bulk("1"),
            "the field name went through unharmed"
        );
        assert_eq!(c.cmd(&["QUIT"]).await?, Reply::Status("OK".into()));
        assert!(
            c.cmd(&["PING"]).await.is_err(),
            "QUIT closed the connection"
        );
        Ok(())
    });
    sim.run().unwrap();
}

/// What the client host saw, in order: `Some(counter)` or `None` (no answer).
type Seen = Arc<Mutex<Vec<(u64, Option<i64>)>>>;

/// A client host that increments a counter every 100 ms, each call with a
/// timeout, connecting again after a failure.
async fn counting_client(seen: Seen) -> turmoil::Result {
    let mut client: Option<Client> = None;
    for _ in 0..150 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let at = turmoil::sim_elapsed().unwrap_or_default().as_millis() as u64;
        let attempt = tokio::time::timeout(Duration::from_millis(300), async {
            if client.is_none() {
                client = Some(Client::connect(REDIS, REDIS_PORT).await?);
            }
            match client.as_mut() {
                Some(c) => c.cmd(&["INCR", "counter"]).await,
                None => Err(std::io::Error::other("no connection")),
            }
        })
        .await;
        let value = match attempt {
            Ok(Ok(Reply::Int(n))) => Some(n),
            _ => {
                client = None;
                None
            }
        };
        seen.lock().unwrap().push((at, value));
    }
    Ok(())
}

#[test]
fn a_partition_cuts_the_gateway_off_and_a_crash_loses_the_keys() {
    let mut sim = sim(None);
    let seen = Seen::default();
    {
        let seen = seen.clone();
        sim.client("gw0", counting_client(seen));
    }
    // The simulation's own fault tools, as `portcullis_sim::run` uses them.
    let step = |sim: &mut turmoil::Sim<'_>, until: Duration| {
        while sim.elapsed() < until {
            sim.step().unwrap();
        }
    };
    step(&mut sim, Duration::from_secs(3));
    sim.partition("gw0", REDIS);
    step(&mut sim, Duration::from_secs(6));
    sim.repair("gw0", REDIS);
    step(&mut sim, Duration::from_secs(9));
    sim.crash(REDIS);
    step(&mut sim, Duration::from_millis(9500));
    sim.bounce(REDIS);
    while !sim.step().unwrap() {}

    let seen = seen.lock().unwrap().clone();
    let phase = |from: u64, to: u64| -> Vec<Option<i64>> {
        seen.iter()
            .filter(|(at, _)| (from..to).contains(at))
            .map(|(_, v)| *v)
            .collect()
    };
    // (A call started within its timeout of a change may go either way.)
    let before = phase(0, 2700);
    assert!(before.iter().all(Option::is_some), "{before:?}");
    let cut = phase(3000, 5700);
    assert!(
        !cut.is_empty() && cut.iter().all(Option::is_none),
        "{cut:?}"
    );
    // After the repair (and a new connection) the count goes on where it
    // stopped: the keys stayed on the stand-in. (The increment in flight when
    // the partition began may have counted with its answer lost.)
    let healed: Vec<i64> = phase(5700, 9000).into_iter().flatten().collect();
    let last_before = phase(0, 6000).into_iter().flatten().max().unwrap();
    assert!(!healed.is_empty(), "{seen:?}");
    assert!(
        (last_before + 1..=last_before + 2).contains(&healed[0]),
        "{last_before} then {healed:?}"
    );
    // A crash loses every key, as a Redis without persistence does.
    let restarted: Vec<i64> = phase(10_000, 15_000).into_iter().flatten().collect();
    assert!(!restarted.is_empty(), "{seen:?}");
    assert!(restarted[0] < 10, "counting starts again: {restarted:?}");
}
