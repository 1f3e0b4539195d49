//! The OpenID AuthZEN Authorization API 1.0, spoken over the same decisions as `/v1`.
//!
//! An AuthZEN `{type, id, properties}` names a Cedar entity: the type through a [`TypeMap`]
//! (the configured names, else the schema's entity type whose name matches without regard
//! to case), the id as it is. `properties` are that entity's attributes for this question:
//! laid over the stored entity's attributes (its parents stay), and checked against the
//! schema like any entity a question carries. An action's `name` is a Cedar action id. Each
//! evaluation becomes a [`Question`] and is answered by [`crate::decide::Decider`], cache and
//! fail-closed rules included: AuthZEN is a second door to the one decision path. The action
//! search asks every action at once, as `/v1/allowed_actions` does ([`actions_question`]).
//!
//! The searches run over the stored entities (`--entities`): every stored entity of the
//! searched type is asked in id order, and the allowed ones are paged with an opaque
//! `page.next_token`. What this module parses it reports as [`InputError`]s naming the
//! AuthZEN field (`subject.type`, `resource.properties`, `page.token`).
//!
//! The adapter in one place: the model here (types, parties, semantics, paging), the bodies
//! (`body`: what the routes read and answer) and the routes (`routes`, mounted by
//! [`crate::http`]). The stored-entity search is the engine's
//! ([`crate::policy::Snapshot::stored_ids`]).

use std::collections::BTreeMap;

use cedar_policy::EntityUid;
use gatehouse_api::Uid;
use serde_json::{Map, Value, json};

use crate::decide::{InputError, Part, Question};
use crate::policy::Snapshot;

pub mod body;
pub mod routes;

/// The AuthZEN API version's path prefix, as the specification fixes it.
pub const PREFIX: &str = "/access/v1";

/// Results per search page when the request does not say (`page.limit`).
pub const DEFAULT_PAGE: usize = 100;

/// Most results per search page.
pub const MAX_PAGE: usize = 1000;

/// AuthZEN type names to Cedar entity types.
#[derive(Debug, Clone, Default)]
pub struct TypeMap {
    /// Configured names (lower case) to fully qualified Cedar types.
    named: BTreeMap<String, String>,
}

