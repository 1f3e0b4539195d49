//! The example host application end to end: gatehouse and the app on 127.0.0.1:0, every
//! sharing flow walked as a user would, asserting what works and what is refused.

use crate::common;

use crate::sharing_app_host as app;

use common::server::TestServer;
use gatehouse::client::Client;
use serde_json::{Value, json};

struct World {
    base: String,
    http: reqwest::Client,
    gatehouse: TestServer,
}

impl World {
    async fn new() -> Self {
        let gatehouse = common::server::start_default().await;
        Self::with_gatehouse_at(&gatehouse.base.clone(), gatehouse).await
    }

    async fn with_gatehouse_at(url: &str, gatehouse: TestServer) -> Self {
        let app = app::App::new(Client::new(url).expect("client"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app::router(app)).await });
        let world = Self {
            base,
            http: reqwest::Client::new(),
            gatehouse,
        };
        for (user, email) in [
            ("ana", "ana@example.com"),
            ("adam", "adam@example.com"),
            ("cole", "cole@example.com"),
            ("eddie", "eddie@example.com"),
            ("vic", "vic@example.com"),
            ("stan", "stan@example.com"),
        ] {
            world
                .call("POST", "/users", None, json!({"id": user, "email": email}))
                .await;
        }
        world
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        user: Option<&str>,
        body: Value,
    ) -> (u16, Value) {
        let mut request = self.http.request(
            method.parse().expect("method"),
            format!("{}{path}", self.base),
        );
        if let Some(user) = user {
            request = request.header("x-user", user);
        }
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn ok(&self, method: &str, path: &str, user: &str, body: Value) -> Value {
        let (status, answer) = self.call(method, path, Some(user), body).await;
        assert_eq!(status, 200, "{user}: {method} {path}: {answer}");
        answer
    }

    /// Asserts a 403 and returns the deciding policies.
    async fn refused(&self, method: &str, path: &str, user: &str, body: Value) -> Vec<String> {
        let (status, answer) = self.call(method, path, Some(user), body).await;
        assert_eq!(
            status, 403,
            "{user}: {method} {path} should be refused: {answer}"
        );
        assert_eq!(answer["error"], "forbidden");
        serde_json::from_value(answer["reasons"].clone()).expect("reasons")
    }

    async fn project(&self, owner: &str, name: &str) -> String {
        let project = self
            .ok("POST", "/projects", owner, json!({"name": name}))
            .await;
        project["id"].as_str().expect("id").to_string()
    }

    /// Invites `user` at `role` (as `by`) and has them accept.
    async fn share(&self, project: &str, by: &str, user: &str, role: &str) {
        let invitation = self
            .ok(
                "POST",
                &format!("/projects/{project}/invitations"),
                by,
                json!({"user": user, "role": role}),
            )
            .await;
        let id = invitation["id"].as_str().expect("id");
        self.ok(
            "POST",
            &format!("/invitations/{id}/accept"),
            user,
            Value::Null,
        )
        .await;
    }

    async fn list(&self, user: &str) -> Value {
        self.ok("GET", "/my/projects", user, Value::Null).await
    }
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("list")
        .iter()
        .map(|p| p["id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test]
async fn walkthrough_share_token_access_request_read_only_then_removed() {
    let w = World::new().await;
    let p = w.project("ana", "Survey").await;
    w.share(&p, "ana", "adam", "admin").await;

    // An administrator generates a share token and notes its expiry.
    let token = w
        .ok(
            "POST",
            &format!("/projects/{p}/tokens"),
            "adam",
            json!({"expires_in_secs": 3600}),
        )
        .await;
    let expiry = token["expires_at"].as_str().expect("expiry");
    assert!(humantime::parse_rfc3339(expiry).expect("RFC 3339") > std::time::SystemTime::now());
    let token = token["id"].as_str().expect("token").to_string();

    // A colleague submits an access request with it.
    let request = w
        .ok(
            "POST",
            &format!("/tokens/{token}/requests"),
            "cole",
            Value::Null,
        )
        .await;
    assert_eq!(request["status"], "pending");
    let pending = w
        .ok(
            "GET",
            &format!("/projects/{p}/requests"),
            "adam",
            Value::Null,
        )
        .await;
    assert_eq!(pending["requests"][0]["requester"], "cole");

    // The administrator accepts at Read Only.
    let id = request["id"].as_str().expect("id");
    w.ok(
        "POST",
        &format!("/requests/{id}/accept"),
        "adam",
        json!({"role": "viewer"}),
    )
    .await;

    // The colleague can open the project but cannot run processing.
    assert_eq!(
        w.ok("GET", &format!("/projects/{p}"), "cole", Value::Null)
            .await["name"],
        "Survey"
    );
    assert_eq!(
        w.refused(
            "POST",
            &format!("/projects/{p}/processing"),
            "cole",
            Value::Null
        )
        .await,
        Vec::<String>::new()
    );
    assert_eq!(ids(&w.list("cole").await["shared"]), vec![p.clone()]);

    // The administrator removes the colleague; the project disappears from the list.
    w.ok(
        "DELETE",
        &format!("/projects/{p}/members/cole"),
        "adam",
        Value::Null,
    )
    .await;
    assert!(ids(&w.list("cole").await["shared"]).is_empty());
    w.refused("GET", &format!("/projects/{p}"), "cole", Value::Null)
        .await;
}

#[tokio::test]
async fn a_viewer_cannot_reshare_and_an_editor_shares_only_when_allowed() {
    let w = World::new().await;
    let p = w.project("ana", "Survey").await;
    w.share(&p, "ana", "vic", "viewer").await;
    w.share(&p, "ana", "eddie", "editor").await;

    w.refused(
        "POST",
        &format!("/projects/{p}/invitations"),
        "vic",
        json!({"user": "stan", "role": "viewer"}),
    )
    .await;
    w.refused(
        "POST",
        &format!("/projects/{p}/invitations"),
        "eddie",
        json!({"user": "stan", "role": "viewer"}),
    )
    .await;
    // An editor cannot allow it themselves; the owner can.
    w.refused(
        "PUT",
        &format!("/projects/{p}/settings"),
        "eddie",
        json!({"editors_can_share": true}),
    )
    .await;
    w.ok(
        "PUT",
        &format!("/projects/{p}/settings"),
        "ana",
        json!({"editors_can_share": true}),
    )
    .await;
    w.ok(
        "POST",
        &format!("/projects/{p}/invitations"),
        "eddie",
        json!({"user": "stan", "role": "editor"}),
    )
    .await;
    // Up to the role ceiling: an editor grants at most editor.
    let reasons = w
        .refused(
            "POST",
            &format!("/projects/{p}/invitations"),
            "eddie",
            json!({"user": "cole", "role": "manager"}),
        )
        .await;
    assert_eq!(reasons, ["sharing.manager-role-by-managers-and-up"]);
    w.refused(
        "POST",
        &format!("/projects/{p}/invitations"),
        "vic",
        json!({"user": "cole", "role": "viewer"}),
    )
    .await;
}

#[tokio::test]
async fn organization_roles_combine_and_an_org_admins_access_is_fixed() {
    let w = World::new().await;
    for user in ["oa", "om", "oe", "ov"] {
        w.call("POST", "/users", None, json!({"id": user})).await;
    }
    w.ok("POST", "/orgs", "oa", json!({"id": "acme"})).await;
    for (user, role) in [("om", "member"), ("oe", "editor"), ("ov", "viewer")] {
        w.ok(
            "PUT",
            &format!("/orgs/acme/members/{user}"),
            "oa",
            json!({"role": role}),
        )
        .await;
    }
    // Only organization admins set organization-wide roles.
    w.refused(
        "PUT",
        "/orgs/acme/members/ov",
        "om",
        json!({"role": "admin"}),
    )
    .await;
    // Only members create projects in the organization.
    w.refused(
        "POST",
        "/projects",
        "stan",
        json!({"name": "x", "organization": "acme"}),
    )
    .await;
    let p = w
        .ok(
            "POST",
            "/projects",
            "om",
            json!({"name": "Org survey", "organization": "acme"}),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_string();

    // Organization-wide roles apply to the organization's projects.
    w.ok(
        "PATCH",
        &format!("/projects/{p}"),
        "oe",
        json!({"name": "edited by an org editor"}),
    )
    .await;
    w.ok("GET", &format!("/projects/{p}"), "ov", Value::Null)
        .await;
    w.refused(
        "PATCH",
        &format!("/projects/{p}"),
        "ov",
        json!({"name": "no"}),
    )
    .await;
    w.ok("POST", &format!("/projects/{p}/archive"), "oa", Value::Null)
        .await;
    w.ok("POST", &format!("/projects/{p}/restore"), "oa", Value::Null)
        .await;
    // The highest of organization and project roles: an org viewer made project editor edits.
    w.share(&p, "om", "ov", "editor").await;
    w.ok(
        "PATCH",
        &format!("/projects/{p}"),
        "ov",
        json!({"name": "edited by ov"}),
    )
    .await;
    // The organization's projects are listed for its members.
    assert_eq!(ids(&w.list("oe").await["organization"]), vec![p.clone()]);
    assert!(ids(&w.list("stan").await["organization"]).is_empty());

    // An org admin's access cannot be changed from a project.
    let reasons = w
        .refused(
            "PUT",
            &format!("/projects/{p}/members/oa"),
            "om",
            json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(reasons, ["sharing.org-admin-access-fixed"]);
    assert_eq!(
        w.refused(
            "DELETE",
            &format!("/projects/{p}/members/oa"),
            "om",
            Value::Null
        )
        .await,
        ["sharing.org-admin-access-fixed"]
    );
    // An organization's project is shared only with its members.
    assert_eq!(
        w.refused(
            "POST",
            &format!("/projects/{p}/invitations"),
            "om",
            json!({"user": "stan", "role": "viewer"})
        )
        .await,
        ["sharing.target-in-organization"]
    );
}

#[tokio::test]
async fn in_processing_a_shared_editor_sees_edits_and_misses_the_right_items() {
    let w = World::new().await;
    let dump = json!({"name": "Phased", "phase": "processing", "items": [
        {"name": "plan", "phase": "planning"}, {"name": "run", "phase": "processing"}, {"name": "report", "phase": "report_ready"}]});
    let p = w.ok("POST", "/projects/import", "ana", dump).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    w.share(&p, "ana", "eddie", "editor").await;

    let owner_items = w
        .ok("GET", &format!("/projects/{p}/items"), "ana", Value::Null)
        .await;
    let item = |name: &str| {
        owner_items["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|i| i["name"] == name)
            .expect("item")["id"]
            .as_str()
            .expect("id")
            .to_string()
    };
    let (plan, run, report) = (item("plan"), item("run"), item("report"));

    let visible = w
        .ok("GET", &format!("/projects/{p}/items"), "eddie", Value::Null)
        .await;
    let names: Vec<&str> = visible["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["plan", "run"]);
    w.ok(
        "PATCH",
        &format!("/items/{run}"),
        "eddie",
        json!({"name": "run v2"}),
    )
    .await;
    assert_eq!(
        w.refused(
            "PATCH",
            &format!("/items/{plan}"),
            "eddie",
            json!({"name": "no"})
        )
        .await,
        ["phases.items-edited-in-their-phase"]
    );
    assert_eq!(
        w.refused("GET", &format!("/items/{report}"), "eddie", Value::Null)
            .await,
        ["phases.items-not-ahead-of-project"]
    );
    // New items belong to the current phase; the owner edits any phase.
    assert_eq!(
        w.ok(
            "POST",
            &format!("/projects/{p}/items"),
            "eddie",
            json!({"name": "new"})
        )
        .await["phase"],
        "processing"
    );
    w.ok(
        "PATCH",
        &format!("/items/{report}"),
        "ana",
        json!({"name": "report v2"}),
    )
    .await;
    // Downloads only when enabled.
    w.refused(
        "GET",
        &format!("/items/{plan}/download"),
        "eddie",
        Value::Null,
    )
    .await;
    w.ok(
        "PUT",
        &format!("/projects/{p}/settings"),
        "ana",
        json!({"downloads_enabled": true}),
    )
    .await;
    w.ok(
        "GET",
        &format!("/items/{plan}/download"),
        "eddie",
        Value::Null,
    )
    .await;
    w.ok(
        "GET",
        &format!("/projects/{p}/download"),
        "eddie",
        Value::Null,
    )
    .await;
    // Reports only once ready; then shared editors may no longer run processing.
    assert_eq!(
        w.refused("GET", &format!("/projects/{p}/report"), "ana", Value::Null)
            .await,
        ["phases.report-when-ready"]
    );
    w.ok(
        "POST",
        &format!("/projects/{p}/processing"),
        "eddie",
        Value::Null,
    )
    .await;
    w.refused(
        "POST",
        &format!("/projects/{p}/advance"),
        "eddie",
        Value::Null,
    )
    .await;
    w.ok(
        "POST",
        &format!("/projects/{p}/advance"),
        "ana",
        Value::Null,
    )
    .await;
    w.ok(
        "GET",
        &format!("/projects/{p}/report"),
        "eddie",
        Value::Null,
    )
    .await;
    assert_eq!(
        w.refused(
            "POST",
            &format!("/projects/{p}/processing"),
            "eddie",
            Value::Null
        )
        .await,
        ["phases.processing-until-report"]
    );
    w.ok("GET", &format!("/items/{report}"), "eddie", Value::Null)
        .await;
}

#[tokio::test]
async fn expired_and_stopped_tokens_are_refused_and_a_new_one_works() {
    let w = World::new().await;
    let p = w.project("ana", "Survey").await;
    let expired = w
        .ok(
            "POST",
            &format!("/projects/{p}/tokens"),
            "ana",
            json!({"expires_at": "2020-01-01T00:00:00Z"}),
        )
        .await;
    let expired = expired["id"].as_str().expect("id");
    assert_eq!(
        w.refused(
            "POST",
            &format!("/tokens/{expired}/requests"),
            "cole",
            Value::Null
        )
        .await,
        ["tokens.expired"]
    );

    let token = w
        .ok(
            "POST",
            &format!("/projects/{p}/tokens"),
            "ana",
            json!({"expires_in_secs": 600}),
        )
        .await;
    let token = token["id"].as_str().expect("id");
    // Reusable by several people until it expires or is stopped.
    w.ok(
        "POST",
        &format!("/tokens/{token}/requests"),
        "cole",
        Value::Null,
    )
    .await;
    w.ok(
        "POST",
        &format!("/tokens/{token}/requests"),
        "stan",
        Value::Null,
    )
    .await;
    assert_eq!(
        w.refused(
            "POST",
            &format!("/tokens/{token}/requests"),
            "ana",
            Value::Null
        )
        .await,
        ["tokens.not-for-owner"]
    );
    w.refused("DELETE", &format!("/tokens/{token}"), "cole", Value::Null)
        .await;
    w.ok("DELETE", &format!("/tokens/{token}"), "ana", Value::Null)
        .await;
    assert_eq!(
        w.refused(
            "POST",
            &format!("/tokens/{token}/requests"),
            "vic",
            Value::Null
        )
        .await,
        ["tokens.revoked"]
    );
    // A rejected request leaves no access.
    let requests = w
        .ok(
            "GET",
            &format!("/projects/{p}/requests"),
            "ana",
            Value::Null,
        )
        .await;
    let stan = requests["requests"]
        .as_array()
        .expect("list")
        .iter()
        .find(|r| r["requester"] == "stan")
        .expect("stan's")["id"]
        .as_str()
        .expect("id")
        .to_string();
    w.ok(
        "POST",
        &format!("/requests/{stan}/reject"),
        "ana",
        Value::Null,
    )
    .await;
    w.refused("GET", &format!("/projects/{p}"), "stan", Value::Null)
        .await;
    // Accepting at each role works for the owner; a manager stops at Just Administrator.
    let cole = requests["requests"]
        .as_array()
        .expect("list")
        .iter()
        .find(|r| r["requester"] == "cole")
        .expect("cole's")["id"]
        .as_str()
        .expect("id")
        .to_string();
    w.share(&p, "ana", "adam", "manager").await;
    assert_eq!(
        w.refused(
            "POST",
            &format!("/requests/{cole}/accept"),
            "adam",
            json!({"role": "admin"})
        )
        .await,
        ["sharing.admin-role-by-privileged-only"]
    );
    w.ok(
        "POST",
        &format!("/requests/{cole}/accept"),
        "adam",
        json!({"role": "manager"}),
    )
    .await;
    // A new token after expiry works again.
    let fresh = w
        .ok(
            "POST",
            &format!("/projects/{p}/tokens"),
            "ana",
            json!({"expires_in_secs": 600}),
        )
        .await;
    w.ok(
        "POST",
        &format!("/tokens/{}/requests", fresh["id"].as_str().expect("id")),
        "vic",
        Value::Null,
    )
    .await;
}

#[tokio::test]
async fn invitations_members_roles_and_leaving() {
    let w = World::new().await;
    let p = w.project("ana", "Survey").await;
    // By e-mail, for someone without an account yet.
    let by_mail = w
        .ok(
            "POST",
            &format!("/projects/{p}/invitations"),
            "ana",
            json!({"email": "nora@example.com", "role": "editor"}),
        )
        .await;
    assert_eq!(by_mail["invitee"], json!({"email": "nora@example.com"}));
    let resent = w
        .ok(
            "POST",
            &format!(
                "/invitations/{}/resend",
                by_mail["id"].as_str().expect("id")
            ),
            "ana",
            Value::Null,
        )
        .await;
    assert_eq!(resent["sent"], 2);
    w.call(
        "POST",
        "/users",
        None,
        json!({"id": "nora", "email": "nora@example.com"}),
    )
    .await;
    let mine = w.ok("GET", "/invitations", "nora", Value::Null).await;
    assert_eq!(mine["invitations"][0]["project"], p);
    w.ok(
        "POST",
        &format!(
            "/invitations/{}/accept",
            by_mail["id"].as_str().expect("id")
        ),
        "nora",
        Value::Null,
    )
    .await;
    w.ok(
        "PATCH",
        &format!("/projects/{p}"),
        "nora",
        json!({"name": "nora edits"}),
    )
    .await;

    // Cancel a pending invitation; it can no longer be accepted.
    let pending = w
        .ok(
            "POST",
            &format!("/projects/{p}/invitations"),
            "ana",
            json!({"user": "cole", "role": "viewer"}),
        )
        .await;
    let id = pending["id"].as_str().expect("id");
    w.refused(
        "POST",
        &format!("/invitations/{id}/cancel"),
        "cole",
        Value::Null,
    )
    .await;
    w.ok(
        "POST",
        &format!("/invitations/{id}/cancel"),
        "ana",
        Value::Null,
    )
    .await;
    assert_eq!(
        w.call(
            "POST",
            &format!("/invitations/{id}/accept"),
            Some("cole"),
            Value::Null
        )
        .await
        .0,
        409
    );
    // Only the invitee accepts.
    let other = w
        .ok(
            "POST",
            &format!("/projects/{p}/invitations"),
            "ana",
            json!({"user": "vic", "role": "viewer"}),
        )
        .await;
    w.refused(
        "POST",
        &format!("/invitations/{}/accept", other["id"].as_str().expect("id")),
        "stan",
        Value::Null,
    )
    .await;

    // Change a member's role; remove a member; leave.
    w.share(&p, "ana", "adam", "manager").await;
    w.share(&p, "ana", "eddie", "viewer").await;
    w.refused(
        "PATCH",
        &format!("/projects/{p}"),
        "eddie",
        json!({"name": "no"}),
    )
    .await;
    w.ok(
        "PUT",
        &format!("/projects/{p}/members/eddie"),
        "adam",
        json!({"role": "editor"}),
    )
    .await;
    w.ok(
        "PATCH",
        &format!("/projects/{p}"),
        "eddie",
        json!({"name": "eddie edits"}),
    )
    .await;
    assert_eq!(
        w.refused(
            "PUT",
            &format!("/projects/{p}/members/adam"),
            "adam",
            json!({"role": "admin"})
        )
        .await,
        [
            "sharing.admin-role-by-privileged-only",
            "sharing.no-own-role-change"
        ]
    );
    assert_eq!(
        w.refused(
            "PUT",
            &format!("/projects/{p}/members/ana"),
            "adam",
            json!({"role": "viewer"})
        )
        .await,
        ["sharing.owner-access-fixed"]
    );
    let members = w
        .ok(
            "GET",
            &format!("/projects/{p}/members"),
            "eddie",
            Value::Null,
        )
        .await;
    assert_eq!(members["members"]["eddie"], "editor");
    w.ok(
        "POST",
        &format!("/projects/{p}/leave"),
        "eddie",
        Value::Null,
    )
    .await;
    w.refused("GET", &format!("/projects/{p}"), "eddie", Value::Null)
        .await;
    assert_eq!(
        w.refused("POST", &format!("/projects/{p}/leave"), "ana", Value::Null)
            .await,
        ["ownership.owner-cannot-leave"]
    );
    w.ok(
        "DELETE",
        &format!("/projects/{p}/members/nora"),
        "ana",
        Value::Null,
    )
    .await;
    w.refused("GET", &format!("/projects/{p}"), "nora", Value::Null)
        .await;
}

#[tokio::test]
async fn transfer_copy_export_import_archive_visibility() {
    let w = World::new().await;
    let p = w.project("ana", "Survey").await;
    w.share(&p, "ana", "vic", "viewer").await;

    // Transfer: the previous owner keeps Full Administrator and cannot take ownership back.
    w.refused(
        "POST",
        &format!("/projects/{p}/transfer"),
        "vic",
        json!({"to": "vic"}),
    )
    .await;
    let moved = w
        .ok(
            "POST",
            &format!("/projects/{p}/transfer"),
            "ana",
            json!({"to": "adam"}),
        )
        .await;
    assert_eq!(
        (moved["owner"].clone(), moved["members"]["ana"].clone()),
        (json!("adam"), json!("admin"))
    );
    w.refused(
        "POST",
        &format!("/projects/{p}/transfer"),
        "ana",
        json!({"to": "ana"}),
    )
    .await;
    w.ok(
        "POST",
        &format!("/projects/{p}/archive"),
        "ana",
        Value::Null,
    )
    .await;
    w.ok(
        "POST",
        &format!("/projects/{p}/restore"),
        "ana",
        Value::Null,
    )
    .await;
    w.refused("DELETE", &format!("/projects/{p}"), "ana", Value::Null)
        .await;
    assert_eq!(ids(&w.list("adam").await["owned"]), vec![p.clone()]);
    assert_eq!(ids(&w.list("ana").await["shared"]), vec![p.clone()]);

    // Copy: private to its creator.
    w.refused("POST", &format!("/projects/{p}/copy"), "vic", Value::Null)
        .await;
    let copy = w
        .ok("POST", &format!("/projects/{p}/copy"), "ana", Value::Null)
        .await;
    assert_eq!(
        (copy["owner"].clone(), copy["members"].clone()),
        (json!("ana"), json!({}))
    );
    w.refused(
        "GET",
        &format!("/projects/{}", copy["id"].as_str().expect("id")),
        "vic",
        Value::Null,
    )
    .await;

    // Export and import: the imported project has no shares.
    w.refused("GET", &format!("/projects/{p}/export"), "vic", Value::Null)
        .await;
    let dump = w
        .ok("GET", &format!("/projects/{p}/export"), "adam", Value::Null)
        .await;
    let imported = w.ok("POST", "/projects/import", "stan", dump).await;
    assert_eq!(
        (imported["owner"].clone(), imported["members"].clone()),
        (json!("stan"), json!({}))
    );

    // Archive: gone from shared users' lists and pages, not from the owner's.
    w.ok(
        "POST",
        &format!("/projects/{p}/archive"),
        "adam",
        Value::Null,
    )
    .await;
    assert!(ids(&w.list("vic").await["shared"]).is_empty());
    assert_eq!(ids(&w.list("adam").await["owned"]), vec![p.clone()]);
    assert_eq!(
        w.refused("GET", &format!("/projects/{p}"), "vic", Value::Null)
            .await,
        ["archive.hidden-from-shared-users"]
    );
    w.ok(
        "POST",
        &format!("/projects/{p}/restore"),
        "adam",
        Value::Null,
    )
    .await;
    assert_eq!(ids(&w.list("vic").await["shared"]), vec![p.clone()]);

    // Public: anyone views and copies, nothing more.
    w.refused("GET", &format!("/projects/{p}"), "stan", Value::Null)
        .await;
    w.ok(
        "PUT",
        &format!("/projects/{p}/visibility"),
        "adam",
        json!({"public": true}),
    )
    .await;
    w.ok("GET", &format!("/projects/{p}"), "stan", Value::Null)
        .await;
    w.ok("POST", &format!("/projects/{p}/copy"), "stan", Value::Null)
        .await;
    w.refused(
        "GET",
        &format!("/projects/{p}/members"),
        "stan",
        Value::Null,
    )
    .await;
    w.ok(
        "PUT",
        &format!("/projects/{p}/visibility"),
        "adam",
        json!({"public": false}),
    )
    .await;
    w.refused("GET", &format!("/projects/{p}"), "stan", Value::Null)
        .await;
    w.ok("DELETE", &format!("/projects/{p}"), "adam", Value::Null)
        .await;
}

#[tokio::test]
async fn the_buttons_of_a_project_page() {
    let w = World::new().await;
    let p = w.project("ana", "Survey").await;
    w.share(&p, "ana", "vic", "viewer").await;
    let viewer = w
        .ok("GET", &format!("/projects/{p}/buttons"), "vic", Value::Null)
        .await;
    assert_eq!(viewer["allowed"], json!(["leave", "view", "view_members"]));
    let owner = w
        .ok("GET", &format!("/projects/{p}/buttons"), "ana", Value::Null)
        .await;
    for button in [
        "archive",
        "delete",
        "edit",
        "generate_share_token",
        "set_visibility",
        "view",
    ] {
        assert!(
            owner["allowed"]
                .as_array()
                .expect("allowed")
                .contains(&json!(button)),
            "{button}: {owner}"
        );
    }
    assert!(
        owner["needs_context"]
            .as_array()
            .expect("list")
            .contains(&json!("share"))
    );
    assert_eq!(
        w.ok(
            "GET",
            &format!("/projects/{p}/buttons"),
            "stan",
            Value::Null
        )
        .await["allowed"],
        json!([])
    );
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
    let w = World::with_gatehouse_at(&dead, gatehouse).await;
    let (status, answer) = w
        .call("POST", "/projects", Some("ana"), json!({"name": "x"}))
        .await;
    assert_eq!(
        status, 200,
        "an individual project needs no question: {answer}"
    );
    let id = answer["id"].as_str().expect("id");
    let (status, answer) = w
        .call("GET", &format!("/projects/{id}"), Some("ana"), Value::Null)
        .await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"], "authorization_unavailable");
    assert!(
        answer["message"]
            .as_str()
            .expect("message")
            .contains("cannot reach gatehouse"),
        "{answer}"
    );
    let _ = &w.gatehouse;
}

#[tokio::test]
async fn the_client_surfaces_request_ids_and_server_errors() {
    use gatehouse::client::{ClientError, Question, Uid};
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
            request_id,
        } => {
            assert_eq!(
                (status, code.as_str(), message.as_str()),
                (400, "invalid_action", "unknown action `Action::\"edt\"`")
            );
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
        while let Ok((stream, _)) = silent.accept().await {
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
        matches!(&batch.body[1], gatehouse::client::BatchResult::Failed { code, .. } if code == "invalid_action")
    );
    gatehouse.stop().await;
}

/// Every builder of the client writes an entity the sidecar's schema accepts, and together
/// they decide as DOMAIN.md says: a shared editor of an organization's project in processing
/// edits an item of that phase, and requests access with a live token.
#[tokio::test]
async fn the_clients_builders_write_entities_the_schema_accepts() {
    use gatehouse::client::{
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
            gatehouse::client::BatchResult::Decided(answer) => answer.allowed(),
            failed => panic!("{failed:?}"),
        })
        .collect();
    assert_eq!(decisions, [true, true, false]);
    gatehouse.stop().await;
}
