//! PostgreSQL's change stream under faults: the sidecar's connection cut (its slot dropped
//! with it), the server stopped and started again, a write held open in a long transaction,
//! and three sidecars on one database. Each time, no question is decided on what the
//! database no longer holds: an answer carrying a token is decided on the write before it,
//! and a sidecar that cannot read the changes refuses questions after `--max-staleness`.

use gatehouse_source::{MappingFile, Source};
use serde_json::{Value, json};

use crate::common;
use crate::source::{runtime, serving_with, vera_and_p1};

fn edit(token: Option<&str>) -> Value {
    let mut question =
        json!({"principal": "User::\"vera\"", "action": "edit", "resource": "Project::\"p1\""});
    if let Some(token) = token {
        question["consistency"] = json!({"at_least": token});
    }
    question
}

/// Writes vera's groups and gives the position after the commit, as a host would take it.
async fn write(writer: &Source, groups: &[&str]) -> String {
    writer
        .import(&common::bundled(), &vera_and_p1(groups))
        .await
        .expect("writes");
    writer.show_position(writer.position().await.expect("a position"))
}

/// Asks until the answer is 200 (the sidecar back), at most 20 seconds.
async fn until_answered(server: &common::server::TestServer, question: &Value) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, answer) = server.post("/v1/is_authorized", question).await;
        if status == 200 {
            return answer;
        }
        assert_eq!(status, 503, "{answer}");
        assert!(std::time::Instant::now() < deadline, "not back: {answer}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The sidecar's replication connection cut (its temporary slot dropped with it), then the
/// server stopped and started again: the follower opens a new slot each time and starts the
/// cache again; a revoke made while it was lost is seen by the next question carrying its
/// token; while the server is down, once `--max-staleness` has passed, questions are 503
/// `entities_unavailable`, never an Allow on what the database may no longer hold.
#[test]
fn a_lost_stream_is_opened_again_and_nothing_stale_is_allowed() {
    runtime().block_on(async {
        let cluster = common::postgres::Cluster::start().await;
        let url = cluster.url();
        let server = serving_with(&url, &vera_and_p1(&["p1.editors"]), 5, 3000, 1000).await;
        let sourced = server.state.sourced().expect("reached").expect("a database");
        let writer = Source::open(&url, &MappingFile::Bundled, &common::bundled())
            .await
            .expect("opens");
        let (_, answer) = server.post("/v1/is_authorized", &edit(None)).await;
        assert_eq!(answer["decision"], "Allow", "{answer}");
        assert!(sourced.is_cached("User", "vera"));

        // The slot dropped under the sidecar: its connection terminated.
        let slot = sourced.slot().expect("a slot");
        let admin = sqlx::PgPool::connect(&url).await.expect("connects");
        let terminated: bool = sqlx::query_scalar(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1",
        )
        .bind(&slot)
        .fetch_one(&admin)
        .await
        .expect("terminates");
        assert!(terminated);
        let token = write(&writer, &[]).await;
        let answer = until_answered(&server, &edit(Some(&token))).await;
        assert_eq!(answer["decision"], "Deny", "the revoke: {answer}");
        assert!(sourced.restarts() >= 1);
        assert_ne!(sourced.slot().as_deref(), Some(slot.as_str()), "a new slot");

        // vera an editor again, cached; then the server stopped.
        let token = write(&writer, &["p1.editors"]).await;
        let answer = until_answered(&server, &edit(Some(&token))).await;
        assert_eq!(answer["decision"], "Allow", "{answer}");
        admin.close().await;
        cluster.stop().await;
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let (status, answer) = server.post("/v1/is_authorized", &edit(None)).await;
        assert_eq!(status, 503, "past the bound: {answer}");
        assert_eq!(answer["error"]["code"], "entities_unavailable", "{answer}");

        // Back: the revoke made after the restart is seen, with no restart of the sidecar.
        cluster.start_again().await;
        let restarts = sourced.restarts();
        let token = loop {
            match writer
                .import(&common::bundled(), &vera_and_p1(&[]))
                .await
            {
                Ok(_) => break writer.show_position(writer.position().await.expect("a position")),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        };
        let answer = until_answered(&server, &edit(Some(&token))).await;
        assert_eq!(answer["decision"], "Deny", "the revoke after the restart: {answer}");
        assert!(sourced.restarts() > restarts);
        // Said in the metrics.
        let (_, text) = server.get("/metrics").await;
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
                .unwrap_or_else(|| panic!("no `{name}` in {text}"))
        };
        assert!(value("gatehouse_entities_restarts_total") >= 2.0, "{text}");
        assert!(value("gatehouse_entities_cache_misses_total") >= 1.0, "{text}");
        assert!(value("gatehouse_entities_cache_hits_total") >= 1.0, "{text}");
        assert!(value("gatehouse_entities_unread_seconds") < 1.0, "{text}");
        assert_eq!(
            value("gatehouse_entities_applied_position"),
            sourced.applied() as f64,
            "{text}"
        );
        server.stop().await;
    });
}

/// A write held open in a long transaction is not seen until it commits (what every reader
/// of the database sees meanwhile is what the sidecar decides on), then is seen by the next
/// question carrying the token taken after its commit.
#[test]
fn a_long_transaction_is_seen_when_it_commits() {
    runtime().block_on(async {
        let url = common::postgres::fresh_schema("long").await;
        let server = serving_with(&url, &vera_and_p1(&["p1.editors"]), 5, 3000, 5000).await;
        let writer = Source::open(&url, &MappingFile::Bundled, &common::bundled())
            .await
            .expect("opens");
        let mut tx = writer.pool().begin().await.expect("a transaction");
        sqlx::query("DELETE FROM user_groups WHERE user_id = 'vera'")
            .execute(&mut *tx)
            .await
            .expect("revokes");
        for _ in 0..3 {
            let token = writer.show_position(writer.position().await.expect("a position"));
            let (status, answer) = server.post("/v1/is_authorized", &edit(Some(&token))).await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["decision"], "Allow", "not committed yet: {answer}");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        tx.commit().await.expect("commits");
        let token = writer.show_position(writer.position().await.expect("a position"));
        let (status, answer) = server.post("/v1/is_authorized", &edit(Some(&token))).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["decision"], "Deny", "committed: {answer}");
        server.stop().await;
    });
}