impl TypeMap {
    /// Parses `user=User,record=Docs::Record` (names compared without regard to case).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut named = BTreeMap::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((from, to)) = pair.split_once('=') else {
                return Err(format!(
                    "`{pair}` is not `authzen_type=CedarType` (e.g. `user=User`)"
                ));
            };
            let (from, to) = (from.trim(), to.trim());
            if from.is_empty() || to.is_empty() {
                return Err(format!("`{pair}` names no type on one side"));
            }
            named.insert(from.to_lowercase(), to.to_string());
        }
        Ok(Self { named })
    }

    /// The Cedar entity type for AuthZEN type `name`, or why there is none. `field` is the
    /// AuthZEN field it came from.
    pub fn resolve(&self, snapshot: &Snapshot, field: &str, name: &str) -> Result<String, String> {
        let known: Vec<String> = snapshot
            .schema
            .entity_types()
            .map(ToString::to_string)
            .collect();
        if let Some(cedar) = self.named.get(&name.to_lowercase()) {
            return if known.iter().any(|k| k == cedar) {
                Ok(cedar.clone())
            } else {
                Err(format!(
                    "`{field}` `{name}` maps to `{cedar}`, which the schema does not declare"
                ))
            };
        }
        let basename = |full: &str| full.rsplit("::").next().unwrap_or(full).to_string();
        let matches: Vec<&String> = known
            .iter()
            .filter(|k| k.eq_ignore_ascii_case(name) || basename(k).eq_ignore_ascii_case(name))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(format!(
                "`{field}` `{name}` names no entity type of the schema (known: {})",
                known.join(", ")
            )),
            many => Err(format!(
                "`{field}` `{name}` matches several entity types ({}); map it with \
                 --authzen-types",
                many.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// A subject or a resource as sent: `{type, id, properties?}`.
#[derive(Debug, Clone)]
pub struct Party {
    /// The AuthZEN type, as sent (echoed in search results).
    pub kind: String,
    /// The Cedar entity type it maps to.
    pub cedar_type: String,
    /// The id (`None` where a search ignores it).
    pub id: Option<String>,
    /// Attributes for this question.
    pub properties: Map<String, Value>,
    /// `subject` or `resource`.
    pub field: &'static str,
}

impl Party {
    /// Parses `value` (the field `field`); `id` required unless `searched`.
    pub fn parse(
        snapshot: &Snapshot,
        types: &TypeMap,
        field: &'static str,
        value: Option<&Value>,
        searched: bool,
    ) -> Result<Self, InputError> {
        let part = if field == "subject" {
            Part::Principal
        } else {
            Part::Resource
        };
        let err = |at: String, message: String| InputError::new(part, at, message);
        let Some(value) = value else {
            return Err(err(field.into(), format!("`{field}` is required")));
        };
        let Value::Object(object) = value else {
            return Err(err(
                field.into(),
                format!("`{field}` must be an object `{{\"type\", \"id\"}}`, got `{value}`"),
            ));
        };
        let kind = match object.get("type") {
            Some(Value::String(kind)) if !kind.is_empty() => kind.clone(),
            other => {
                return Err(err(
                    format!("{field}.type"),
                    format!(
                        "`{field}.type` must be a non-empty string, got {}",
                        shown(other)
                    ),
                ));
            }
        };
        let type_field = format!("{field}.type");
        let cedar_type = types
            .resolve(snapshot, &type_field, &kind)
            .map_err(|message| err(type_field.clone(), message))?;
        let id = match object.get("id") {
            // A searched party's id, if present, is ignored (the specification's words).
            _ if searched => None,
            // The search interop sends record ids as numbers: taken as their decimal text.
            Some(Value::String(id)) => Some(id.clone()),
            Some(Value::Number(n)) if n.is_i64() => Some(n.to_string()),
            other => {
                return Err(err(
                    format!("{field}.id"),
                    format!("`{field}.id` must be a string, got {}", shown(other)),
                ));
            }
        };
        let properties = match object.get("properties") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(other) => {
                return Err(err(
                    format!("{field}.properties"),
                    format!("`{field}.properties` must be an object, got `{other}`"),
                ));
            }
        };
        Ok(Self {
            kind,
            cedar_type,
            id,
            // A searched party's properties would hold for every candidate: ignored, as
            // its id is.
            properties: if searched { Map::new() } else { properties },
            field,
        })
    }

    /// The Cedar uid it names, as a question sends one.
    pub(crate) fn uid(&self) -> Uid {
        Uid::new(&self.cedar_type, self.id.as_deref().unwrap_or_default())
    }

    /// The entity this question sees: the stored one with `properties` laid over its
    /// attributes, or a new one with only them. `None` without properties.
    pub(crate) fn entity(&self, snapshot: &Snapshot) -> Option<Value> {
        if self.properties.is_empty() {
            return None;
        }
        let uid = json!(self.uid());
        let stored = EntityUid::from_json(uid.clone())
            .ok()
            .and_then(|uid| snapshot.entities.get(&uid).cloned())
            .and_then(|entity| entity.to_json_value().ok());
        let (mut attrs, parents) = match stored {
            Some(Value::Object(mut stored)) => (
                match stored.remove("attrs") {
                    Some(Value::Object(attrs)) => attrs,
                    _ => Map::new(),
                },
                stored.remove("parents").unwrap_or_else(|| json!([])),
            ),
            _ => (Map::new(), json!([])),
        };
        attrs.extend(self.properties.clone());
        Some(json!({"uid": uid, "attrs": attrs, "parents": parents}))
    }
}

/// An action as sent: `{name, properties?}`.
#[derive(Debug, Clone)]
pub struct Act {
    /// The Cedar action id.
    pub name: String,
}

impl Act {
    /// Parses `value` (the field `action`). Cedar actions carry no attributes of a request:
    /// non-empty `properties` are refused rather than silently dropped.
    pub fn parse(value: Option<&Value>) -> Result<Self, InputError> {
        let err = |at: &str, message: String| InputError::new(Part::Action, at, message);
        let Some(Value::Object(object)) = value else {
            return Err(err(
                "action",
                format!(
                    "`action` must be an object `{{\"name\"}}`, got {}",
                    shown(value)
                ),
            ));
        };
        let name = match object.get("name") {
            Some(Value::String(name)) if !name.is_empty() => name.clone(),
            other => {
                return Err(err(
                    "action.name",
                    format!(
                        "`action.name` must be a non-empty string, got {}",
                        shown(other)
                    ),
                ));
            }
        };
        match object.get("properties") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) if map.is_empty() => {}
            Some(_) => {
                return Err(err(
                    "action.properties",
                    "Cedar actions carry no attributes of a request: send what the policies \
                     read in `context`"
                        .into(),
                ));
            }
        }
        Ok(Self { name })
    }

    /// The action's uid, or a 400 naming `action.name` (an action the schema does not
    /// declare as requestable, or an id several namespaces declare).
    pub fn uid(&self, snapshot: &Snapshot) -> Result<EntityUid, InputError> {
        let err = |message: String| InputError::new(Part::Action, "action.name", message);
        let uid = snapshot
            .catalog
            .action_named(&self.name)
            .map_err(|e| err(format!("`action.name` `{}`: {e}", self.name)))?;
        if snapshot.catalog.get(&uid).is_none() {
            let known: Vec<&str> = snapshot.catalog.iter().map(|a| a.name.as_str()).collect();
            return Err(err(format!(
                "`action.name` `{}` is not an action of the schema (known: {})",
                self.name,
                known.join(", ")
            )));
        }
        Ok(uid)
    }
}

