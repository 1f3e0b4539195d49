//! The example host application end to end: gatehouse and the app on 127.0.0.1:0, every
//! sharing flow walked as a user would, asserting what works and what is refused, with the
//! app's records in SQLite and again in PostgreSQL. Flows read as tables of steps: who, what
//! request, and what must come back.

use serde_json::{Value, json};

use crate::common;
use crate::common::server::TestServer;
use crate::sharing_app_host as app;
use gatehouse_client::Client;

/// The app, its gatehouse, and an HTTP client.
struct World {
    base: String,
    http: reqwest::Client,
    gatehouse: TestServer,
    /// The SQLite database's directory.
    _dir: tempfile::TempDir,
}

/// What a step must get back.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// 200.
    Ok,
    /// 403, whatever decided it.
    Refused,
    /// 403, decided by exactly these policies.
    RefusedBy(&'static [&'static str]),
    /// This status.
    Status(u16),
}
use Expect::{Ok, Refused, RefusedBy, Status};

/// One step of a flow: `user` sends `method path` with `body` and gets `expect`.
struct Step {
    user: &'static str,
    method: &'static str,
    path: String,
    body: Value,
    expect: Expect,
}

/// A table of steps, one per line: `(user, method, path, body) => expected`.
macro_rules! steps {
    ($(($user:expr, $method:expr, $path:expr, $body:expr) => $expect:expr),* $(,)?) => {
        [$(Step { user: $user, method: $method, path: String::from($path), body: $body, expect: $expect }),*]
    };
}

/// What came back.
struct Reply {
    status: u16,
    body: Value,
    what: String,
}

impl Reply {
    /// Asserts a 200 and returns the body.
    fn ok(self) -> Value {
        assert_eq!(self.status, 200, "{}: {}", self.what, self.body);
        self.body
    }

    /// Asserts a 403 in the app's error shape and returns the deciding policies.
    fn refused(self) -> Vec<String> {
        assert_eq!(
            self.status, 403,
            "{} should be refused: {}",
            self.what, self.body
        );
        let error = &self.body["error"];
        assert_eq!(error["code"], "forbidden", "{}: {}", self.what, self.body);
        serde_json::from_value(error["reasons"].clone()).expect("reasons")
    }

    /// Asserts `expect`.
    fn expect(self, expect: Expect) {
        match expect {
            Ok => {
                self.ok();
            }
            Refused => {
                self.refused();
            }
            RefusedBy(reasons) => {
                let what = self.what.clone();
                assert_eq!(self.refused(), reasons, "{what}");
            }
            Status(status) => assert_eq!(self.status, status, "{}: {}", self.what, self.body),
        }
    }
}

/// Requests sent as one user.
struct As<'a> {
    world: &'a World,
    user: Option<&'a str>,
}

impl As<'_> {
    async fn send(&self, method: &str, path: &str, body: Value) -> Reply {
        let mut request = self.world.http.request(
            method.parse().expect("method"),
            format!("{}{path}", self.world.base),
        );
        if let Some(user) = self.user {
            request = request.header("x-user", user);
        }
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        Reply {
            status,
            body: response.json().await.unwrap_or(Value::Null),
            what: format!("{:?}: {method} {path}", self.user),
        }
    }

    async fn get(&self, path: impl AsRef<str>) -> Reply {
        self.send("GET", path.as_ref(), Value::Null).await
    }

    async fn post(&self, path: impl AsRef<str>, body: Value) -> Reply {
        self.send("POST", path.as_ref(), body).await
    }

    async fn patch(&self, path: impl AsRef<str>, body: Value) -> Reply {
        self.send("PATCH", path.as_ref(), body).await
    }
}

/// Where the app keeps its records.
#[derive(Debug, Clone, Copy)]
enum Db {
    /// An in-memory SQLite.
    Sqlite,
    /// A schema of its own in the PostgreSQL of `scripts/test`.
    Postgres,
}

impl Db {
    /// A new database's URL (a file in `dir` for SQLite: the app and the sidecar share it).
    async fn url(self, dir: &std::path::Path) -> String {
        match self {
            Db::Sqlite => format!("sqlite://{}?mode=rwc", dir.join("app.db").display()),
            Db::Postgres => common::postgres::fresh_schema("sharing_app").await,
        }
    }
}

/// For each flow `name(db: Db)`, the tests `name::sqlite` and `name::postgres`.
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(super::Db::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() {
                super::$name(super::Db::Postgres).await
            }
        })*
    };
}

on_both_databases!(
    walkthrough_share_token_access_request_read_only_then_removed,
    a_viewer_cannot_reshare_and_an_editor_shares_only_when_allowed,
    organization_roles_combine_and_an_org_admins_access_is_fixed,
    in_processing_a_shared_editor_sees_edits_and_misses_the_right_items,
    expired_and_stopped_tokens_are_refused_and_a_new_one_works,
    invitations_members_roles_and_leaving,
    transfer_copy_export_import_archive_visibility,
    the_buttons_of_a_project_page,
    every_list_page_is_what_one_by_one_decisions_allow,
);

