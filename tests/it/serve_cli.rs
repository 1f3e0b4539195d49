//! `gatehouse serve` and `gatehouse check` as processes: start-up, signals, exit codes.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::server::{project, question, user};

fn gatehouse() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command.current_dir(common::root());
    for var in [
        "GATEHOUSE_POLICIES",
        "GATEHOUSE_SCHEMA",
        "GATEHOUSE_LISTEN",
        "GATEHOUSE_ENTITIES",
        "GATEHOUSE_ADMIN_TOKEN",
    ] {
        command.env_remove(var);
    }
    command.env("NO_COLOR", "1").env("RUST_LOG", "info");
    command
}

/// Starts `gatehouse serve` on port 0 and returns it with the address it logged.
fn serve(extra: &[&str]) -> (Child, String) {
    let mut child = gatehouse()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("serve logs its address").expect("line");
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().expect("addr").to_string();
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

fn wait(child: &mut Child) -> Option<i32> {
    for _ in 0..500 {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    panic!("gatehouse did not exit within 5 s");
}

fn body() -> Vec<u8> {
    let entities = [
        user("vera", &["p1.editors"]),
        project("p1", "olga", "processing", &[]),
    ];
    serde_json::to_vec(&question(
        "User::\"vera\"",
        "edit",
        "Project::\"p1\"",
        &entities,
    ))
    .expect("json")
}

/// Starts a request, sends the signal while its body is half uploaded, finishes it: the
/// answer must still come, and the process must exit 0.
fn drains_in_flight_request_on(signal_name: &str) {
    let (mut child, addr) = serve(&[]);
    let body = body();
    let mut stream = TcpStream::connect(&addr).expect("connect");
    write!(stream, "POST /v1/is_authorized HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()).expect("head");
    let (first, rest) = body.split_at(body.len() / 2);
    stream.write_all(first).expect("first half");
    stream.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(200));
    signal(&child, signal_name);
    std::thread::sleep(Duration::from_millis(200));
    stream.write_all(rest).expect("second half");
    let mut response = String::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    while !response.contains("policy_version") {
        let n = stream.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        response.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"decision\":\"Allow\""), "{response}");
    drop(stream);
    assert_eq!(wait(&mut child), Some(0));
}

#[test]
fn sigterm_drains_in_flight_requests_and_exits_0() {
    drains_in_flight_request_on("TERM");
}

#[test]
fn sigint_drains_in_flight_requests_and_exits_0() {
    drains_in_flight_request_on("INT");
}

#[test]
fn serve_refuses_to_start_without_a_valid_set() {
    let (_dir, sources) = common::scratch_copy();
    std::fs::write(
        sources.policies.join("zz.cedar"),
        "permit (principal, action, resource);",
    )
    .expect("write");
    let out = gatehouse()
        .args(["serve", "--listen", "127.0.0.1:0", "--policies"])
        .arg(&sources.policies)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("zz.cedar:1:1]"), "{stderr}");
    assert!(
        stderr.contains("gatehouse does not start without a valid policy set"),
        "{stderr}"
    );
}

#[test]
fn serve_reads_its_configuration_from_the_environment() {
    let mut child = gatehouse()
        .args(["serve"])
        .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
        .env("GATEHOUSE_ADMIN_TOKEN", "from-env")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = loop {
        let line = lines.next().expect("line").expect("line");
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().expect("addr").to_string();
        }
    };
    let mut stream = TcpStream::connect(&addr).expect("connect");
    write!(
        stream,
        "GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    signal(&child, "TERM");
    assert_eq!(wait(&mut child), Some(0));
}

#[test]
fn check_decides_through_the_server_path() {
    let dir = tempfile::tempdir().expect("temp");
    let entities = dir.path().join("entities.json");
    std::fs::write(
        &entities,
        serde_json::to_vec(&[
            user("vera", &["p1.editors"]),
            project("p1", "olga", "processing", &[]),
        ])
        .expect("json"),
    )
    .expect("write");
    let check = |action: &str| {
        gatehouse()
            .args([
                "check",
                "--principal",
                "User::\"vera\"",
                "--action",
                action,
                "--resource",
                "Project::\"p1\"",
                "--entities",
            ])
            .arg(&entities)
            .output()
            .expect("run")
    };
    let out = check("edit");
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("Allow\n  deciding policies: roles.editor\n"),
        "{stdout}"
    );
    let out = check("export_report");
    assert_eq!(out.status.code(), Some(5));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("deciding policies: phases.report-when-ready")
    );
    let out = check("Action::\"edt\"");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown action `Action::\"edt\"`"));
    let out = gatehouse()
        .args([
            "check",
            "--principal",
            "User::\"a\"",
            "--action",
            "share",
            "--resource",
            "Project::\"p\"",
            "--context",
            "{\"role\": \"viewer\"",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`--context` is not valid JSON"));
}

/// A SIGTERM at once after the sidecar says where it listens drains and exits 0: the
/// handlers are installed before that line, not when the server first polls for a signal.
#[test]
fn a_signal_right_after_start_drains() {
    for _ in 0..10 {
        let mut child = gatehouse()
            .args(["serve"])
            .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        while !lines.next().expect("line").expect("line").contains("addr=") {}
        signal(&child, "TERM");
        assert_eq!(wait(&mut child), Some(0));
    }
}
