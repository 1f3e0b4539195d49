//! A real gatehouse server on `127.0.0.1:0` over a scratch copy of the bundled policies,
//! built by [`gatehouse::app::build`] exactly as `gatehouse serve` builds it (watcher, metrics,
//! decision log); and Cedar-JSON entity builders.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse::config::Config;
use gatehouse::http::AppState;
use gatehouse::policy::{LoadResult, PolicyStore, Sources};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// A running server and the files behind it.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The live store.
    pub store: Arc<PolicyStore>,
    /// The server's state (metrics, caches).
    pub state: AppState,
    /// Where its policies, schema and entities are.
    pub sources: Sources,
    /// An HTTP client.
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    dir: tempfile::TempDir,
}

// `stop` moves the directory out: the server must not be a `Drop` type.

/// Options for [`start`].
#[derive(Default)]
pub struct Options {
    /// The configuration; its listen address, sources and decision log are the scratch
    /// directory's.
    pub config: Config,
    /// Stored entities file content.
    pub stored_entities: Option<Value>,
    /// Decision log file name inside the scratch dir (and whether full).
    pub decision_log: Option<(&'static str, bool)>,
    /// Serve these files (read only) instead of a scratch copy of the bundled set.
    pub sources: Option<Sources>,
}

/// Starts a server with default options.
pub async fn start_default() -> TestServer {
    start(Options::default()).await
}

/// Starts a server whose stored entities are organization `acme` and `erin`, a member and
/// organization-wide editor of it.
pub async fn start_with_acme_stored() -> TestServer {
    let stored = json!([
        organization("acme"),
        user("erin", &["acme.members", "acme.editors"])
    ]);
    start(Options {
        stored_entities: Some(stored),
        ..Options::default()
    })
    .await
}

/// Starts a server.
pub async fn start(options: Options) -> TestServer {
    let (dir, mut sources) = super::scratch_copy();
    if let Some(own) = options.sources {
        sources = own;
    }
    if let Some(entities) = &options.stored_entities {
        let path = dir.path().join("stored").join("entities.json");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, serde_json::to_string_pretty(entities).expect("json"))
            .expect("write");
        sources.entities = Some(path);
    }
    let scratch = Config::for_sources(&sources);
    let config = Config {
        listen: "127.0.0.1:0".into(),
        policy: scratch.policy,
        entities: scratch.entities,
        decision_log: options
            .decision_log
            .map(|(name, _)| dir.path().join(name).display().to_string()),
        decision_log_full: options.decision_log.is_some_and(|(_, full)| full),
        ..options.config
    };
    let app = gatehouse::app::build(&config)
        .await
        .expect("the scratch sidecar starts");
    let base = format!("http://{}", app.address().expect("addr"));
    let (store, state) = (Arc::clone(app.store()), app.state().clone());
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    TestServer {
        base,
        store,
        state,
        sources,
        client: reqwest::Client::new(),
        shutdown: Some(tx),
        task: Some(task),
        dir,
    }
}

impl TestServer {
    /// The scratch directory.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// A policy file of the scratch set.
    pub fn policy_file(&self, name: &str) -> PathBuf {
        self.sources.policies.join(name)
    }

