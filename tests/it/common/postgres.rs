//! The PostgreSQL that `scripts/test` starts and names in `GATEHOUSE_TEST_POSTGRES`: each
//! user of it works in a schema of its own.

use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::{Connection, Executor};

/// The server's URL.
pub fn url() -> String {
    std::env::var("GATEHOUSE_TEST_POSTGRES").expect(
        "GATEHOUSE_TEST_POSTGRES names the PostgreSQL these tests use: run them with scripts/test, which starts one",
    )
}

/// A new, empty schema `{prefix}_{process}_{n}`, and a URL whose connections work in it.
pub async fn fresh_schema(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let url = url();
    let schema = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut connection = sqlx::PgConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {url}: {e}"));
    let setup = format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}");
    connection.execute(setup.as_str()).await.expect("schema");
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-c%20search_path%3D{schema}")
}

/// A PostgreSQL cluster of a test's own (the installed server `scripts/test` found, named in
/// `GATEHOUSE_TEST_PG_BIN`), for faults that would disturb the shared one: stopped, started
/// again on the same port. Removed when dropped. Its programs run on a blocking thread: a
/// stop waits for the sidecars' replication connections, which the test's runtime serves.
pub struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
    bin: std::path::PathBuf,
}

/// Runs one of PostgreSQL's programs, as `postgres` when the tests run as root.
fn run(bin: &std::path::Path, program: &str, args: &[String]) -> std::process::Output {
    let path = bin.join(program);
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if root {
        std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&path)
            .args(args)
            .output()
    } else {
        std::process::Command::new(&path).args(args).output()
    }
    .unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// [`run`], which must succeed.
fn run_ok(bin: &std::path::Path, program: &str, args: &[String]) {
    let output = run(bin, program, args);
    assert!(
        output.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Cluster {
    /// A new cluster, started (`wal_level = logical`).
    pub async fn start() -> Self {
        let bin: std::path::PathBuf = std::env::var("GATEHOUSE_TEST_PG_BIN")
            .expect("GATEHOUSE_TEST_PG_BIN names PostgreSQL's bin directory: run the tests with scripts/test")
            .into();
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // initdb refuses root: as root, the cluster is `postgres`'s.
        let _ = std::process::Command::new("chown")
            .args(["-R", "postgres"])
            .arg(dir.path())
            .output();
        let cluster = Self { dir, port, bin };
        let args = vec![
            "-D".to_string(),
            cluster.data(),
            "-A".into(),
            "trust".into(),
            "-U".into(),
            "postgres".into(),
        ];
        let bin = cluster.bin.clone();
        tokio::task::spawn_blocking(move || run_ok(&bin, "initdb", &args))
            .await
            .expect("initdb");
        cluster.start_again().await;
        cluster
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl` with `args` after `-D data`, on a blocking thread.
    async fn pg_ctl(&self, args: &[&str]) {
        let mut all = vec!["-D".to_string(), self.data()];
        all.extend(args.iter().map(ToString::to_string));
        let bin = self.bin.clone();
        tokio::task::spawn_blocking(move || run_ok(&bin, "pg_ctl", &all))
            .await
            .expect("pg_ctl");
    }

    /// Starts it (again), on the same port.
    pub async fn start_again(&self) {
        let log = self.dir.path().join("server.log").display().to_string();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c wal_level=logical",
            self.port,
            self.dir.path().display()
        );
        self.pg_ctl(&["-l", &log, "-w", "-o", &options, "start"])
            .await;
    }

    /// Stops it (fast: connections are cut).
    pub async fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "stop"]).await;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let args = [
            "-D".to_string(),
            self.data(),
            "-m".into(),
            "immediate".into(),
            "stop".into(),
        ];
        let _ = run(&self.bin, "pg_ctl", &args);
    }
}
