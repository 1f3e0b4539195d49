//! The OpenAPI 3.1 document, assembled with the routes it describes (so that no route goes
//! undescribed): the document's own parts, the responses every route shares, and
//! `/openapi.json`.

use std::sync::Arc;

use axum::{Extension, Json, Router};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AppState, admin, decisions, lists};
use crate::authzen::routes as authzen;

/// What the document says beyond the routes: the API's name, the admin token's scheme,
/// the tags.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "gatehouse",
        description = "A Cedar policy-decision sidecar for applications that let people share projects: \
            decisions (`/v1`), query plans, the OpenID AuthZEN Authorization API 1.0 (`/access/v1`), \
            and the sidecar's own operations. Every error is `{\"error\": {\"code\", \"message\", \"field\"?}}`; \
            a decision is never an error.",
        license(name = "Apache-2.0"),
    ),
    // The plan's condition is recursive: its parts are named here, where the derive stops.
    components(schemas(
        crate::policy::ProblemReport,
        crate::plan::condition::Comparison,
        crate::plan::condition::Operand,
        crate::plan::condition::Literal,
        crate::plan::condition::Uid,
        crate::plan::condition::Extension,
    )),
    modifiers(&CommonResponses),
    tags(
        (name = "decisions", description = "May this principal do this to this resource? And which ones may she?"),
        (name = "authzen", description = "The OpenID AuthZEN Authorization API 1.0"),
        (name = "admin", description = "The live policy set (behind the admin token when one is set)"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
struct ApiDoc;

/// What every route may answer besides its own responses: the limits of the HTTP layer and
/// a fault of the sidecar's, all in the one error shape; and the request id every response
/// carries.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{Parameter, ParameterIn};
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        use utoipa::openapi::{Header, Ref, Required, Response, ResponseBuilder};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        let error = |description: &str| -> Response {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    utoipa::openapi::Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                )
                .build()
        };
        let string = || {
            utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::String)
        };
        let request_id = Parameter::builder()
            .name("x-request-id")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some("Echoed in the response; one is made when absent"))
            .schema(Some(string()))
            .build();
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
                let takes_body = operation.request_body.is_some();
                operation
                    .parameters
                    .get_or_insert_with(Vec::new)
                    .push(request_id.clone());
                let responses = &mut operation.responses.responses;
                let mut add = |status: &str, response: Response| {
                    responses.entry(status.into()).or_insert(response.into());
                };
                if takes_body {
                    add(
                        "400",
                        error(
                            "`malformed_json`, `invalid_request` or a field of the body is wrong",
                        ),
                    );
                    add(
                        "413",
                        error("`body_too_large`: the body is over `--max-body`"),
                    );
                }
                add(
                    "408",
                    error("`request_timeout`: the request took longer than `--request-timeout`"),
                );
                add(
                    "503",
                    error(
                        "`overloaded`: more requests in flight than `--max-concurrency`; with `--entities-db`, `entities_unavailable` (the database not reached, failing, or its changes unread for `--max-staleness`) or `stale_entities` (a `consistency.at_least` not reached within `--consistency-wait`)",
                    ),
                );
                add(
                    "500",
                    error("`internal`: a fault of the sidecar's, logged with the request id"),
                );
                // Every 503, the route's own included, says when to try again.
                if let Some(utoipa::openapi::RefOr::T(unavailable)) = responses.get_mut("503") {
                    unavailable
                        .headers
                        .insert("Retry-After".into(), Header::new(string()));
                }
                for response in responses.values_mut() {
                    if let utoipa::openapi::RefOr::T(response) = response {
                        response.headers.insert(
                            "x-request-id".into(),
                            Header::builder()
                                .schema(string())
                                .description(Some("The request's id (the caller's, or made here)"))
                                .build(),
                        );
                    }
                }
            }
        }
    }
}