impl World {
    /// The app on a new database, and gatehouse serving that database through the app's
    /// mapping: every question is asked by id alone. On SQLite the sidecar looks for the
    /// app's writes only when a question waits for a token (its poll is an hour, its
    /// staleness bound too): a flow that reads right after a write passes only if the app
    /// asks at least at its write's position.
    async fn new(db: Db) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = db.url(dir.path()).await;
        // The app's tables first: the sidecar checks the mapping against them.
        app::Store::connect(&url).await.expect("the app's database");
        let hour = std::time::Duration::from_secs(3600);
        let gatehouse = common::server::start(common::server::Options {
            config: gatehouse::config::Config {
                entities_db: Some(url.clone()),
                entities_map: Some(common::root().join("examples/sharing_app/mapping.toml")),
                entities_poll: hour,
                max_staleness: hour,
                ..gatehouse::config::Config::default()
            },
            ..common::server::Options::default()
        })
        .await;
        Self::with_gatehouse_at(&gatehouse.base.clone(), gatehouse, &url, dir).await
    }

    async fn with_gatehouse_at(
        gatehouse_url: &str,
        gatehouse: TestServer,
        url: &str,
        dir: tempfile::TempDir,
    ) -> Self {
        let client = Client::new(gatehouse_url).expect("client");
        let app = app::App::connect(client, url)
            .await
            .expect("the app's database");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app::router(app)).await });
        let world = Self {
            base,
            http: reqwest::Client::new(),
            gatehouse,
            _dir: dir,
        };
        for user in ["ana", "adam", "cole", "eddie", "vic", "stan"] {
            let email = format!("{user}@example.com");
            let body = json!({"id": user, "email": email});
            world.anonymous().post("/users", body).await.ok();
        }
        world
    }

    /// Requests as `user` (the `x-user` header).
    fn as_<'a>(&'a self, user: &'a str) -> As<'a> {
        As {
            world: self,
            user: Some(user),
        }
    }

    /// Requests without `x-user`.
    fn anonymous(&self) -> As<'_> {
        As {
            world: self,
            user: None,
        }
    }

    /// Runs the steps in order.
    async fn run(&self, steps: &[Step]) {
        for s in steps {
            let user = self.as_(s.user);
            user.send(s.method, &s.path, s.body.clone())
                .await
                .expect(s.expect);
        }
    }

    async fn project(&self, owner: &str, name: &str) -> String {
        let body = json!({"name": name});
        id(&self.as_(owner).post("/projects", body).await.ok())
    }

    /// Invites `user` at `role` (as `by`) and has them accept.
    async fn share(&self, project: &str, by: &str, user: &str, role: &str) {
        let body = json!({"user": user, "role": role});
        let path = format!("/projects/{project}/invitations");
        let invitation = self.as_(by).post(path, body).await.ok();
        let path = format!("/invitations/{}/accept", id(&invitation));
        self.as_(user).post(path, NONE).await.ok();
    }

    /// The ids of `user`'s projects in list `which` (`owned`, `shared`, `organization`).
    async fn list(&self, user: &str, which: &str) -> Vec<String> {
        let lists = self.as_(user).get("/my/projects").await.ok();
        let list = lists[which].as_array().expect("list");
        list.iter().map(id).collect()
    }
}

fn id(record: &Value) -> String {
    record["id"].as_str().expect("id").to_string()
}

/// No body.
const NONE: Value = Value::Null;

async fn walkthrough_share_token_access_request_read_only_then_removed(db: Db) {
    let w = World::new(db).await;
    let p = w.project("ana", "Survey").await;
    w.share(&p, "ana", "adam", "admin").await;

    // An administrator generates a share token and notes its expiry.
    let body = json!({"expires_in_secs": 3600});
    let token = w
        .as_("adam")
        .post(format!("/projects/{p}/tokens"), body)
        .await
        .ok();
    let expiry = token["expires_at"].as_str().expect("expiry");
    assert!(humantime::parse_rfc3339(expiry).expect("RFC 3339") > std::time::SystemTime::now());

    // A colleague submits an access request with it; the administrator sees it pending.
    let path = format!("/tokens/{}/requests", id(&token));
    let request = w.as_("cole").post(path, NONE).await.ok();
    assert_eq!(request["status"], "pending");
    let pending = w
        .as_("adam")
        .get(format!("/projects/{p}/requests"))
        .await
        .ok();
    assert_eq!(pending["requests"][0]["requester"], "cole");

    // Accepted at Read Only: the colleague opens the project but cannot run processing.
    let accept = format!("/requests/{}/accept", id(&request));
    #[rustfmt::skip]
    w.run(&steps![
        ("adam", "POST", &accept, json!({"role": "viewer"})) => Ok,
        ("cole", "GET", format!("/projects/{p}"), NONE) => Ok,
        ("cole", "POST", format!("/projects/{p}/processing"), NONE) => RefusedBy(&[]),
    ]).await;
    assert_eq!(w.list("cole", "shared").await, [p.as_str()]);

    // Removed, the project disappears from the colleague's list and page.
    #[rustfmt::skip]
    w.run(&steps![
        ("adam", "DELETE", format!("/projects/{p}/members/cole"), NONE) => Ok,
        ("cole", "GET", format!("/projects/{p}"), NONE) => Refused,
    ]).await;
    assert!(w.list("cole", "shared").await.is_empty());
}

async fn a_viewer_cannot_reshare_and_an_editor_shares_only_when_allowed(db: Db) {
    let w = World::new(db).await;
    let p = w.project("ana", "Survey").await;
    w.share(&p, "ana", "vic", "viewer").await;
    w.share(&p, "ana", "eddie", "editor").await;
    let (invite, settings) = (
        format!("/projects/{p}/invitations"),
        format!("/projects/{p}/settings"),
    );
    #[rustfmt::skip]
    w.run(&steps![
        ("vic", "POST", &invite, json!({"user": "stan", "role": "viewer"})) => Refused,
        ("eddie", "POST", &invite, json!({"user": "stan", "role": "viewer"})) => Refused,
        // An editor cannot allow it themselves; the owner can.
        ("eddie", "PUT", &settings, json!({"editors_can_share": true})) => Refused,
        ("ana", "PUT", &settings, json!({"editors_can_share": true})) => Ok,
        ("eddie", "POST", &invite, json!({"user": "stan", "role": "editor"})) => Ok,
        // Up to the role ceiling: an editor grants at most editor.
        ("eddie", "POST", &invite, json!({"user": "cole", "role": "manager"}))
            => RefusedBy(&["sharing.manager-role-by-managers-and-up"]),
        ("vic", "POST", &invite, json!({"user": "cole", "role": "viewer"})) => Refused,
    ]).await;
}