    /// POSTs JSON; returns the status and the JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, serde_json::to_vec(body).expect("json"))
            .await
    }

    /// POSTs raw bytes; returns the status and the JSON body.
    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// POSTs JSON asking for `application/x-ndjson`; returns the status, the content type
    /// and the body's text.
    pub async fn post_ndjson(&self, path: &str, body: &Value) -> (u16, String, String) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header("accept", "application/x-ndjson")
            .json(body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (status, kind, response.text().await.expect("body"))
    }

    /// GETs a path; returns the status and the body, read as JSON.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let (status, text) = self.get(path).await;
        (status, serde_json::from_str(&text).expect("a JSON answer"))
    }

    /// GETs a path; returns the status and the body text.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// The live policy version.
    pub fn version(&self) -> String {
        self.store.current().version.clone()
    }

    /// The live set's inputs digest (its policy version and its stored entities).
    pub fn inputs(&self) -> String {
        self.store.current().inputs.clone()
    }

    /// Waits until the live version differs from `old`, up to `limit`; returns how long it took.
    pub async fn wait_for_new_version(&self, old: &str, limit: Duration) -> Option<Duration> {
        self.wait_until(limit, || self.version() != old).await
    }

    /// Waits until the live inputs differ from `old` (a stored-entities change, which
    /// leaves the policy version as it was), up to `limit`.
    pub async fn wait_for_new_inputs(&self, old: &str, limit: Duration) -> Option<Duration> {
        self.wait_until(limit, || self.inputs() != old).await
    }

    async fn wait_until(&self, limit: Duration, done: impl Fn() -> bool) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if done() {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    }

    /// Waits until the last reload attempt failed, up to `limit`.
    pub async fn wait_for_failed_reload(&self, limit: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < limit {
            if self.store.status().result == LoadResult::Failed {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    }

    /// Stops the server gracefully (which flushes the decision log); returns the scratch
    /// directory, which lives as long as the caller keeps it.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // The log's sender lives in the state: let it go before the server flushes.
        drop(self.state);
        if let Some(task) = self.task.take() {
            task.await.expect("join").expect("server");
        }
        self.dir
    }
}

/// A user in these groups.
pub fn user(id: &str, groups: &[&str]) -> Value {
    let parents: Vec<Value> = groups
        .iter()
        .map(|g| json!({"type": "Group", "id": g}))
        .collect();
    json!({"uid": {"type": "User", "id": id}, "attrs": {}, "parents": parents})
}

/// Project `id` owned by `owner`, with groups `{id}.admins` etc., in `phase`; `flags` set
/// archived/public/downloads_enabled/editors_can_share (default false).
pub fn project(id: &str, owner: &str, phase: &str, flags: &[&str]) -> Value {
    let flag = |name: &str| flags.contains(&name);
    json!({"uid": {"type": "Project", "id": id}, "parents": [], "attrs": {
        "owner": {"type": "User", "id": owner},
        "admins": {"type": "Group", "id": format!("{id}.admins")},
        "managers": {"type": "Group", "id": format!("{id}.managers")},
        "editors": {"type": "Group", "id": format!("{id}.editors")},
        "viewers": {"type": "Group", "id": format!("{id}.viewers")},
        "phase": phase, "archived": flag("archived"), "public": flag("public"),
        "downloads_enabled": flag("downloads_enabled"), "editors_can_share": flag("editors_can_share")}})
}

/// The same, inside organization `org`.
pub fn org_project(id: &str, owner: &str, org: &str, phase: &str) -> Value {
    let mut p = project(id, owner, phase, &[]);
    p["attrs"]["organization"] = json!({"type": "Organization", "id": org});
    p
}

/// Organization `id` with groups `{id}.admins`, `{id}.data_owners`, `{id}.editors`,
/// `{id}.viewers`, `{id}.members`.
pub fn organization(id: &str) -> Value {
    let g = |role: &str| json!({"type": "Group", "id": format!("{id}.{role}")});
    json!({"uid": {"type": "Organization", "id": id}, "parents": [], "attrs": {
        "admins": g("admins"), "data_owners": g("data_owners"), "editors": g("editors"),
        "viewers": g("viewers"), "members": g("members")}})
}

/// A question body.
pub fn question(principal: &str, action: &str, resource: &str, entities: &[Value]) -> Value {
    json!({"principal": principal, "action": format!("Action::\"{action}\""), "resource": resource, "entities": entities})
}

/// The app over the bundled policies, built by the one builder, driven without its socket
/// (for `oneshot` property tests).
pub fn bundled_app(config: Config) -> (axum::Router, Arc<PolicyStore>) {
    let config = Config {
        listen: "127.0.0.1:0".into(),
        ..Config {
            policy: Config::for_sources(&super::bundled_sources()).policy,
            ..config
        }
    };
    let app = runtime()
        .block_on(gatehouse::app::build(&config))
        .expect("the bundled sidecar starts");
    (app.router(), Arc::clone(app.store()))
}

/// One current-thread runtime for the synchronous (proptest) tests that drive `oneshot`.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// Sends one request through the router; returns the status and the body.
pub async fn oneshot(app: &axum::Router, path: &str, body: Vec<u8>) -> (u16, Value) {
    use tower::ServiceExt;
    let request = axum::http::Request::post(path)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}
