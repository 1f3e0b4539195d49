//! An async, typed client for the gatehouse HTTP API, for host services written in Rust,
//! with builders for the project-sharing domain's entities. It builds on the wire types of
//! `gatehouse-api` and on reqwest alone: a host that depends on it compiles no Cedar and no
//! server.
//!
//! ```
//! # use gatehouse_client::{Client, Question, Uid, User, Project, Role, Phase, Verdict};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let (base, _server) = gatehouse_server::app::doc_server().await;
//! // `base` is the sidecar's address, e.g. "http://127.0.0.1:8180".
//! let gatehouse = Client::new(&base)?;
//! let vera = User::new("vera").member_of(Project::group("p1", Role::Editor)).build();
//! let p1 = Project::new("p1", "olga").phase(Phase::Processing).build();
//! let question = Question::new(Uid::user("vera"), "edit", Uid::project("p1")).entities([vera, p1]);
//!
//! let answer = gatehouse.is_authorized(&question).await?;
//! assert_eq!(answer.body.decision, Verdict::Allow);
//! assert_eq!(answer.body.reasons, ["roles.editor"]);
//! println!("allowed by {:?} (request {})", answer.body.reasons, answer.request_id);
//! # Ok(())
//! # }
//! ```

// Cedar's habits for code that serves: no unwrap, expect, panic or unchecked index outside
// tests; each exception says why it cannot fail (`#[expect(..., reason)]`).
#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod entities;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use entities::{
    Entity, Group, Item, Organization, Phase, Project, Role, ShareToken, Uid, User, datetime,
};
pub use gatehouse_api::{Consistency, ConsistencyMode, Verdict};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The sidecar could not be reached (connection refused, DNS, reset).
    #[error("cannot reach gatehouse at `{url}`: {message}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// What the transport said.
        message: String,
    },
    /// The sidecar did not answer in time.
    #[error("gatehouse at `{url}` did not answer within {timeout:?}")]
    Timeout {
        /// The URL called.
        url: String,
        /// The timeout in force.
        timeout: Duration,
    },
    /// The sidecar refused the request (4xx, or 5xx): its code and message.
    #[error("gatehouse answered {status} `{code}`: {message} (request {request_id})")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The error code, e.g. `invalid_action`.
        code: String,
        /// The message, naming the offending field.
        message: String,
        /// The offending field, as a path into the body (`page.token`), when the error names
        /// one.
        field: Option<String>,
        /// The request id, to find the request in the sidecar's logs.
        request_id: String,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer from gatehouse: {0}")]
    Protocol(String),
}

/// An answer with the request id the sidecar gave it.
#[derive(Debug, Clone)]
pub struct Response<T> {
    /// The answer.
    pub body: T,
    /// `x-request-id` of the exchange.
    pub request_id: String,
}

/// One question: who, what, which resource, with what context and entities.
#[derive(Debug, Clone, Serialize)]
pub struct Question {
    /// The principal.
    pub principal: Uid,
    /// The action.
    pub action: Uid,
    /// The resource.
    pub resource: Uid,
    /// The context (a JSON object), if the action takes one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
    /// The entities the policies need that the sidecar does not hold: none when it reads
    /// them from the host's database (`--entities-db`); else the principal with its
    /// groups, the resource, …
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<Entity>,
    /// How fresh the entities read from the database must be (the client's own, see
    /// [`Client::with_consistency`], when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency: Option<Consistency>,
}

impl Question {
    /// `principal` asks to take `action` (an action id such as `"edit"`) on `resource`.
    pub fn new(principal: Uid, action: &str, resource: Uid) -> Self {
        Self {
            principal,
            action: Uid::action(action),
            resource,
            context: None,
            entities: Vec::new(),
            consistency: None,
        }
    }

    /// Sets the context.
    pub fn context(mut self, context: Value) -> Self {
        self.context = Some(context);
        self
    }

    /// Adds entities.
    pub fn entities(mut self, entities: impl IntoIterator<Item = Entity>) -> Self {
        self.entities.extend(entities);
        self
    }

    /// Sets how fresh the entities read from the database must be.
    pub fn consistency(mut self, consistency: Consistency) -> Self {
        self.consistency = Some(consistency);
        self
    }
}