/// The routes and their description, built together so that no route goes undescribed:
/// the public routes, the admin routes (which [`app`] puts behind the admin token), the
/// operations routes (health, readiness, metrics, this document: kept out of load shedding
/// and the timeout), and the document.
pub(super) fn documented() -> Documented {
    let (public, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(decisions::is_authorized))
        .routes(routes!(decisions::batch))
        .routes(routes!(decisions::allowed_actions))
        .routes(routes!(decisions::plan))
        .routes(routes!(lists::list))
        .routes(routes!(lists::subjects))
        .routes(routes!(decisions::entities_position))
        .routes(routes!(admin::schema))
        .routes(routes!(authzen::evaluation))
        .routes(routes!(authzen::evaluations))
        .routes(routes!(authzen::search_subject))
        .routes(routes!(authzen::search_resource))
        .routes(routes!(authzen::search_action))
        .routes(routes!(authzen::configuration))
        .split_for_parts();
    let (ops, ops_doc) = OpenApiRouter::new()
        .routes(routes!(admin::healthz))
        .routes(routes!(admin::readyz))
        .routes(routes!(admin::metrics))
        .routes(routes!(openapi_json))
        .split_for_parts();
    let (admin, admin_doc) = OpenApiRouter::new()
        .routes(routes!(admin::status))
        .routes(routes!(admin::policies))
        .routes(routes!(admin::reload))
        .split_for_parts();
    doc.merge(ops_doc);
    doc.merge(admin_doc);
    CommonResponses.modify(&mut doc);
    named_sets(&mut doc);
    one_of_action_or_actions(&mut doc);
    Documented {
        public,
        admin,
        ops,
        doc,
    }
}

/// The `set` an `in_set` leaf names in a plan's JSON (condition language 2), which the
/// in-memory `Condition` the schema is derived from does not hold (its lists are inline).
fn named_sets(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{Object, Schema, Type};
    let Some(RefOr::T(Schema::OneOf(conditions))) = doc
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut("Condition"))
    else {
        return;
    };
    for variant in &mut conditions.items {
        let RefOr::T(Schema::Object(object)) = variant else {
            continue;
        };
        let in_set = match object.properties.get("op") {
            Some(RefOr::T(Schema::Object(op))) => op
                .enum_values
                .as_ref()
                .is_some_and(|values| values.iter().any(|v| v == "in_set")),
            _ => false,
        };
        if in_set {
            object.properties.insert(
                "set".into(),
                Object::builder()
                    .schema_type(Type::String)
                    .description(Some(
                        "In a plan's JSON (language 2): the name of the list in the plan's `sets`, instead of `values`.",
                    ))
                    .into(),
            );
        }
    }
}

/// `/v1/list/subjects` takes exactly one of `action` and `actions`, which the derived schema
/// (both optional fields) cannot say: the question becomes `allOf` its fields and `oneOf`
/// the two requirements.
fn one_of_action_or_actions(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::Ref;
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{AllOf, Array, Object, OneOf, Schema};
    let Some(schemas) = doc.components.as_mut().map(|c| &mut c.schemas) else {
        return;
    };
    let Some(RefOr::T(Schema::Object(fields))) = schemas.remove("SubjectsListQuestion") else {
        return;
    };
    let description = fields.description.clone();
    let uid = || Ref::from_schema_name("Uid");
    let requires = |field: &str, schema: RefOr<Schema>| -> RefOr<Schema> {
        Object::builder()
            .property(field, schema)
            .required(field)
            .into()
    };
    let mut exactly_one = OneOf::new();
    exactly_one.items = vec![
        requires("action", uid().into()),
        requires("actions", Array::new(uid()).into()),
    ];
    let mut question = AllOf::new();
    question.description = description;
    question.items = vec![
        RefOr::T(Schema::Object(fields)),
        RefOr::T(Schema::OneOf(exactly_one)),
    ];
    schemas.insert(
        "SubjectsListQuestion".into(),
        RefOr::T(Schema::AllOf(question)),
    );
}

/// What [`documented`] builds.
pub(super) struct Documented {
    pub(super) public: Router<AppState>,
    pub(super) admin: Router<AppState>,
    pub(super) ops: Router<AppState>,
    pub(super) doc: utoipa::openapi::OpenApi,
}

/// The OpenAPI 3.1 document of the API, as `/openapi.json` serves it and
/// `docs/openapi.json` holds it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented().doc
}

/// `GET /openapi.json`: this API's OpenAPI 3.1 document (made once, with the router).
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = BTreeMap<String, serde_json::Value>)))]
async fn openapi_json(
    Extension(doc): Extension<Arc<utoipa::openapi::OpenApi>>,
) -> Json<Arc<utoipa::openapi::OpenApi>> {
    Json(doc)
}
