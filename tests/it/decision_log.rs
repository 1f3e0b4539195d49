//! The decision log under faults (issue 23): on a full disk every decision is a whole line
//! or counted as dropped, never half written, and writing resumes at a line boundary once
//! there is room; its health is in `/v1/status`.

use crate::common;

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use common::server::{Options, start};
use gatehouse::telemetry::decision_log::{DecisionLog, Target};
use prometheus_client::metrics::counter::Counter;
use serde_json::{Value, json};

/// A file system with room for `room` more bytes: a write past it writes what fits and
/// then fails with ENOSPC, as a full disk does. `cut` says whether it can be cut back (a
/// file) or not (a pipe).
#[derive(Clone)]
struct Disk {
    bytes: Arc<Mutex<Vec<u8>>>,
    room: Arc<Mutex<usize>>,
    cut: bool,
}

impl Disk {
    fn new(room: usize, cut: bool) -> Self {
        Self {
            bytes: Arc::default(),
            room: Arc::new(Mutex::new(room)),
            cut,
        }
    }

    fn free(&self, more: usize) {
        *self.room.lock().expect("room") += more;
    }

    fn text(&self) -> String {
        String::from_utf8(self.bytes.lock().expect("bytes").clone()).expect("utf-8")
    }
}

impl Write for Disk {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut room = self.room.lock().expect("room");
        if *room == 0 {
            return Err(io::Error::from_raw_os_error(28));
        }
        let n = buf.len().min(*room);
        *room -= n;
        self.bytes
            .lock()
            .expect("bytes")
            .extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Target for Disk {
    fn written_len(&mut self) -> Option<u64> {
        self.cut
            .then(|| self.bytes.lock().expect("bytes").len() as u64)
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let mut bytes = self.bytes.lock().expect("bytes");
        let freed = bytes.len() - len as usize;
        bytes.truncate(len as usize);
        *self.room.lock().expect("room") += freed;
        Ok(())
    }
    fn reopen(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A line of `i`, of a length that varies with it.
fn line(i: usize) -> String {
    json!({"i": i, "pad": "x".repeat(i % 97)}).to_string()
}

/// Writes `range`'s lines, one at a time (so that each may be a burst of its own).
fn write_lines(log: &DecisionLog, range: std::ops::Range<usize>) {
    for i in range {
        assert!(log.write(line(i)), "line {i} queued");
        if i % 7 == 0 {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }
}

/// Waits until the writer has taken every line queued.
fn settled(log: &DecisionLog, lines: u64) {
    for _ in 0..2000 {
        let status = log.status();
        if status.written + status.dropped >= lines {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("the writer did not take every line: {:?}", log.status());
}

#[test]
fn a_full_disk_leaves_whole_lines_and_counts_every_one_lost() {
    let disk = Disk::new(20_000, true);
    let dropped = Counter::default();
    let (log, writer) =
        DecisionLog::to(Box::new(disk.clone()), "disk", false, dropped.clone()).expect("open");
    write_lines(&log, 0..1000);
    settled(&log, 1000);
    let full = log.status();
    assert!(!full.healthy, "{full:?}");
    assert!(
        full.last_error
            .as_deref()
            .is_some_and(|e| e.contains("No space left")),
        "{full:?}"
    );
    assert!(full.dropped > 0 && full.written > 0, "{full:?}");
    assert_eq!(full.written + full.dropped, 1000);
    assert_eq!(
        dropped.get(),
        full.dropped,
        "the metric counts what the status does"
    );
    // Room again: writing resumes, at a line boundary.
    disk.free(1 << 20);
    write_lines(&log, 1000..1500);
    settled(&log, 1500);
    drop(log);
    writer.finish();
    let text = disk.text();
    assert!(text.ends_with('\n'));
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a partial line `{l}`: {e}")))
        .collect();
    assert_eq!(
        lines.len() as u64,
        full.written + 500,
        "every line written is whole"
    );
    let last: Vec<u64> = lines[lines.len() - 500..]
        .iter()
        .map(|l| l["i"].as_u64().expect("i"))
        .collect();
    assert_eq!(
        last,
        (1000..1500).collect::<Vec<u64>>(),
        "nothing lost once there is room"
    );
}

/// Where the target cannot be cut back (a pipe), a line cut short is ended by the next
/// write, so that every later line is whole; it is counted as dropped.
#[test]
fn on_a_pipe_a_line_cut_short_is_ended_and_the_next_ones_are_whole() {
    let disk = Disk::new(5_000, false);
    let dropped = Counter::default();
    let (log, writer) =
        DecisionLog::to(Box::new(disk.clone()), "pipe", false, dropped.clone()).expect("open");
    write_lines(&log, 0..300);
    settled(&log, 300);
    disk.free(1 << 20);
    write_lines(&log, 300..400);
    settled(&log, 400);
    let status = log.status();
    drop(log);
    writer.finish();
    let text = disk.text();
    let whole = text
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).is_ok())
        .count();
    let partial = text.lines().count() - whole;
    assert!(partial <= 1, "{partial} partial lines in\n{text}");
    assert_eq!(whole as u64, status.written, "{status:?}");
    assert_eq!(status.written + status.dropped, 400);
    let tail: Vec<&str> = text.lines().rev().take(100).collect();
    assert!(
        tail.iter()
            .all(|l| serde_json::from_str::<Value>(l).is_ok())
    );
}

/// Through the sidecar, on a real device that is always full: every decision is counted
/// as dropped, and `/v1/status` says the log is failing and why.
#[tokio::test]
async fn every_decision_lost_to_a_full_device_is_counted_and_shown() {
    let server = start(Options {
        decision_log: Some(("/dev/full", false)),
        ..Options::default()
    })
    .await;
    let body = common::server::question(
        "User::\"vera\"",
        "view",
        "Project::\"p1\"",
        &[common::server::project("p1", "vera", "planning", &[])],
    );
    for i in 0..50 {
        let mut q = body.clone();
        q["principal"] = json!(format!("User::\"u{i}\""));
        assert_eq!(server.post("/v1/is_authorized", &q).await.0, 200);
    }
    let mut status = Value::Null;
    for _ in 0..500 {
        let (_, text) = server.get("/v1/status").await;
        status = serde_json::from_str(&text).expect("json");
        if status["decision_log"]["dropped"] == 50 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let log = &status["decision_log"];
    assert_eq!(log["target"], "/dev/full", "{status}");
    assert_eq!(
        (log["written"].as_u64(), log["dropped"].as_u64()),
        (Some(0), Some(50)),
        "{log}"
    );
    assert_eq!(log["healthy"], false, "{log}");
    assert!(
        log["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("No space left")),
        "{log}"
    );
    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics.contains("gatehouse_decision_log_dropped_total 50"),
        "{metrics}"
    );
    server.stop().await;
}