async fn organization_roles_combine_and_an_org_admins_access_is_fixed(db: Db) {
    let w = World::new(db).await;
    for user in ["oa", "om", "oe", "ov"] {
        w.anonymous().post("/users", json!({"id": user})).await.ok();
    }
    w.as_("oa").post("/orgs", json!({"id": "acme"})).await.ok();
    #[rustfmt::skip]
    w.run(&steps![
        ("oa", "PUT", "/orgs/acme/members/om", json!({"role": "member"})) => Ok,
        ("oa", "PUT", "/orgs/acme/members/oe", json!({"role": "editor"})) => Ok,
        ("oa", "PUT", "/orgs/acme/members/ov", json!({"role": "viewer"})) => Ok,
        // Only organization admins set organization-wide roles.
        ("om", "PUT", "/orgs/acme/members/ov", json!({"role": "admin"})) => Refused,
        // Only members create projects in the organization.
        ("stan", "POST", "/projects", json!({"name": "x", "organization": "acme"})) => Refused,
    ]).await;
    let body = json!({"name": "Org survey", "organization": "acme"});
    let p = id(&w.as_("om").post("/projects", body).await.ok());
    let page = format!("/projects/{p}");
    #[rustfmt::skip]
    w.run(&steps![
        // Organization-wide roles apply to the organization's projects.
        ("oe", "PATCH", &page, json!({"name": "edited by an org editor"})) => Ok,
        ("ov", "GET", &page, NONE) => Ok,
        ("ov", "PATCH", &page, json!({"name": "no"})) => Refused,
        ("oa", "POST", format!("{page}/archive"), NONE) => Ok,
        ("oa", "POST", format!("{page}/restore"), NONE) => Ok,
    ]).await;
    // The highest of organization and project roles: an org viewer made project editor edits.
    w.share(&p, "om", "ov", "editor").await;
    w.as_("ov")
        .patch(&page, json!({"name": "by ov"}))
        .await
        .ok();
    // The organization's projects are listed for its members.
    assert_eq!(w.list("oe", "organization").await, [p.as_str()]);
    assert!(w.list("stan", "organization").await.is_empty());
    #[rustfmt::skip]
    w.run(&steps![
        // An org admin's access cannot be changed from a project.
        ("om", "PUT", format!("{page}/members/oa"), json!({"role": "viewer"}))
            => RefusedBy(&["sharing.org-admin-access-fixed"]),
        ("om", "DELETE", format!("{page}/members/oa"), NONE)
            => RefusedBy(&["sharing.org-admin-access-fixed"]),
        // An organization's project is shared only with its members.
        ("om", "POST", format!("{page}/invitations"), json!({"user": "stan", "role": "viewer"}))
            => RefusedBy(&["sharing.target-in-organization"]),
    ]).await;
}