/// `context` as sent: an object, or absent.
pub fn context(value: Option<&Value>) -> Result<Option<Value>, InputError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(_)) => Ok(value.cloned()),
        Some(other) => Err(InputError::new(
            Part::Context,
            "context",
            format!("`context` must be an object, got `{other}`"),
        )),
    }
}

/// One evaluation's parts, parsed.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Who asks.
    pub subject: Party,
    /// What for.
    pub action: Act,
    /// On what.
    pub resource: Party,
    /// The context record.
    pub context: Option<Value>,
}

impl Evaluation {
    /// The question gatehouse answers, and which AuthZEN field each of its entities came
    /// from (to name it in an error).
    pub fn question(&self, snapshot: &Snapshot) -> Result<(Question, Vec<String>), InputError> {
        let action = self.action.uid(snapshot)?;
        let mut entities = Vec::new();
        let mut origins = Vec::new();
        for party in [&self.subject, &self.resource] {
            if let Some(entity) = party.entity(snapshot) {
                entities.push(entity);
                origins.push(format!("{}.properties", party.field));
            }
        }
        let question = Question {
            principal: self.subject.uid(),
            action: Uid::Text(action.to_string()),
            resource: self.resource.uid(),
            context: self.context.clone(),
            entities: (!entities.is_empty()).then_some(Value::Array(entities).into()),
            strict_entities: false,
            consistency: None,
        };
        Ok((question, origins))
    }
}

/// An action search's question: every action that applies to the subject's and the
/// resource's types, asked as `/v1/allowed_actions` asks it (each action with the context
/// keys it declares; one whose required keys are absent decided for every context), and which
/// AuthZEN field each of its entities came from.
pub fn actions_question(
    snapshot: &Snapshot,
    subject: &Party,
    resource: &Party,
    context: Option<Value>,
) -> (crate::decide::allowed::ActionsQuestion, Vec<String>) {
    let mut entities = Vec::new();
    let mut origins = Vec::new();
    for party in [subject, resource] {
        if let Some(entity) = party.entity(snapshot) {
            entities.push(entity);
            origins.push(format!("{}.properties", party.field));
        }
    }
    let question = crate::decide::allowed::ActionsQuestion {
        principal: subject.uid(),
        resource: resource.uid(),
        context,
        entities: (!entities.is_empty()).then_some(Value::Array(entities).into()),
        actions: None,
        strict_entities: false,
        consistency: None,
    };
    (question, origins)
}

/// Renames the fields of an error the decision path reported (`principal`, `entities[1]`)
/// to the AuthZEN fields they came from (`subject`, `resource.properties`).
pub fn rename_field(field: &str, origins: &[String]) -> String {
    if let Some(rest) = field.strip_prefix("principal") {
        return format!("subject{rest}");
    }
    if field == "action" {
        return "action.name".into();
    }
    if let Some(rest) = field.strip_prefix("entities[") {
        let index: Option<usize> = rest.split(']').next().and_then(|i| i.parse().ok());
        if let Some(origin) = index.and_then(|i| origins.get(i)) {
            return origin.clone();
        }
    }
    field.to_string()
}

/// `options.evaluations_semantic`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Semantic {
    /// Every evaluation, in order.
    ExecuteAll,
    /// Stop after the first denial (an error is one).
    DenyOnFirstDeny,
    /// Stop after the first permit.
    PermitOnFirstPermit,
}