/// A decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allow or Deny.
    pub decision: Verdict,
    /// The deciding policy ids.
    pub reasons: Vec<String>,
    /// Evaluation errors (they make the decision Deny).
    pub errors: Vec<String>,
    /// Entities the question names or the deciding path read that were neither sent nor
    /// stored (the decision was made without them).
    pub missing: Vec<String>,
    /// The version of the policy set that decided.
    pub policy_version: String,
    /// With an entity database, the position its entities were read at (a token for
    /// [`Consistency::AtLeast`]).
    pub entities_at: Option<String>,
}

impl Decision {
    /// Whether the decision is Allow.
    pub fn allowed(&self) -> bool {
        self.decision == Verdict::Allow
    }
}

#[derive(Deserialize)]
struct DecisionBody {
    decision: Verdict,
    diagnostics: Diagnostics,
    policy_version: String,
    #[serde(default)]
    entities_at: Option<String>,
}

#[derive(Deserialize)]
struct Diagnostics {
    reason: Vec<String>,
    errors: Vec<String>,
    #[serde(default)]
    missing: Vec<String>,
}

impl From<DecisionBody> for Decision {
    fn from(body: DecisionBody) -> Self {
        Self {
            decision: body.decision,
            reasons: body.diagnostics.reason,
            errors: body.diagnostics.errors,
            missing: body.diagnostics.missing,
            policy_version: body.policy_version,
            entities_at: body.entities_at,
        }
    }
}

/// One result of a batch: a decision, or the error of that item alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchResult {
    /// The item was decided.
    Decided(Decision),
    /// The item was malformed: its error code and message.
    Failed {
        /// The error code.
        code: String,
        /// The message.
        message: String,
    },
}

/// What `allowed_actions` answers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AllowedActions {
    /// Actions allowed.
    pub allowed: Vec<String>,
    /// Actions denied.
    pub denied: Vec<String>,
    /// Actions whose required context keys were not given, and that some context allows
    /// and some denies.
    pub needs_context: Vec<String>,
    /// The deciding policies of each decided action.
    pub diagnostics: ActionDiagnostics,
    /// The version of the policy set that decided.
    pub policy_version: String,
    /// With an entity database, the position its entities were read at.
    #[serde(default)]
    pub entities_at: Option<String>,
}

/// The deciding policies and errors of `allowed_actions`, by action id.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ActionDiagnostics {
    /// The deciding policies by action: the permits of an allowed action, the forbids of a
    /// denied one (none when nothing permits it).
    pub reasons: std::collections::BTreeMap<String, Vec<String>>,
    /// Evaluation errors by action (they make its decision Deny).
    pub errors: std::collections::BTreeMap<String, Vec<String>>,
    /// Entities the question names or some action's deciding path read that were neither
    /// sent nor stored.
    #[serde(default)]
    pub missing: Vec<String>,
}

/// What `plan` answers: the plan and the version of the policy set that made it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PlanAnswer {
    /// The plan: kind, condition (`gatehouse-sql` turns it into SQL),
    /// residual policies.
    #[serde(flatten)]
    pub plan: gatehouse_api::Plan,
    /// The version of the policy set that planned.
    pub policy_version: String,
    /// With an entity database, the position the principal's entities were read at.
    #[serde(default)]
    pub entities_at: Option<String>,
}

/// Which page of a list to ask for: at most `size` ids (1 to 1 000; the sidecar's default,
/// 100, when `None`) after the previous page's `next_token`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paging {
    /// How many ids at most.
    pub size: Option<u64>,
    /// The previous page's [`ListPage::next_token`]; `None` for the first page.
    pub token: Option<String>,
}

impl Paging {
    fn json(&self) -> Value {
        let mut page = serde_json::Map::new();
        if let Some(size) = self.size {
            page.insert("size".into(), json!(size));
        }
        if let Some(token) = &self.token {
            page.insert("token".into(), json!(token));
        }
        Value::Object(page)
    }
}

/// One page of `/v1/list` or `/v1/list/subjects`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ListPage {
    /// The ids allowed, in the database's order of ids.
    pub ids: Vec<String>,
    /// With several actions ([`Client::list_subjects`]): each id with the actions it may take.
    #[serde(default)]
    pub subjects: Option<Vec<SubjectActions>>,
    /// Where the next page starts; `None` on the last page.
    #[serde(default)]
    pub next_token: Option<String>,
    /// `sql`, or `decisions` (candidates decided one by one: see `unsupported`).
    pub listed_by: String,
    /// Why the plan had no SQL, when decisions answered.
    #[serde(default)]
    pub unsupported: Option<String>,
    /// The version of the policy set that answered.
    pub policy_version: String,
    /// With an entity database: the position the plan's entities were read at.
    #[serde(default)]
    pub entities_at: Option<String>,
}

