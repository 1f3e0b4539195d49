//! The connection layer under hostile and idle clients (issue 23): a request head sent
//! slowly is cut off, an idle keep-alive connection is closed, the cap makes room by
//! closing the idlest connection, and shutdown closes idle and half-open connections at
//! once while giving requests in flight a bounded grace.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::server::{Options, TestServer, start};
use gatehouse::config::Config;

fn config(change: impl FnOnce(&mut Config)) -> Options {
    let mut config = Config::default();
    change(&mut config);
    Options {
        config,
        ..Options::default()
    }
}

fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.base.trim_start_matches("http://")).expect("connect")
}

/// Whether the server closed `stream` within `limit` (a read gives end of file or a
/// reset), reading and dropping whatever it answered before.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

/// A connection whose request head has begun and will never end.
fn half_open(server: &TestServer) -> TcpStream {
    let mut stream = connect(server);
    stream
        .write_all(b"POST /v1/is_authorized HTTP/1.1\r\nHost: x\r\nContent-Le")
        .expect("part of a head");
    stream
}

/// A request in flight: its head is sent, its body only half.
fn in_flight(server: &TestServer) -> TcpStream {
    let mut stream = connect(server);
    stream
        .write_all(b"POST /v1/is_authorized HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .expect("head and part of the body");
    stream
}

async fn metric(server: &TestServer, needle: &str) -> bool {
    server.get("/metrics").await.1.contains(needle)
}

/// Slowloris: a head trickled one byte at a time is cut off at the header-read timeout,
/// counted from its first byte; a connection that sends nothing falls under the (longer)
/// idle timeout instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_sent_slowly_is_cut_off_at_the_header_read_timeout() {
    let server = start(config(|c| {
        c.header_read_timeout = Duration::from_secs(1);
        c.idle_timeout = Duration::from_secs(30);
    }))
    .await;
    let (mut slow, mut quiet) = (connect(&server), connect(&server));
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaa";
    let started = Instant::now();
    let trickled = tokio::task::spawn_blocking(move || {
        for byte in head {
            if slow.write_all(&[*byte]).is_err() {
                return (true, started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
            if closed_within(&mut slow, Duration::from_millis(1)) {
                return (true, started.elapsed());
            }
        }
        (
            closed_within(&mut slow, Duration::from_secs(3)),
            started.elapsed(),
        )
    })
    .await
    .expect("join");
    assert!(trickled.0, "the slow head was never cut off");
    assert!(
        trickled.1 >= Duration::from_millis(900) && trickled.1 < Duration::from_secs(4),
        "cut off after {:?}",
        trickled.1
    );
    assert!(
        !closed_within(&mut quiet, Duration::from_millis(300)),
        "a connection that sent nothing is under the idle timeout"
    );
    assert!(
        metric(
            &server,
            "gatehouse_http_connections_closed_total{reason=\"header_timeout\"} 1"
        )
        .await
    );
    server.stop().await;
}

/// A keep-alive connection with no request for the idle timeout is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    let server = start(config(|c| c.idle_timeout = Duration::from_secs(1))).await;
    let mut stream = connect(&server);
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    let mut answer = [0u8; 512];
    let n = stream.read(&mut answer).expect("answer");
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
    let waited = Instant::now();
    assert!(
        closed_within(&mut stream, Duration::from_secs(4)),
        "never closed"
    );
    assert!(
        waited.elapsed() >= Duration::from_millis(800),
        "closed after {:?}",
        waited.elapsed()
    );
    assert!(
        metric(
            &server,
            "gatehouse_http_connections_closed_total{reason=\"idle\"} 1"
        )
        .await
    );
    server.stop().await;
}

/// At `--max-connections`, a new connection closes the idlest one to make room: with every
/// slot taken by idle connections, a probe still gets its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_the_idlest_connection_makes_room() {
    let server = start(config(|c| c.max_connections = Some(8))).await;
    let mut idle: Vec<TcpStream> = (0..8).map(|_| connect(&server)).collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.get("/healthz").await.0, 200, "a probe past the cap");
    let closed = idle
        .iter_mut()
        .filter_map(|s| closed_within(s, Duration::from_millis(200)).then_some(()))
        .count();
    assert!(closed >= 1, "no idle connection made room");
    assert!(
        metric(
            &server,
            "gatehouse_http_connections_closed_total{reason=\"evicted\"}"
        )
        .await
    );
    server.stop().await;
}

/// With every slot held by a request in flight, a new connection is refused (closed at
/// once, counted) rather than queued without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_with_every_connection_busy_a_new_one_is_refused() {
    let server = start(config(|c| {
        c.max_connections = Some(2);
        c.request_timeout = 30;
    }))
    .await;
    let _busy = [in_flight(&server), in_flight(&server)];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut refused = connect(&server);
    let _ = refused.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        closed_within(&mut refused, Duration::from_secs(2)),
        "the connection past the cap was kept"
    );
    drop(_busy);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        metric(
            &server,
            "gatehouse_http_connections_closed_total{reason=\"refused\"} 1"
        )
        .await
    );
    server.stop().await;
}

/// Shutdown closes idle and half-open connections at once, lets the request in flight
/// finish, and takes a fraction of a second with 2 000 idle connections open (printed with
/// `--nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_and_half_open_connections_at_once() {
    let server = start(config(|c| c.request_timeout = 30)).await;
    let idle: Vec<TcpStream> = (0..2000).map(|_| connect(&server)).collect();
    let mut half: Vec<TcpStream> = (0..20).map(|_| half_open(&server)).collect();
    let mut busy = in_flight(&server);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let finish = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(300));
        let rest = format!("{}}}", " ".repeat(98));
        busy.write_all(rest.as_bytes())
            .expect("the rest of the body");
        let mut answer = String::new();
        let _ = busy.read_to_string(&mut answer);
        answer
    });
    let started = Instant::now();
    server.stop().await;
    let took = started.elapsed();
    println!(
        "shutdown with 2000 idle, 20 half-open connections and 1 request in flight took {took:?}"
    );
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    let answer = finish.await.expect("join");
    assert!(
        answer.starts_with("HTTP/1.1 400"),
        "the request in flight was answered: {answer}"
    );
    for stream in &mut half {
        assert!(
            closed_within(stream, Duration::from_millis(100)),
            "a half-open connection survived"
        );
    }
    drop(idle);
}

/// A request in flight that never finishes is given the shutdown grace, and no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shutdown_grace_bounds_a_request_that_never_finishes() {
    let server = start(config(|c| {
        c.request_timeout = 60;
        c.shutdown_grace = Duration::from_secs(1);
    }))
    .await;
    let _stuck = in_flight(&server);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    server.stop().await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "shutdown took {took:?} with a 1 s grace"
    );
}