impl Semantic {
    /// From the request's `options`.
    pub fn parse(options: Option<&Value>) -> Result<Self, InputError> {
        let err = |at: &str, message: String| InputError::new(Part::Context, at, message);
        let options = match options {
            None | Some(Value::Null) => return Ok(Self::ExecuteAll),
            Some(Value::Object(options)) => options,
            Some(other) => {
                return Err(err(
                    "options",
                    format!("`options` must be an object, got `{other}`"),
                ));
            }
        };
        match options.get("evaluations_semantic") {
            None | Some(Value::Null) => Ok(Self::ExecuteAll),
            Some(Value::String(s)) if s == "execute_all" => Ok(Self::ExecuteAll),
            Some(Value::String(s)) if s == "deny_on_first_deny" => Ok(Self::DenyOnFirstDeny),
            Some(Value::String(s)) if s == "permit_on_first_permit" => {
                Ok(Self::PermitOnFirstPermit)
            }
            Some(other) => Err(err(
                "options.evaluations_semantic",
                format!(
                    "`options.evaluations_semantic` must be `execute_all`, `deny_on_first_deny` \
                     or `permit_on_first_permit`, got `{other}`"
                ),
            )),
        }
    }

    /// Whether evaluation stops after a decision `allowed`.
    pub fn stops_after(self, allowed: bool) -> bool {
        match self {
            Self::ExecuteAll => false,
            Self::DenyOnFirstDeny => !allowed,
            Self::PermitOnFirstPermit => allowed,
        }
    }
}

/// A search request's `page`: where to start and how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Continue after this id (from the token).
    pub after: Option<String>,
    /// Most results.
    pub limit: usize,
}

impl Page {
    /// From the request's `page` (`token`; the drafts' `next_token` is accepted too).
    pub fn parse(value: Option<&Value>) -> Result<Self, InputError> {
        let err = |at: &str, message: String| InputError::new(Part::Context, at, message);
        let object = match value {
            None | Some(Value::Null) => {
                return Ok(Self {
                    after: None,
                    limit: DEFAULT_PAGE,
                });
            }
            Some(Value::Object(object)) => object,
            Some(other) => {
                return Err(err(
                    "page",
                    format!("`page` must be an object, got `{other}`"),
                ));
            }
        };
        let token = object.get("token").or_else(|| object.get("next_token"));
        let after = match token {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) if t.is_empty() => None,
            Some(Value::String(t)) => Some(decode_token(t).ok_or_else(|| {
                err(
                    "page.token",
                    format!("`page.token` `{t}` is not a token this PDP gave"),
                )
            })?),
            Some(other) => {
                return Err(err(
                    "page.token",
                    format!("`page.token` must be a string, got `{other}`"),
                ));
            }
        };
        let limit = match object.get("limit") {
            None | Some(Value::Null) => DEFAULT_PAGE,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(n) if (1..=MAX_PAGE as u64).contains(&n) => n as usize,
                _ => {
                    return Err(err(
                        "page.limit",
                        format!("`page.limit` must be an integer from 1 to {MAX_PAGE}, got `{n}`"),
                    ));
                }
            },
            Some(other) => {
                return Err(err(
                    "page.limit",
                    format!("`page.limit` must be an integer, got `{other}`"),
                ));
            }
        };
        Ok(Self { after, limit })
    }
}

/// The opaque token that continues after `id`.
pub fn encode_token(id: &str) -> String {
    let hex: String = id.bytes().map(|b| format!("{b:02x}")).collect();
    format!("gh1.{hex}")
}

/// The id a token of [`encode_token`] continues after; `None` for text that is not one.
pub fn decode_token(token: &str) -> Option<String> {
    let hex = token.strip_prefix("gh1.")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// A page of search results: the ids kept and the token of the next page (empty when no
/// allowed result follows).
#[derive(Debug, Default)]
pub struct Hits {
    /// The allowed candidates, in order.
    pub ids: Vec<String>,
    /// `""` when nothing allowed follows.
    pub next_token: String,
}

/// Walks `candidates` in order, keeping those `allowed` says yes to, until `page` is full;
/// then looks on for one more allowed candidate to know whether a next page exists.
pub fn collect<E>(
    candidates: impl IntoIterator<Item = String>,
    limit: usize,
    mut allowed: impl FnMut(&str) -> Result<bool, E>,
) -> Result<Hits, E> {
    let mut found = Hits::default();
    for id in candidates {
        if !allowed(&id)? {
            continue;
        }
        if found.ids.len() == limit {
            found.next_token = encode_token(found.ids.last().map_or("", String::as_str));
            break;
        }
        found.ids.push(id);
    }
    Ok(found)
}

fn shown(value: Option<&Value>) -> String {
    match value {
        None => "nothing".into(),
        Some(v) => format!("`{v}`"),
    }
}