/// A subject and the actions it may take, of those asked.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SubjectActions {
    /// The subject's id.
    pub id: String,
    /// The actions it may take.
    pub actions: Vec<String>,
}

/// Where the sidecar's entity database stands (`GET /v1/entities/position`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Position {
    /// The position of the database's last committed change: after a write of the host's,
    /// the token that makes the next answers see it ([`Client::at_least`]).
    pub position: String,
    /// The position of the last change the sidecar has applied.
    pub applied: String,
}

/// A gatehouse client. Cheap to clone; share one per process.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
    admin_token: Option<String>,
    /// Sent with every question that sets none.
    consistency: Option<Consistency>,
}

/// Configures a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    base: String,
    timeout: Duration,
    connect_timeout: Duration,
    admin_token: Option<String>,
}

impl ClientBuilder {
    /// The whole-request timeout (default 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The connect timeout (default 500 ms).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The admin token, for [`Client::status`] when the sidecar requires one.
    pub fn admin_token(mut self, token: impl Into<String>) -> Self {
        self.admin_token = Some(token.into());
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<Client, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .build()
            .map_err(|e| ClientError::Protocol(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            http,
            base: self.base.trim_end_matches('/').to_string(),
            timeout: self.timeout,
            admin_token: self.admin_token,
            consistency: None,
        })
    }
}

impl Client {
    /// A client of the sidecar at `base` (e.g. `http://127.0.0.1:8180`) with default timeouts.
    pub fn new(base: &str) -> Result<Self, ClientError> {
        Self::builder(base).build()
    }

    /// A builder for a client of the sidecar at `base`.
    pub fn builder(base: &str) -> ClientBuilder {
        ClientBuilder {
            base: base.to_string(),
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_millis(500),
            admin_token: None,
        }
    }

    /// This client, asking every question that sets no consistency of its own with
    /// `consistency`: after a write of the host's, `client.at_least(&token)` makes the
    /// answers see it (SpiceDB's `at_least_as_fresh`).
    pub fn with_consistency(&self, consistency: Consistency) -> Self {
        Self {
            consistency: Some(consistency),
            ..self.clone()
        }
    }

    /// [`Self::with_consistency`] at least at `token` (a [`Position`], an `entities_at`).
    pub fn at_least(&self, token: impl Into<String>) -> Self {
        self.with_consistency(Consistency::AtLeast {
            at_least: token.into(),
        })
    }

    /// `GET /v1/entities/position`: where the sidecar's entity database stands. Called after
    /// a write of the host's, its `position` is the token that makes later answers see the
    /// write.
    pub async fn position(&self) -> Result<Response<Position>, ClientError> {
        let url = format!("{}/v1/entities/position", self.base);
        let (body, request_id) = self.send(self.http.get(&url), &url).await?;
        Ok(Response {
            body: parse(body)?,
            request_id,
        })
    }

    /// `POST /v1/is_authorized`.
    pub async fn is_authorized(
        &self,
        question: &Question,
    ) -> Result<Response<Decision>, ClientError> {
        let (body, request_id) = self.post("/v1/is_authorized", &json!(question)).await?;
        let body: DecisionBody = parse(body)?;
        Ok(Response {
            body: body.into(),
            request_id,
        })
    }