async fn in_processing_a_shared_editor_sees_edits_and_misses_the_right_items(db: Db) {
    let w = World::new(db).await;
    let dump = json!({"name": "Phased", "phase": "processing", "items": [
        {"name": "plan", "phase": "planning"}, {"name": "run", "phase": "processing"}, {"name": "report", "phase": "report_ready"}]});
    let p = id(&w.as_("ana").post("/projects/import", dump).await.ok());
    w.share(&p, "ana", "eddie", "editor").await;

    let owner_items = w.as_("ana").get(format!("/projects/{p}/items")).await.ok();
    let item = |name: &str| {
        let items = owner_items["items"].as_array().expect("items");
        id(items.iter().find(|i| i["name"] == name).expect("item"))
    };
    let (plan, run, report) = (item("plan"), item("run"), item("report"));

    let visible = w
        .as_("eddie")
        .get(format!("/projects/{p}/items"))
        .await
        .ok();
    let visible = visible["items"].as_array().expect("items");
    let names: Vec<&str> = visible
        .iter()
        .map(|i| i["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["plan", "run"]);
    #[rustfmt::skip]
    w.run(&steps![
        ("eddie", "PATCH", format!("/items/{run}"), json!({"name": "run v2"})) => Ok,
        ("eddie", "PATCH", format!("/items/{plan}"), json!({"name": "no"}))
            => RefusedBy(&["phases.items-edited-in-their-phase"]),
        ("eddie", "GET", format!("/items/{report}"), NONE)
            => RefusedBy(&["phases.items-not-ahead-of-project"]),
    ]).await;
    // New items belong to the current phase; the owner edits any phase.
    let path = format!("/projects/{p}/items");
    let new = w.as_("eddie").post(path, json!({"name": "new"})).await.ok();
    assert_eq!(new["phase"], "processing");
    #[rustfmt::skip]
    w.run(&steps![
        ("ana", "PATCH", format!("/items/{report}"), json!({"name": "report v2"})) => Ok,
        // Downloads only when enabled.
        ("eddie", "GET", format!("/items/{plan}/download"), NONE) => Refused,
        ("ana", "PUT", format!("/projects/{p}/settings"), json!({"downloads_enabled": true})) => Ok,
        ("eddie", "GET", format!("/items/{plan}/download"), NONE) => Ok,
        ("eddie", "GET", format!("/projects/{p}/download"), NONE) => Ok,
        // Reports only once ready; then shared editors may no longer run processing.
        ("ana", "GET", format!("/projects/{p}/report"), NONE) => RefusedBy(&["phases.report-when-ready"]),
        ("eddie", "POST", format!("/projects/{p}/processing"), NONE) => Ok,
        ("eddie", "POST", format!("/projects/{p}/advance"), NONE) => Refused,
        ("ana", "POST", format!("/projects/{p}/advance"), NONE) => Ok,
        ("eddie", "GET", format!("/projects/{p}/report"), NONE) => Ok,
        ("eddie", "POST", format!("/projects/{p}/processing"), NONE)
            => RefusedBy(&["phases.processing-until-report"]),
        ("eddie", "GET", format!("/items/{report}"), NONE) => Ok,
    ]).await;
}

async fn expired_and_stopped_tokens_are_refused_and_a_new_one_works(db: Db) {
    let w = World::new(db).await;
    let p = w.project("ana", "Survey").await;
    let tokens = format!("/projects/{p}/tokens");
    let past = json!({"expires_at": "2020-01-01T00:00:00Z"});
    let expired = id(&w.as_("ana").post(&tokens, past).await.ok());
    let live = json!({"expires_in_secs": 600});
    let token = id(&w.as_("ana").post(&tokens, live.clone()).await.ok());
    #[rustfmt::skip]
    w.run(&steps![
        ("cole", "POST", format!("/tokens/{expired}/requests"), NONE) => RefusedBy(&["tokens.expired"]),
        // Reusable by several people until it expires or is stopped.
        ("cole", "POST", format!("/tokens/{token}/requests"), NONE) => Ok,
        ("stan", "POST", format!("/tokens/{token}/requests"), NONE) => Ok,
        ("ana", "POST", format!("/tokens/{token}/requests"), NONE) => RefusedBy(&["tokens.not-for-owner"]),
        ("cole", "DELETE", format!("/tokens/{token}"), NONE) => Refused,
        ("ana", "DELETE", format!("/tokens/{token}"), NONE) => Ok,
        ("vic", "POST", format!("/tokens/{token}/requests"), NONE) => RefusedBy(&["tokens.revoked"]),
    ]).await;
    let requests = w
        .as_("ana")
        .get(format!("/projects/{p}/requests"))
        .await
        .ok();
    let request_of = |who: &str| {
        let list = requests["requests"].as_array().expect("list");
        id(list
            .iter()
            .find(|r| r["requester"] == who)
            .expect("request"))
    };
    let (stan, cole) = (request_of("stan"), request_of("cole"));
    // A rejected request leaves no access.
    #[rustfmt::skip]
    w.run(&steps![
        ("ana", "POST", format!("/requests/{stan}/reject"), NONE) => Ok,
        ("stan", "GET", format!("/projects/{p}"), NONE) => Refused,
    ]).await;
    // A manager accepts up to Just Administrator.
    w.share(&p, "ana", "adam", "manager").await;
    #[rustfmt::skip]
    w.run(&steps![
        ("adam", "POST", format!("/requests/{cole}/accept"), json!({"role": "admin"}))
            => RefusedBy(&["sharing.admin-role-by-privileged-only"]),
        ("adam", "POST", format!("/requests/{cole}/accept"), json!({"role": "manager"})) => Ok,
    ]).await;
    // A new token works again.
    let fresh = id(&w.as_("ana").post(&tokens, live).await.ok());
    let path = format!("/tokens/{fresh}/requests");
    w.as_("vic").post(path, NONE).await.ok();
}

async fn invitations_members_roles_and_leaving(db: Db) {
    let w = World::new(db).await;
    let p = w.project("ana", "Survey").await;
    let invite = format!("/projects/{p}/invitations");
    // By e-mail, for someone without an account yet; resent; accepted once the account exists.
    let body = json!({"email": "nora@example.com", "role": "editor"});
    let by_mail = w.as_("ana").post(&invite, body).await.ok();
    assert_eq!(by_mail["invitee"], json!({"email": "nora@example.com"}));
    let path = format!("/invitations/{}/resend", id(&by_mail));
    assert_eq!(w.as_("ana").post(path, NONE).await.ok()["sent"], 2);
    let nora = json!({"id": "nora", "email": "nora@example.com"});
    w.anonymous().post("/users", nora).await.ok();
    let mine = w.as_("nora").get("/invitations").await.ok();
    assert_eq!(mine["invitations"][0]["project"], p);
    #[rustfmt::skip]
    w.run(&steps![
        ("nora", "POST", format!("/invitations/{}/accept", id(&by_mail)), NONE) => Ok,
        ("nora", "PATCH", format!("/projects/{p}"), json!({"name": "nora edits"})) => Ok,
    ]).await;

    // A cancelled invitation can no longer be accepted; only the invitee accepts.
    let body = json!({"user": "cole", "role": "viewer"});
    let pending = id(&w.as_("ana").post(&invite, body).await.ok());
    let body = json!({"user": "vic", "role": "viewer"});
    let other = id(&w.as_("ana").post(&invite, body).await.ok());
    #[rustfmt::skip]
    w.run(&steps![
        ("cole", "POST", format!("/invitations/{pending}/cancel"), NONE) => Refused,
        ("ana", "POST", format!("/invitations/{pending}/cancel"), NONE) => Ok,
        ("cole", "POST", format!("/invitations/{pending}/accept"), NONE) => Status(409),
        ("stan", "POST", format!("/invitations/{other}/accept"), NONE) => Refused,
    ]).await;

    // Change a member's role; remove a member; leave.
    w.share(&p, "ana", "adam", "manager").await;
    w.share(&p, "ana", "eddie", "viewer").await;
    let members = format!("/projects/{p}/members");
    #[rustfmt::skip]
    w.run(&steps![
        ("eddie", "PATCH", format!("/projects/{p}"), json!({"name": "no"})) => Refused,
        ("adam", "PUT", format!("{members}/eddie"), json!({"role": "editor"})) => Ok,
        ("eddie", "PATCH", format!("/projects/{p}"), json!({"name": "eddie edits"})) => Ok,
        ("adam", "PUT", format!("{members}/adam"), json!({"role": "admin"}))
            => RefusedBy(&["sharing.admin-role-by-privileged-only", "sharing.no-own-role-change"]),
        ("adam", "PUT", format!("{members}/ana"), json!({"role": "viewer"}))
            => RefusedBy(&["sharing.owner-access-fixed"]),
    ]).await;
    let list = w.as_("eddie").get(&members).await.ok();
    assert_eq!(list["members"]["eddie"], "editor");
    #[rustfmt::skip]
    w.run(&steps![
        ("eddie", "POST", format!("/projects/{p}/leave"), NONE) => Ok,
        ("eddie", "GET", format!("/projects/{p}"), NONE) => Refused,
        ("ana", "POST", format!("/projects/{p}/leave"), NONE) => RefusedBy(&["ownership.owner-cannot-leave"]),
        ("ana", "DELETE", format!("{members}/nora"), NONE) => Ok,
        ("nora", "GET", format!("/projects/{p}"), NONE) => Refused,
    ]).await;
}

async fn transfer_copy_export_import_archive_visibility(db: Db) {
    let w = World::new(db).await;
    let p = w.project("ana", "Survey").await;
    w.share(&p, "ana", "vic", "viewer").await;
    let page = format!("/projects/{p}");

    // Transfer: the previous owner keeps Full Administrator and cannot take ownership back.
    let to = |user: &str| json!({"to": user});
    w.as_("vic")
        .post(format!("{page}/transfer"), to("vic"))
        .await
        .refused();
    let moved = w
        .as_("ana")
        .post(format!("{page}/transfer"), to("adam"))
        .await
        .ok();
    assert_eq!(
        (moved["owner"].clone(), moved["members"]["ana"].clone()),
        (json!("adam"), json!("admin"))
    );
    #[rustfmt::skip]
    w.run(&steps![
        ("ana", "POST", format!("{page}/transfer"), to("ana")) => Refused,
        ("ana", "POST", format!("{page}/archive"), NONE) => Ok,
        ("ana", "POST", format!("{page}/restore"), NONE) => Ok,
        ("ana", "DELETE", &page, NONE) => Refused,
        // Copy and export: not for viewers.
        ("vic", "POST", format!("{page}/copy"), NONE) => Refused,
        ("vic", "GET", format!("{page}/export"), NONE) => Refused,
    ]).await;
    assert_eq!(w.list("adam", "owned").await, [p.as_str()]);
    assert_eq!(w.list("ana", "shared").await, [p.as_str()]);

    // A copy is private to its creator.
    let copy = w.as_("ana").post(format!("{page}/copy"), NONE).await.ok();
    assert_eq!(
        (copy["owner"].clone(), copy["members"].clone()),
        (json!("ana"), json!({}))
    );
    w.as_("vic")
        .get(format!("/projects/{}", id(&copy)))
        .await
        .refused();

    // Export and import: the imported project has no shares.
    let dump = w.as_("adam").get(format!("{page}/export")).await.ok();
    let imported = w.as_("stan").post("/projects/import", dump).await.ok();
    assert_eq!(
        (imported["owner"].clone(), imported["members"].clone()),
        (json!("stan"), json!({}))
    );

    // Archive: gone from shared users' lists and pages, not from the owner's.
    w.as_("adam")
        .post(format!("{page}/archive"), NONE)
        .await
        .ok();
    assert!(w.list("vic", "shared").await.is_empty());
    assert_eq!(w.list("adam", "owned").await, [p.as_str()]);
    #[rustfmt::skip]
    w.run(&steps![
        ("vic", "GET", &page, NONE) => RefusedBy(&["archive.hidden-from-shared-users"]),
        ("adam", "POST", format!("{page}/restore"), NONE) => Ok,
    ]).await;
    assert_eq!(w.list("vic", "shared").await, [p.as_str()]);

    // Public: anyone views and copies, nothing more.
    #[rustfmt::skip]
    w.run(&steps![
        ("stan", "GET", &page, NONE) => Refused,
        ("adam", "PUT", format!("{page}/visibility"), json!({"public": true})) => Ok,
        ("stan", "GET", &page, NONE) => Ok,
        ("stan", "POST", format!("{page}/copy"), NONE) => Ok,
        ("stan", "GET", format!("{page}/members"), NONE) => Refused,
        ("adam", "PUT", format!("{page}/visibility"), json!({"public": false})) => Ok,
        ("stan", "GET", &page, NONE) => Refused,
        ("adam", "DELETE", &page, NONE) => Ok,
    ]).await;
}

async fn the_buttons_of_a_project_page(db: Db) {
    let w = World::new(db).await;
    let p = w.project("ana", "Survey").await;
    w.share(&p, "ana", "vic", "viewer").await;
    let buttons = format!("/projects/{p}/buttons");
    let viewer = w.as_("vic").get(&buttons).await.ok();
    assert_eq!(viewer["allowed"], json!(["leave", "view", "view_members"]));
    let owner = w.as_("ana").get(&buttons).await.ok();
    let allowed = owner["allowed"].as_array().expect("allowed");
    for button in [
        "archive",
        "delete",
        "edit",
        "generate_share_token",
        "set_visibility",
        "view",
    ] {
        assert!(allowed.contains(&json!(button)), "{button}: {owner}");
    }
    let needs_context = owner["needs_context"].as_array().expect("list");
    assert!(needs_context.contains(&json!("share")), "{owner}");
    assert_eq!(w.as_("stan").get(&buttons).await.ok()["allowed"], json!([]));
}

/// The users of the list scenario: the first four are members of organization `acme`
/// (admin, editor, member, viewer), the last two outsiders.
const PEOPLE: [&str; 6] = ["ana", "adam", "cole", "vic", "eddie", "stan"];

/// What the list scenario made: projects, items and pending requests, by id.
struct Made {
    /// Each project with its owner and organization.
    projects: Vec<(String, &'static str, Option<&'static str>)>,
    /// Each item's id.
    items: Vec<(String, String)>,
    /// Each pending access request with its project.
    requests: Vec<(String, String)>,
}

impl World {
    /// A world of twelve projects with every kind of access: owned, shared at each role,
    /// organization-wide roles, archived and public projects, items in three phases, and
    /// pending access requests. Steps the policies refuse (sharing an organization's project
    /// with an outsider…) are simply not taken.
    async fn scenario(&self) -> Made {
        self.as_("ana")
            .post("/orgs", json!({"id": "acme"}))
            .await
            .ok();
        for (user, role) in [("adam", "editor"), ("cole", "member"), ("vic", "viewer")] {
            let path = format!("/orgs/acme/members/{user}");
            let body = json!({"role": role});
            self.as_("ana").send("PUT", &path, body).await.ok();
        }
        let roles = ["admin", "manager", "editor", "viewer"];
        let mut made = Made {
            projects: Vec::new(),
            items: Vec::new(),
            requests: Vec::new(),
        };
        for i in 0..12 {
            let owner = PEOPLE[i % 4];
            let org = (i % 3 == 0).then_some("acme");
            let body = json!({"name": format!("project {i}"), "organization": org});
            let p = id(&self.as_(owner).post("/projects", body).await.ok());
            let invite = format!("/projects/{p}/invitations");
            for (user, role) in [
                (PEOPLE[(i + 1) % 6], roles[i % 4]),
                (PEOPLE[(i + 4) % 6], "viewer"),
            ] {
                let body = json!({"user": user, "role": role});
                let reply = self.as_(owner).post(&invite, body).await;
                if reply.status == 200 {
                    let path = format!("/invitations/{}/accept", id(&reply.body));
                    self.as_(user).post(path, NONE).await.ok();
                }
            }
            let items = format!("/projects/{p}/items");
            for step in 0..=(i % 3) {
                if step > 0 {
                    self.as_(owner)
                        .post(format!("/projects/{p}/advance"), NONE)
                        .await
                        .ok();
                }
                let body = json!({"name": format!("item {step}")});
                let item = self.as_(owner).post(&items, body).await.ok();
                made.items.push((id(&item), p.clone()));
            }
            if i % 4 == 1 {
                let body = json!({"public": true});
                self.as_(owner)
                    .send("PUT", &format!("/projects/{p}/visibility"), body)
                    .await
                    .ok();
            }
            if i % 3 == 1 {
                let body = json!({"expires_in_secs": 600});
                let token = self
                    .as_(owner)
                    .post(format!("/projects/{p}/tokens"), body)
                    .await
                    .ok();
                for user in ["eddie", "stan"] {
                    let path = format!("/tokens/{}/requests", id(&token));
                    let reply = self.as_(user).post(path, NONE).await;
                    if reply.status == 200 {
                        made.requests.push((id(&reply.body), p.clone()));
                    }
                }
            }
            // Last: an archived project is frozen.
            if i % 5 == 0 {
                self.as_(owner)
                    .post(format!("/projects/{p}/archive"), NONE)
                    .await
                    .ok();
            }
            made.projects.push((p, owner, org));
        }
        made
    }

    /// Every row of a list page, following `next` with `limit` rows a page; the rows of
    /// each page come in id order.
    async fn all_pages(&self, user: &str, path: &str, lists: &[&str], limit: u64) -> Vec<Value> {
        let mut rows = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut url = format!("{path}?limit={limit}");
            if let Some(after) = &after {
                url.push_str(&format!("&after={after}"));
            }
            let page = self.as_(user).get(&url).await.ok();
            let mut ids = Vec::new();
            for list in lists {
                for row in page[list].as_array().expect("list") {
                    let mut row = row.clone();
                    row["list"] = json!(list);
                    ids.push(id(&row));
                    rows.push(row);
                }
            }
            assert!(ids.len() as u64 <= limit, "{url}: {page}");
            match page["next"].as_str() {
                Some(next) => {
                    assert_eq!(ids.len() as u64, limit, "{url}: a page with a next is full");
                    after = Some(next.to_string());
                }
                None => return rows,
            }
        }
    }

    /// Whether `user` gets a 200 for `GET path` (a 403 otherwise: nothing else may come).
    async fn may_get(&self, user: &str, path: &str) -> bool {
        let reply = self.as_(user).get(path).await;
        assert!(
            reply.status == 200 || reply.status == 403,
            "{}: {}",
            reply.what,
            reply.body
        );
        reply.status == 200
    }
}

impl World {
    /// `user`'s projects by one-by-one decisions: each project related to her (owned, a
    /// member's, her organization's) that she may `GET`, as `"<list> <id>"`; and how many
    /// related projects she may not see.
    async fn my_projects_one_by_one(&self, made: &Made, user: &str) -> (Vec<String>, usize) {
        let (mut expected, mut hidden) = (Vec::new(), 0);
        for (p, owner, org) in &made.projects {
            let members = self
                .as_(owner)
                .get(format!("/projects/{p}/members"))
                .await
                .ok();
            let list = if *owner == user {
                "owned"
            } else if members["members"].get(user).is_some() {
                "shared"
            } else if org.is_some() && PEOPLE[..4].contains(&user) {
                "organization"
            } else {
                continue;
            };
            if self.may_get(user, &format!("/projects/{p}")).await {
                expected.push(format!("{list} {p}"));
            } else {
                hidden += 1;
            }
        }
        (sorted(expected), hidden)
    }

    /// `user`'s projects by the app's list page, two a page, as `"<list> <id>"`.
    async fn my_projects_paged(&self, user: &str) -> Vec<String> {
        let lists = ["owned", "shared", "organization"];
        let pages = self.all_pages(user, "/my/projects", &lists, 2).await;
        let listed = pages
            .iter()
            .map(|row| format!("{} {}", row["list"].as_str().expect("list"), id(row)))
            .collect();
        sorted(listed)
    }
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// Every list page of the app (my projects, the items of a project, the requests to answer),
/// paged two or one rows at a time, lists exactly what asking about each record alone allows.
async fn every_list_page_is_what_one_by_one_decisions_allow(db: Db) {
    let w = World::new(db).await;
    let made = w.scenario().await;
    let (mut listed_projects, mut hidden_related) = (0, 0);
    for user in PEOPLE {
        // My projects: related to me (owner, member, organization) and viewable.
        let (expected, hidden) = w.my_projects_one_by_one(&made, user).await;
        assert_eq!(
            w.my_projects_paged(user).await,
            expected,
            "{user}'s projects"
        );
        listed_projects += expected.len();
        hidden_related += hidden;

        // The items of each project.
        for (p, _, _) in &made.projects {
            let mut expected = Vec::new();
            for (item, of) in made.items.iter().filter(|(_, of)| of == p) {
                if w.may_get(user, &format!("/items/{item}")).await {
                    expected.push(item.clone());
                }
                assert_eq!(of, p);
            }
            let path = format!("/projects/{p}/items");
            let pages = w.all_pages(user, &path, &["items"], 1).await;
            let listed = pages.iter().map(id).collect();
            assert_eq!(sorted(listed), sorted(expected), "{user}: items of {p}");
        }

        // The requests she may answer.
        let mut expected = Vec::new();
        for (request, p) in &made.requests {
            if w.may_get(user, &format!("/projects/{p}/requests")).await {
                expected.push(request.clone());
            }
        }
        let pages = w.all_pages(user, "/requests", &["requests"], 1).await;
        let listed = pages.iter().map(id).collect();
        assert_eq!(
            sorted(listed),
            sorted(expected),
            "{user}'s requests to answer"
        );
    }
    // The members panel: everyone with any of its actions, each with those she may take,
    // as gatehouse decides each (at the database's position now).
    let client = Client::new(&w.gatehouse.base).expect("client");
    let now = client.position().await.expect("position").body.position;
    let client = client.at_least(&now);
    let mut with_access = 0;
    for (p, owner, _) in &made.projects {
        let mut expected = Vec::new();
        for user in PEOPLE {
            let mut may = Vec::new();
            for action in ["view", "edit", "share", "delete"] {
                let mut question = gatehouse_client::Question::new(
                    gatehouse_client::Uid::user(user),
                    action,
                    gatehouse_client::Uid::project(p),
                );
                if action == "share" {
                    question = question.context(json!({"role": "viewer"}));
                }
                if client
                    .is_authorized(&question)
                    .await
                    .expect("decides")
                    .body
                    .allowed()
                {
                    may.push(action);
                }
            }
            if !may.is_empty() {
                expected.push(json!({"user": user, "actions": may}));
            }
        }
        expected.sort_by_key(|a| a["user"].as_str().map(str::to_string));
        let panel = w
            .as_(owner)
            .get(format!("/projects/{p}/members"))
            .await
            .ok();
        assert_eq!(panel["access"], json!(expected), "the members panel of {p}");
        with_access += expected.len();
    }
    assert!(with_access > made.projects.len(), "{with_access}");
    // The scenario is not trivial: lists are long, and some related projects are hidden.
    assert!(listed_projects >= 30, "{listed_projects}");
    assert!(hidden_related > 0);
    assert!(!made.requests.is_empty());
}

/// A policy the condition language cannot express (`like` on the resource) makes the `view`
/// plan not filterable: gatehouse then decides the candidates one by one for the app's list,
/// which is exactly what one-by-one decisions allow (now also the projects in planning, to
/// anyone: an organization's plain members among others).
#[tokio::test]
async fn a_plan_that_is_not_filterable_falls_back_to_decisions() {
    let w = World::new(Db::Sqlite).await;
    let made = w.scenario().await;
    let mut before = Vec::new();
    for user in PEOPLE {
        before.push(w.my_projects_paged(user).await);
    }
    let old = w.gatehouse.version();
    std::fs::write(
        w.gatehouse.policy_file("zz_like.cedar"),
        r#"@id("test.reports-by-pattern")
permit (principal, action == Action::"view", resource is Project)
when { resource.phase like "plan*" };
"#,
    )
    .expect("write");
    w.gatehouse
        .wait_for_new_version(&old, std::time::Duration::from_secs(10))
        .await
        .expect("the new policy is live");
    let client = Client::new(&w.gatehouse.base).expect("client");
    let user = gatehouse_client::User::new("stan").build();
    let plan = client
        .plan(
            &user.uid,
            "view",
            "Project",
            None,
            std::slice::from_ref(&user),
        )
        .await
        .expect("plan")
        .body
        .plan;
    assert!(!plan.filterable, "{plan:?}");
    assert!(
        plan.unsupported.as_deref().unwrap_or("").contains("like"),
        "{plan:?}"
    );

    let mut after = Vec::new();
    for user in PEOPLE {
        let (expected, _) = w.my_projects_one_by_one(&made, user).await;
        assert_eq!(
            w.my_projects_paged(user).await,
            expected,
            "{user}'s projects"
        );
        after.push(expected);
    }
    assert_ne!(before, after, "the new policy shows more projects");
}

#[tokio::test]
async fn a_bad_page_is_a_400_naming_the_field() {
    let w = World::new(Db::Sqlite).await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=many", "limit"),
        ("after=p1", "after"),
    ] {
        let reply = w.as_("ana").get(format!("/my/projects?{query}")).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        let message = reply.body["error"]["message"].as_str().expect("message");
        assert!(message.contains(field), "{query}: {message}");
    }
}

#[tokio::test]
async fn the_app_fails_closed_when_gatehouse_is_unreachable() {
    let gatehouse = common::server::start_default().await;
    // Point the app at a port where nothing listens.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let dead = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let dir = tempfile::tempdir().expect("temp dir");
    let url = Db::Sqlite.url(dir.path()).await;
    let w = World::with_gatehouse_at(&dead, gatehouse, &url, dir).await;
    // An individual project needs no question; opening it does.
    let p = w.project("ana", "x").await;
    let reply = w.as_("ana").get(format!("/projects/{p}")).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    let error = &reply.body["error"];
    assert_eq!(error["code"], "authorization_unavailable", "{}", reply.body);
    let message = error["message"].as_str().expect("message");
    assert!(message.contains("cannot reach gatehouse"), "{message}");
}

/// A 4xx from gatehouse means the host asked a bad question: a bug of the host's, answered
/// 500 (and logged), never the 503 of an unreachable sidecar, never a guess.
#[tokio::test]
async fn a_question_gatehouse_refuses_is_a_host_error_not_an_outage() {
    use gatehouse_client::{Question, Uid};
    let w = World::new(Db::Sqlite).await;
    let client = Client::new(&w.gatehouse.base).expect("client");
    let app = app::App::connect(client, "sqlite::memory:")
        .await
        .expect("database");
    let question = Question::new(Uid::user("ana"), "no_such_action", Uid::project("p"));
    let refused = app.authorize(question).await.expect_err("refused");
    assert!(
        matches!(refused, app::AppError::BadQuestion(_)),
        "{refused:?}"
    );
    let response = axum::response::IntoResponse::into_response(refused);
    assert_eq!(response.status(), 500);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(body["error"]["code"], "authorization_error", "{body}");
}

#[tokio::test]
async fn the_client_surfaces_request_ids_and_server_errors() {
    use gatehouse_client::{ClientError, Question, Uid};
    let gatehouse = common::server::start_default().await;
    let client = Client::new(&gatehouse.base).expect("client");
    let answer = client
        .is_authorized(&Question::new(Uid::user("a"), "view", Uid::project("p")))
        .await
        .expect("answer");
    assert!(!answer.body.allowed());
    assert_eq!(
        uuid::Uuid::parse_str(&answer.request_id)
            .expect("uuid")
            .get_version_num(),
        4
    );
    let error = client
        .is_authorized(&Question::new(Uid::user("a"), "edt", Uid::project("p")))
        .await
        .expect_err("unknown action");
    match error {
        ClientError::Rejected {
            status,
            code,
            message,
            field,
            request_id,
        } => {
            assert_eq!(
                (status, code.as_str(), message.as_str()),
                (400, "invalid_action", "unknown action `Action::\"edt\"`")
            );
            assert_eq!(field.as_deref(), Some("action"));
            assert!(!request_id.is_empty());
        }
        other => panic!("{other:?}"),
    }
    // A listener that accepts and never answers: the timeout must fire (a real sidecar can
    // answer within the timer's one-millisecond resolution, however short the timeout).
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_base = format!("http://{}", silent.local_addr().expect("addr"));
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let std::result::Result::Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    let timeout = Client::builder(&silent_base)
        .timeout(std::time::Duration::from_millis(100))
        .build()
        .expect("client");
    let timed_out = timeout
        .is_authorized(&Question::new(Uid::user("a"), "view", Uid::project("p")))
        .await;
    assert!(
        matches!(timed_out, Err(ClientError::Timeout { .. })),
        "{timed_out:?}"
    );
    held.abort();
    let batch = client
        .batch(
            &[],
            &[
                Question::new(Uid::user("a"), "view", Uid::project("p")),
                Question::new(Uid::user("a"), "nope", Uid::project("p")),
            ],
        )
        .await
        .expect("batch");
    assert!(
        matches!(&batch.body[1], gatehouse_client::BatchResult::Failed { code, .. } if code == "invalid_action")
    );
    gatehouse.stop().await;
}

/// Every builder of the client writes an entity the sidecar's schema accepts, and together
/// they decide as the contract says: a shared editor of an organization's project in processing
/// edits an item of that phase, and requests access with a live token.
#[tokio::test]
async fn the_clients_builders_write_entities_the_schema_accepts() {
    use gatehouse_client::{
        Group, Item, Organization, Phase, Project, Question, Role, ShareToken, Uid, User, datetime,
    };
    let gatehouse = common::server::start_default().await;
    let client = Client::new(&gatehouse.base).expect("client");
    let now = std::time::SystemTime::now();
    let mut entities = vec![
        User::new("vera")
            .email("vera@example.com")
            .member_of(Project::group("p1", Role::Editor))
            .member_of(Organization::members("acme"))
            .build(),
        Organization::new("acme").build(),
        Project::new("p1", "olga")
            .organization("acme")
            .phase(Phase::Processing)
            .build(),
        Item::new("i1", "p1", Phase::Processing).build(),
        ShareToken::new("t1", "p1", now + std::time::Duration::from_secs(3600)).build(),
    ];
    for role in [Role::Viewer, Role::Editor, Role::Manager, Role::Admin] {
        entities.push(Group::new(Project::group("p1", role)).build());
    }
    entities.push(Group::new(Organization::members("acme")).build());
    let questions = [
        Question::new(Uid::user("vera"), "edit", Uid::item("i1")),
        Question::new(Uid::user("vera"), "request_access", Uid::share_token("t1"))
            .context(json!({"now": datetime(now)})),
        Question::new(Uid::user("vera"), "delete", Uid::project("p1")),
    ];
    let answers = client.batch(&entities, &questions).await.expect("batch");
    let decisions: Vec<_> = answers
        .body
        .iter()
        .map(|result| match result {
            gatehouse_client::BatchResult::Decided(answer) => answer.allowed(),
            failed => panic!("{failed:?}"),
        })
        .collect();
    assert_eq!(decisions, [true, true, false]);
    gatehouse.stop().await;
}

/// `examples/k8s` as written can run: the app container, whose root file system is read-only
/// and which runs three replicas, takes its database from a Secret as `DATABASE_URL` (the
/// default SQLite file could be neither created nor shared), its image has a recipe in the
/// repository that builds this example, and the recipe's default arguments are the
/// manifest's. (The app on PostgreSQL is the `Db::Postgres` runs of the tests above.)
#[test]
fn the_k8s_manifest_runs_the_app_on_postgres_from_a_secret_with_an_image_recipe() {
    let root = common::root();
    let manifest =
        std::fs::read_to_string(root.join("examples/k8s/sharing-app.yaml")).expect("manifest");
    let app = &manifest[manifest.find("      containers:\n").expect("containers")..];
    let app = &app[..app.find("      volumes:\n").expect("volumes")];
    assert!(app.contains("readOnlyRootFilesystem: true"), "{app}");
    let env = app
        .find("- name: DATABASE_URL")
        .expect("the app's DATABASE_URL");
    assert!(
        app[env..].contains("secretKeyRef: {name: sharing-app-db, key: url, optional: false}"),
        "{app}"
    );
    assert!(
        manifest.contains("kubectl create secret generic sharing-app-db --from-literal=url="),
        "the manifest says how to create the Secret"
    );
    let recipe = "examples/k8s/sharing-app.Dockerfile";
    assert!(
        manifest.contains(&format!("docker build -f {recipe} ")),
        "{manifest}"
    );
    let dockerfile = std::fs::read_to_string(root.join(recipe)).expect("the app's Dockerfile");
    assert!(
        dockerfile.contains("cargo build --release --locked --example sharing_app"),
        "{dockerfile}"
    );
    assert!(
        dockerfile.contains("COPY --from=build /src/target/release/examples/sharing_app "),
        "{dockerfile}"
    );
    let args = app
        .lines()
        .find_map(|l| l.trim().strip_prefix("args: "))
        .expect("the app's args");
    let cmd = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("CMD "))
        .expect("CMD");
    assert_eq!(args, cmd);
    // The example reads its database from `DATABASE_URL` when no argument names one.
    let main = std::fs::read_to_string(root.join("examples/sharing_app/main.rs")).expect("main");
    assert!(main.contains("std::env::var(\"DATABASE_URL\")"), "{main}");
    // It asks by id: its sidecar reads the app's database through the app's mapping, once a
    // first init container has migrated the tables the mapping is checked against.
    let init = &manifest[manifest.find("      initContainers:\n").expect("init")..];
    let init = &init[..init.find("      containers:\n").expect("containers")];
    let (migrate, sidecar) = (
        init.find("- name: migrate").expect("a migrate step"),
        init.find("- name: gatehouse").expect("the sidecar"),
    );
    assert!(migrate < sidecar, "{init}");
    assert!(
        init[migrate..sidecar].contains(r#"args: ["migrate"]"#),
        "{init}"
    );
    assert!(
        main.contains("Some(\"migrate\")"),
        "the app has a migrate step"
    );
    let sidecar = &init[sidecar..];
    assert!(
        sidecar.contains("- name: GATEHOUSE_ENTITIES_DB"),
        "{sidecar}"
    );
    assert!(
        sidecar
            .contains("{name: GATEHOUSE_ENTITIES_MAP, value: /etc/gatehouse/mapping/mapping.toml}"),
        "{sidecar}"
    );
    assert!(
        manifest.contains("--from-file=examples/sharing_app/mapping.toml"),
        "the manifest says how to ship the mapping"
    );
}
