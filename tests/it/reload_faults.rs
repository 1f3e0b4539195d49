//! Hot reload under faults (issue 23): a save in progress never serves its prefix, the
//! reload gates refuse a set that breaks a property or a suite, and a watch survives its
//! directory being replaced, as `mv`, `rm -rf` and a copy, `ln -sfn` and the kubelet do it.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::server::{Options, TestServer, project, question, start, user};
use gatehouse::config::Config;
use gatehouse::policy::{LoadResult, PolicyStore};
use serde_json::{Value, json};

/// Generous bound for CI machines.
const LIVE_WITHIN: Duration = Duration::from_secs(5);

/// vera, an editor of the archived project p1-archived, asks to edit it: Deny by
/// `archive.frozen` under the bundled set, Allow by `roles.editor` without `archive.cedar`.
fn archived_edit() -> Value {
    question(
        "User::\"vera\"",
        "edit",
        "Project::\"p1-archived\"",
        &[
            user("vera", &["p1-archived.editors"]),
            project("p1-archived", "olga", "processing", &["archived"]),
        ],
    )
}

/// Asks [`archived_edit`] over and over until stopped; every answer it got.
struct Asker {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Value>>,
}

impl Asker {
    fn start(server: &TestServer) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (client, url) = (
            server.client.clone(),
            format!("{}/v1/is_authorized", server.base),
        );
        let flag = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let body = serde_json::to_vec(&archived_edit()).expect("json");
            let mut answers = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let response = client.post(&url).body(body.clone()).send().await;
                let answer: Value = response.expect("answer").json().await.expect("json");
                answers.push(answer);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            answers
        });
        Self { stop, task }
    }

    /// Stops asking; asserts that no answer was Allow and returns how many there were.
    async fn never_allowed(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let answers = self.task.await.expect("asker");
        let allowed: Vec<&Value> = answers.iter().filter(|a| a["decision"] != "Deny").collect();
        assert!(
            allowed.is_empty(),
            "{} of {} answers were not Deny, the first: {}",
            allowed.len(),
            answers.len(),
            allowed[0]
        );
        for answer in &answers {
            assert_eq!(answer["diagnostics"]["reason"], json!(["archive.frozen"]));
        }
        answers.len()
    }
}

async fn status(server: &TestServer) -> Value {
    let (code, text) = server.get("/v1/status").await;
    assert_eq!(code, 200, "{text}");
    serde_json::from_str(&text).expect("json")
}

async fn metric(server: &TestServer, name: &str) -> String {
    let (_, text) = server.get("/metrics").await;
    text.lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no `{name}` in\n{text}"))
        .to_string()
}