    /// `POST /v1/is_authorized/batch`: `shared` entities are seen by every question.
    pub async fn batch(
        &self,
        shared: &[Entity],
        questions: &[Question],
    ) -> Result<Response<Vec<BatchResult>>, ClientError> {
        let body = json!({"entities": shared, "requests": questions});
        let (body, request_id) = self.post("/v1/is_authorized/batch", &body).await?;
        let results = body
            .get("results")
            .and_then(Value::as_array)
            .ok_or_else(|| ClientError::Protocol("a batch answer without `results`".into()))?;
        let results = results
            .iter()
            .map(|r| match r.get("error") {
                Some(error) => Ok(BatchResult::Failed {
                    code: error["code"].as_str().unwrap_or_default().to_string(),
                    message: error["message"].as_str().unwrap_or_default().to_string(),
                }),
                None => parse::<DecisionBody>(r.clone()).map(|d| BatchResult::Decided(d.into())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if results.len() != questions.len() {
            return Err(ClientError::Protocol(format!(
                "{} results for {} questions",
                results.len(),
                questions.len()
            )));
        }
        Ok(Response {
            body: results,
            request_id,
        })
    }

    /// `POST /v1/allowed_actions`: what `principal` may do to `resource`.
    pub async fn allowed_actions(
        &self,
        principal: &Uid,
        resource: &Uid,
        context: Option<Value>,
        entities: &[Entity],
    ) -> Result<Response<AllowedActions>, ClientError> {
        let mut body = json!({"principal": principal, "resource": resource, "entities": entities});
        if let (Some(context), Some(fields)) = (context, body.as_object_mut()) {
            fields.insert("context".into(), context);
        }
        let (body, request_id) = self.post("/v1/allowed_actions", &body).await?;
        Ok(Response {
            body: parse(body)?,
            request_id,
        })
    }

    /// `POST /v1/plan`: which resources of `resource_type` `principal` may take `action`
    /// (an action id such as `"view"`) on, knowing `entities` (the principal with its
    /// groups). A `context` is needed for actions that declare context keys.
    pub async fn plan(
        &self,
        principal: &Uid,
        action: &str,
        resource_type: &str,
        context: Option<Value>,
        entities: &[Entity],
    ) -> Result<Response<PlanAnswer>, ClientError> {
        let mut body = json!({
            "principal": principal,
            "action": Uid::action(action),
            "resource_type": resource_type,
            "entities": entities,
        });
        if let (Some(context), Some(fields)) = (context, body.as_object_mut()) {
            fields.insert("context".into(), context);
        }
        let (body, request_id) = self.post("/v1/plan", &body).await?;
        // The plan's fields read straight from the body: `PlanAnswer`'s `flatten` would
        // buffer the whole plan first, half the time of reading a large one.
        let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_string);
        let (policy_version, entities_at) = (text("policy_version"), text("entities_at"));
        Ok(Response {
            body: PlanAnswer {
                plan: parse(body)?,
                policy_version: policy_version.ok_or_else(|| {
                    ClientError::Protocol("a plan without `policy_version`".into())
                })?,
                entities_at,
            },
            request_id,
        })
    }

    /// `POST /v1/list`: one page of the ids of the resources of `resource_type` that
    /// `principal` may take `action` on, answered in the sidecar's entity database.
    pub async fn list(
        &self,
        principal: &Uid,
        action: &str,
        resource_type: &str,
        context: Option<Value>,
        page: &Paging,
    ) -> Result<Response<ListPage>, ClientError> {
        self.list_within(principal, action, resource_type, None, context, page)
            .await
    }

    /// [`Client::list`], only the resources in `within` (its `in`: Cedar's `resource in
    /// Project::"p1"`, the items of one project) when it is given.
    pub async fn list_within(
        &self,
        principal: &Uid,
        action: &str,
        resource_type: &str,
        within: Option<&Uid>,
        context: Option<Value>,
        page: &Paging,
    ) -> Result<Response<ListPage>, ClientError> {
        let mut body = json!({
            "principal": principal,
            "action": Uid::action(action),
            "resource_type": resource_type,
            "page": page.json(),
        });
        if let Some(fields) = body.as_object_mut() {
            if let Some(within) = within {
                fields.insert("in".into(), json!(within));
            }
            if let Some(context) = context {
                fields.insert("context".into(), context);
            }
        }
        let (body, request_id) = self.post("/v1/list", &body).await?;
        Ok(Response {
            body: parse(body)?,
            request_id,
        })
    }

    /// Every id of [`Client::list`], page after page (of 1 000).
    pub async fn list_all(
        &self,
        principal: &Uid,
        action: &str,
        resource_type: &str,
        context: Option<Value>,
    ) -> Result<Vec<String>, ClientError> {
        let mut ids = Vec::new();
        let mut page = Paging {
            size: Some(1000),
            token: None,
        };
        loop {
            let answer = self
                .list(principal, action, resource_type, context.clone(), &page)
                .await?
                .body;
            ids.extend(answer.ids);
            match answer.next_token {
                Some(token) => page.token = Some(token),
                None => return Ok(ids),
            }
        }
    }

    /// `POST /v1/list/subjects`: one page of the principals of `principal_type` that may take
    /// one of `actions` on `resource` ("who has access?"); with several actions, the page's
    /// `subjects` says which each may take.
    pub async fn list_subjects(
        &self,
        actions: &[&str],
        resource: &Uid,
        principal_type: &str,
        context: Option<Value>,
        page: &Paging,
    ) -> Result<Response<ListPage>, ClientError> {
        let mut body = json!({
            "resource": resource,
            "principal_type": principal_type,
            "page": page.json(),
        });
        if let Some(fields) = body.as_object_mut() {
            match actions {
                [one] => fields.insert("action".into(), json!(Uid::action(*one))),
                many => fields.insert(
                    "actions".into(),
                    json!(many.iter().map(|a| Uid::action(*a)).collect::<Vec<_>>()),
                ),
            };
            if let Some(context) = context {
                fields.insert("context".into(), context);
            }
        }
        let (body, request_id) = self.post("/v1/list/subjects", &body).await?;
        Ok(Response {
            body: parse(body)?,
            request_id,
        })
    }

    /// Every subject of [`Client::list_subjects`], page after page (of 1 000), each with the
    /// actions it may take of those asked (with one action, that one): a members panel.
    pub async fn list_subjects_all(
        &self,
        actions: &[&str],
        resource: &Uid,
        principal_type: &str,
        context: Option<Value>,
    ) -> Result<Vec<SubjectActions>, ClientError> {
        let mut subjects = Vec::new();
        let mut page = Paging {
            size: Some(1000),
            token: None,
        };
        loop {
            let answer = self
                .list_subjects(actions, resource, principal_type, context.clone(), &page)
                .await?
                .body;
            match answer.subjects {
                Some(each) => subjects.extend(each),
                None => subjects.extend(answer.ids.into_iter().map(|id| SubjectActions {
                    id,
                    actions: actions.iter().map(|a| (*a).to_string()).collect(),
                })),
            }
            match answer.next_token {
                Some(token) => page.token = Some(token),
                None => return Ok(subjects),
            }
        }
    }

    /// `GET /v1/status`, as JSON.
    pub async fn status(&self) -> Result<Response<Value>, ClientError> {
        let url = format!("{}/v1/status", self.base);
        let mut request = self.http.get(&url);
        if let Some(token) = &self.admin_token {
            request = request.bearer_auth(token);
        }
        self.send(request, &url)
            .await
            .map(|(body, request_id)| Response { body, request_id })
    }

    /// POSTs `body`, with the client's consistency unless the body sets its own.
    async fn post(&self, path: &str, body: &Value) -> Result<(Value, String), ClientError> {
        let url = format!("{}{path}", self.base);
        let request = self.http.post(&url);
        let request = match (&self.consistency, body) {
            (Some(consistency), Value::Object(fields)) if !fields.contains_key("consistency") => {
                let mut fields = fields.clone();
                fields.insert("consistency".into(), json!(consistency));
                request.json(&fields)
            }
            _ => request.json(body),
        };
        self.send(request, &url).await
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<(Value, String), ClientError> {
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                ClientError::Timeout {
                    url: url.to_string(),
                    timeout: self.timeout,
                }
            } else {
                ClientError::Unreachable {
                    url: url.to_string(),
                    message: innermost(&e),
                }
            }
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let request_id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text = response.text().await.map_err(transport)?;
        let body: Value = serde_json::from_str(&text)
            .map_err(|e| ClientError::Protocol(format!("a body that is not JSON ({e}): {text}")))?;
        if !status.is_success() {
            return Err(ClientError::Rejected {
                status: status.as_u16(),
                code: body
                    .pointer("/error/code")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                message: body
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or(&text)
                    .to_string(),
                field: body
                    .pointer("/error/field")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                request_id,
            });
        }
        Ok((body, request_id))
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, ClientError> {
    T::deserialize(&body).map_err(|e| ClientError::Protocol(format!("{e}: {body}")))
}

/// The innermost cause of a transport error: reqwest's own message is only "error sending
/// request".
fn innermost(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        message = inner.to_string();
        source = inner.source();
    }
    message
}