/// Three sidecars on one database, each with a slot of its own, converge on the same writes:
/// after each, every one of them, asked with the write's token, decides on it; when they
/// stop, their slots are gone (none holds WAL back).
#[test]
fn three_sidecars_converge_on_the_same_writes() {
    runtime().block_on(async {
        let url = common::postgres::fresh_schema("three").await;
        let mut servers = Vec::new();
        for _ in 0..3 {
            servers.push(serving_with(&url, &vera_and_p1(&["p1.editors"]), 5, 3000, 5000).await);
        }
        let slots: Vec<String> = servers
            .iter()
            .map(|s| {
                s.state
                    .sourced()
                    .expect("reached")
                    .and_then(|s| s.slot())
                    .expect("a slot")
            })
            .collect();
        let writer = Source::open(&url, &MappingFile::Bundled, &common::bundled())
            .await
            .expect("opens");
        for (groups, decision) in [
            (&[][..], "Deny"),
            (&["p1.viewers"][..], "Deny"),
            (&["p1.editors"][..], "Allow"),
            (&[][..], "Deny"),
        ] {
            // Each sidecar has the current state cached before the write.
            for server in &servers {
                server.post("/v1/is_authorized", &edit(None)).await;
            }
            let token = write(&writer, groups).await;
            for (n, server) in servers.iter().enumerate() {
                let (status, answer) = server.post("/v1/is_authorized", &edit(Some(&token))).await;
                assert_eq!(status, 200, "{answer}");
                assert_eq!(
                    answer["decision"], decision,
                    "sidecar {n}, {groups:?}: {answer}"
                );
            }
        }
        for server in servers {
            server.stop().await;
        }
        let admin = sqlx::PgPool::connect(&url).await.expect("connects");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let left: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name = ANY($1)",
            )
            .bind(&slots)
            .fetch_one(&admin)
            .await
            .expect("counts");
            if left == 0 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{left} slots left");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
}

/// The database unreachable when the sidecar starts: it serves, is not ready (`/readyz` 503
/// saying why) and answers questions 503 `entities_unavailable`, never a decision; once the
/// database is up, it is reached without a restart and decides by id.
#[test]
fn a_database_down_at_start_is_reached_later() {
    runtime().block_on(async {
        let cluster = common::postgres::Cluster::start().await;
        let url = cluster.url();
        // The bundled tables and vera in them, then the server down.
        let writer = Source::open(&url, &MappingFile::Bundled, &common::bundled())
            .await
            .expect("opens");
        write(&writer, &["p1.editors"]).await;
        writer.pool().close().await;
        cluster.stop().await;
        let server = common::server::start(common::server::Options {
            config: gatehouse::config::Config {
                entities_db: Some(url.clone()),
                ..gatehouse::config::Config::default()
            },
            ..common::server::Options::default()
        })
        .await;
        let (status, ready) = server.get_json("/readyz").await;
        assert_eq!(status, 503, "{ready}");
        assert_eq!(ready["error"]["code"], "entities_unavailable", "{ready}");
        let (status, answer) = server.post("/v1/is_authorized", &edit(None)).await;
        assert_eq!(status, 503, "{answer}");
        assert_eq!(answer["error"]["code"], "entities_unavailable", "{answer}");
        cluster.start_again().await;
        let answer = until_answered(&server, &edit(None)).await;
        assert_eq!(answer["decision"], "Allow", "{answer}");
        let (status, ready) = server.get_json("/readyz").await;
        assert_eq!(status, 200, "{ready}");
        server.stop().await;
    });
}