/// Waits until the last reload's result is `result`.
async fn wait_for_result(server: &TestServer, result: LoadResult) {
    let deadline = Instant::now() + LIVE_WITHIN;
    while server.store.status().result != result {
        assert!(
            Instant::now() < deadline,
            "the last reload is {:?}, not {result:?}: {:?}",
            server.store.status().result,
            server.store.status()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `: > policies/archive.cedar`, the reproduction: without gates the emptied file is
/// held back (pending in `/v1/status`) for the settle time, so the archived project stays
/// frozen while a save in place is under way; once the content is back, nothing changed.
#[tokio::test]
async fn an_emptied_file_is_held_back_until_it_settles() {
    let server = start(Options::default()).await;
    let live = server.version();
    let file = server.policy_file("archive.cedar");
    let saved = std::fs::read_to_string(&file).expect("read");
    let asker = Asker::start(&server);
    std::fs::File::create(&file).expect("truncate");
    wait_for_result(&server, LoadResult::Pending).await;
    let shown = status(&server).await;
    let pending = &shown["last_reload"]["pending"];
    assert_eq!(shown["last_reload"]["result"], "pending", "{shown}");
    assert_eq!(pending["reason"], "settling", "{pending}");
    assert!(
        pending["dropped"]
            .as_array()
            .expect("dropped")
            .contains(&json!("archive.frozen")),
        "{pending}"
    );
    assert!(
        pending["files"][0]
            .as_str()
            .expect("file")
            .ends_with("archive.cedar"),
        "{pending}"
    );
    assert_eq!(
        metric(&server, "gatehouse_policy_reload_pending").await,
        "gatehouse_policy_reload_pending 1"
    );
    // The issue saw the Allow after about 1.5 s.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(server.version(), live);
    std::fs::write(&file, &saved).expect("the rest of the save");
    wait_for_result(&server, LoadResult::Unchanged).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = asker.never_allowed().await;
    assert!(asked > 50, "only {asked} answers");
    assert_eq!(server.version(), live);
    assert_eq!(
        metric(&server, "gatehouse_policy_reload_pending").await,
        "gatehouse_policy_reload_pending 0"
    );
    server.stop().await;
}

/// An emptied file left empty is an edit: it goes live once the files have settled, and
/// not before.
#[tokio::test]
async fn an_emptied_file_left_empty_goes_live_after_the_settle_time() {
    let server = start(Options {
        config: Config {
            settle: Duration::from_millis(800),
            ..Config::default()
        },
        ..Options::default()
    })
    .await;
    let live = server.version();
    let emptied = Instant::now();
    std::fs::write(server.policy_file("archive.cedar"), "// emptied\n").expect("write");
    let took = server
        .wait_for_new_version(&live, LIVE_WITHIN)
        .await
        .expect("the emptied file goes live");
    println!("emptied file live after {took:?}");
    assert!(
        emptied.elapsed() >= Duration::from_millis(800),
        "live after {:?}, before the settle time",
        emptied.elapsed()
    );
    let (_, answer) = server.post("/v1/is_authorized", &archived_edit()).await;
    assert_eq!(answer["decision"], "Allow", "{answer}");
    server.stop().await;
}

/// A slow save in place (10 bytes, a pause longer than the debounce, then the rest, as the
/// issue's fault injection wrote it) never serves the 10 bytes' set.
#[tokio::test]
async fn a_slow_save_in_place_never_serves_its_prefix() {
    use std::io::Write;

    let server = start(Options::default()).await;
    let live = server.version();
    let file = server.policy_file("archive.cedar");
    let text = format!(
        "{}\n// saved slowly\n",
        std::fs::read_to_string(&file).expect("read")
    );
    let asker = Asker::start(&server);
    let mut out = std::fs::File::create(&file).expect("open in place");
    out.write_all(&text.as_bytes()[..10]).expect("10 bytes");
    out.flush().expect("flush");
    tokio::time::sleep(Duration::from_millis(500)).await;
    out.write_all(&text.as_bytes()[10..]).expect("the rest");
    drop(out);
    server
        .wait_for_new_version(&live, LIVE_WITHIN)
        .await
        .expect("the saved file goes live");
    tokio::time::sleep(Duration::from_millis(200)).await;
    asker.never_allowed().await;
    assert_eq!(
        server.version(),
        gatehouse::policy::load(&server.sources)
            .expect("loads")
            .version
    );
    server.stop().await;
}

/// The gated configuration: the bundled properties and suites.
fn gated(settle: Duration) -> Config {
    Config {
        require_properties: Some(common::root().join("tests/properties")),
        require_suites: Some(common::root().join("tests/policies")),
        settle,
        ..Config::default()
    }
}

/// The server's builder without the binary's tools cannot open gates: a configuration that
/// asks for them is refused at start, never served ungated.
#[tokio::test]
async fn gates_asked_of_a_build_without_them_are_refused() {
    let config = Config {
        listen: "127.0.0.1:0".into(),
        require_suites: Some(common::root().join("tests/policies")),
        ..Config::for_sources(&common::bundled_sources())
    };
    let error = gatehouse::app::Application::build(&config)
        .await
        .expect_err("gates without the tools are refused");
    assert!(
        matches!(error, gatehouse::app::StartError::NoGates),
        "{error}"
    );
    assert!(error.to_string().contains("--require-suites"), "{error}");
    let gated = gatehouse::app::build(&config).await;
    assert!(gated.is_ok(), "{:?}", gated.err());
}

/// With the gates, an emptied file is refused however long it stays empty: the refuted
/// property and the failed cases are in `/v1/status`, with the counterexample, and
/// `gatehouse_policy_files_valid` is 0. A change the gates accept goes live.
#[tokio::test]
async fn the_gates_refuse_a_set_that_breaks_a_property_or_a_suite() {
    let server = start(Options {
        config: gated(Duration::ZERO),
        ..Options::default()
    })
    .await;
    let live = server.version();
    let file = server.policy_file("archive.cedar");
    let saved = std::fs::read_to_string(&file).expect("read");
    let asker = Asker::start(&server);
    std::fs::File::create(&file).expect("truncate");
    wait_for_result(&server, LoadResult::Refused).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    asker.never_allowed().await;
    assert_eq!(server.version(), live);
    let shown = status(&server).await;
    let refusals = shown["last_reload"]["refusals"]
        .as_array()
        .expect("refusals")
        .clone();
    let frozen = refusals
        .iter()
        .find(|r| r["gate"] == "property" && r["name"] == "archived-projects-are-frozen")
        .unwrap_or_else(|| panic!("no refuted property in {refusals:#?}"));
    assert!(
        frozen["message"]
            .as_str()
            .expect("message")
            .starts_with("refuted"),
        "{frozen}"
    );
    assert!(
        frozen["location"]
            .as_str()
            .expect("location")
            .contains("safety.cedar:"),
        "{frozen}"
    );
    // The counterexample is a question the candidate allows, as the sidecar answers it.
    let counterexample = &frozen["detail"];
    assert_eq!(
        counterexample["answer"]["decision"], "Allow",
        "{counterexample}"
    );
    assert_eq!(counterexample["confirmed"], true, "{counterexample}");
    assert!(
        refusals.iter().any(|r| r["gate"] == "suite"
            && r["location"]
                .as_str()
                .is_some_and(|l| l.contains("archive.test.json:"))),
        "no failed archive case in {refusals:#?}"
    );
    assert_eq!(shown["last_reload"]["result"], "refused");
    assert_eq!(
        metric(&server, "gatehouse_policy_files_valid").await,
        "gatehouse_policy_files_valid 0"
    );
    // A forced reload is refused the same way, with every reason.
    let (code, answer) = server.post("/v1/reload", &json!({})).await;
    assert_eq!(code, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "reload_refused");
    assert!(
        !answer["error"]["refusals"]
            .as_array()
            .expect("refusals")
            .is_empty()
    );

    // Restored, it is the live set again; a change every gate accepts goes live, and how
    // long the gates take is printed (`--nocapture`).
    std::fs::write(&file, &saved).expect("restore");
    wait_for_result(&server, LoadResult::Unchanged).await;
    let written = Instant::now();
    std::fs::write(&file, format!("{saved}\n// accepted\n")).expect("write");
    server
        .wait_for_new_version(&live, Duration::from_secs(30))
        .await
        .expect("an accepted change goes live");
    println!(
        "a change through both gates went live after {:?}",
        written.elapsed()
    );
    assert_eq!(
        metric(&server, "gatehouse_policy_files_valid").await,
        "gatehouse_policy_files_valid 1"
    );
    server.stop().await;
}

/// A first set that its gates refuse never serves.
#[tokio::test]
async fn a_first_set_the_gates_refuse_does_not_start() {
    let (_dir, sources) = common::scratch_copy();
    std::fs::write(sources.policies.join("archive.cedar"), "").expect("empty");
    let config = Config {
        listen: "127.0.0.1:0".into(),
        ..Config {
            policy: Config::for_sources(&sources).policy,
            ..gated(Duration::ZERO)
        }
    };
    match gatehouse::app::build(&config).await {
        Err(gatehouse::app::StartError::Refused(failures)) => {
            assert!(
                failures
                    .iter()
                    .any(|f| f.name == "archived-projects-are-frozen"),
                "{failures:#?}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Copies the bundled policies into `dir`, with `public.cedar` changed so that the copy's
/// version differs.
fn policies_copy(dir: &Path, marker: &str) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for entry in std::fs::read_dir(common::root().join("policies")).expect("read") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dir.join(path.file_name().expect("name"))).expect("copy");
    }
    let public = dir.join("public.cedar");
    let text = std::fs::read_to_string(&public).expect("read");
    std::fs::write(&public, format!("{text}\n// {marker}\n")).expect("write");
}

/// `mv policies policies.old && mv policies.new policies`, then `rm -rf policies` and a
/// copy, then a symlinked directory swapped with `ln -sfn`: each new set goes live, and
/// edits inside the new directory are seen too.
#[tokio::test]
async fn a_replaced_policies_directory_is_watched_again() {
    let server = start(Options {
        config: Config {
            settle: Duration::from_millis(200),
            ..Config::default()
        },
        ..Options::default()
    })
    .await;
    let dir = server.sources.policies.clone();
    let parent = dir.parent().expect("parent").to_path_buf();
    let expect_live = async |what: &str| {
        let expected = gatehouse::policy::load(&server.sources)
            .expect("loads")
            .version;
        let deadline = Instant::now() + LIVE_WITHIN;
        while server.version() != expected {
            assert!(
                Instant::now() < deadline,
                "{what}: {:?}",
                server.store.status()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };

    // mv, mv.
    policies_copy(&parent.join("policies.new"), "moved in");
    std::fs::rename(&dir, parent.join("policies.old")).expect("mv away");
    std::fs::rename(parent.join("policies.new"), &dir).expect("mv in");
    expect_live("the moved-in directory").await;
    common::edit(
        &dir.join("public.cedar"),
        "// moved in",
        "// edited after the move",
    );
    expect_live("an edit in the moved-in directory").await;

    // rm -rf, then a copy file by file.
    std::fs::remove_dir_all(&dir).expect("rm -rf");
    policies_copy(&dir, "copied");
    expect_live("the copied directory").await;
    common::edit(
        &dir.join("public.cedar"),
        "// copied",
        "// edited after the copy",
    );
    expect_live("an edit in the copied directory").await;

    // A symlink to a directory, swapped as `ln -sfn` does (a new link renamed over it).
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        std::fs::remove_dir_all(&dir).expect("rm");
        policies_copy(&parent.join("v1"), "v1");
        symlink("v1", &dir).expect("link");
        expect_live("the linked directory").await;
        policies_copy(&parent.join("v2"), "v2");
        symlink("v2", parent.join("policies.tmp")).expect("new link");
        std::fs::rename(parent.join("policies.tmp"), &dir).expect("ln -sfn");
        expect_live("the relinked directory").await;
        common::edit(&parent.join("v2/public.cedar"), "// v2", "// v2, edited");
        expect_live("an edit in the relinked directory").await;
    }
    assert_eq!(
        metric(&server, "gatehouse_policy_files_valid").await,
        "gatehouse_policy_files_valid 1"
    );
    server.stop().await;
}

/// The kubelet's atomic writer, step by step (`pkg/volume/util/atomic_writer.go`): the
/// payload in a new `..<timestamp>` directory, a `..data_tmp` symlink to it renamed over
/// `..data`, then the user-visible symlinks of added files created and those of removed
/// files deleted, and the old directory removed.
#[cfg(unix)]
struct Kubelet {
    mount: PathBuf,
    generation: u32,
}

#[cfg(unix)]
impl Kubelet {
    /// Mounts `files` (name, content) as a ConfigMap volume at `mount`.
    fn mount(mount: &Path, files: &[(String, String)]) -> Self {
        std::fs::create_dir_all(mount).expect("mkdir");
        let mut kubelet = Self {
            mount: mount.to_path_buf(),
            generation: 0,
        };
        kubelet.update(files);
        kubelet
    }

    fn update(&mut self, files: &[(String, String)]) {
        use std::os::unix::fs::symlink;
        self.generation += 1;
        let old = std::fs::read_link(self.mount.join("..data")).ok();
        let stamp = format!(
            "..2026_12_03_12_00_{:02}.{:09}",
            self.generation, 123_456_789
        );
        let payload = self.mount.join(&stamp);
        std::fs::create_dir(&payload).expect("payload dir");
        for (name, text) in files {
            std::fs::write(payload.join(name), text).expect("payload file");
        }
        symlink(&stamp, self.mount.join("..data_tmp")).expect("..data_tmp");
        std::fs::rename(self.mount.join("..data_tmp"), self.mount.join("..data"))
            .expect("..data swap");
        for (name, _) in files {
            let link = self.mount.join(name);
            if std::fs::symlink_metadata(&link).is_err() {
                symlink(format!("..data/{name}"), &link).expect("user-visible link");
            }
        }
        for entry in std::fs::read_dir(&self.mount).expect("read mount") {
            let entry = entry.expect("entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with("..") && !files.iter().any(|(n, _)| *n == name) {
                std::fs::remove_file(entry.path()).expect("stale link");
            }
        }
        if let Some(old) = old {
            std::fs::remove_dir_all(self.mount.join(old)).expect("old payload");
        }
    }
}

/// A ConfigMap mounted and updated as the kubelet does it: an edited file, an added file
/// and a removed file each go live.
#[cfg(unix)]
#[test]
fn a_configmap_updated_as_the_kubelet_does_it_goes_live() {
    let root = tempfile::tempdir().expect("temp");
    let mount = root.path().join("policies");
    let mut files: Vec<(String, String)> = std::fs::read_dir(common::root().join("policies"))
        .expect("read")
        .map(|e| {
            let path = e.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read_to_string(&path).expect("read"))
        })
        .collect();
    let mut kubelet = Kubelet::mount(&mount, &files);
    let sources = gatehouse::policy::Sources {
        policies: mount.clone(),
        ..common::bundled_sources()
    };
    let store = Arc::new(
        PolicyStore::open(sources.clone())
            .expect("the mounted set loads")
            .with_settle(Duration::from_millis(200)),
    );
    assert_eq!(store.current().info.len(), 41);
    let _watcher = gatehouse::policy::watch::watch(Arc::clone(&store)).expect("watch");
    let goes_live = |what: &str| {
        let expected = gatehouse::policy::load(&sources).expect("loads").version;
        let deadline = Instant::now() + LIVE_WITHIN;
        while store.current().version != expected {
            assert!(Instant::now() < deadline, "{what}: {:?}", store.status());
            std::thread::sleep(Duration::from_millis(10));
        }
    };

    files
        .iter_mut()
        .find(|(n, _)| n == "public.cedar")
        .expect("public.cedar")
        .1
        .push_str("\n// edited\n");
    kubelet.update(&files);
    goes_live("an edited file");
    files.push((
        "extra.cedar".into(),
        "@id(\"extra.viewers-copy\")\npermit (principal, action == Action::\"copy\", resource is Project)\nwhen { principal in resource.viewers };\n".into(),
    ));
    kubelet.update(&files);
    goes_live("an added file");
    assert_eq!(store.current().info.len(), 42);
    files.retain(|(n, _)| n != "extra.cedar");
    kubelet.update(&files);
    goes_live("a removed file");
    assert_eq!(store.current().info.len(), 41);
    // The status is recorded with the swap, so it is never behind the live set; a late event
    // of the kubelet's last step can only find the files unchanged.
    let result = store.status().result;
    assert!(
        matches!(result, LoadResult::Ok | LoadResult::Unchanged),
        "{result:?}"
    );
}

/// The files of `dir` (not its subdirectories), as (name, content).
#[cfg(unix)]
fn files_of(dir: &Path) -> Vec<(String, String)> {
    std::fs::read_dir(dir)
        .expect("read")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("read"))
        })
        .collect()
}

/// The gates of `examples/k8s/sharing-app.yaml`, mounted as the kubelet mounts them: the
/// properties, the suites and their fixtures each a ConfigMap (the fixtures one mounted
/// inside the suites' directory). The gated set starts from them, and a policy change the
/// mounted suites refuse is refused, while its fixed version goes live.
#[cfg(unix)]
#[tokio::test]
async fn gates_mounted_as_configmaps_hold() {
    let root = tempfile::tempdir().expect("temp");
    let etc = root.path();
    let _properties = Kubelet::mount(
        &etc.join("properties"),
        &files_of(&common::root().join("tests/properties")),
    );
    let _suites = Kubelet::mount(
        &etc.join("suites"),
        &files_of(&common::root().join("tests/policies")),
    );
    let _fixtures = Kubelet::mount(
        &etc.join("suites/fixtures"),
        &files_of(&common::root().join("tests/policies/fixtures")),
    );
    let server = start(Options {
        config: Config {
            require_properties: Some(etc.join("properties")),
            require_suites: Some(etc.join("suites")),
            settle: Duration::ZERO,
            ..Config::default()
        },
        ..Options::default()
    })
    .await;
    let live = server.version();
    let file = server.policy_file("archive.cedar");
    let saved = std::fs::read_to_string(&file).expect("read");
    std::fs::File::create(&file).expect("truncate");
    wait_for_result(&server, LoadResult::Refused).await;
    let refusals = server.store.status().refusals;
    let suites = etc.join("suites").display().to_string();
    assert!(
        refusals.iter().any(|r| r
            .location
            .starts_with(&format!("{suites}/archive.test.json:"))),
        "no case of the mounted suites in {refusals:#?}"
    );
    assert!(
        refusals
            .iter()
            .any(|r| r.name == "archived-projects-are-frozen"),
        "no refuted property of the mounted properties in {refusals:#?}"
    );
    assert_eq!(server.version(), live);
    // A change the mounted suites (with their fixtures) and properties accept goes live.
    std::fs::write(&file, format!("{saved}\n// accepted\n")).expect("write");
    server
        .wait_for_new_version(&live, Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("refused: {:#?}", server.store.status().refusals));
    server.stop().await;
}
