"""A client of one gatehouse sidecar, on the standard library alone.

    gatehouse = Gatehouse("http://127.0.0.1:8180")
    answer = gatehouse.is_authorized('User::"vera"', "edit", 'Project::"p1"')
    answer["decision"]               # "Allow"
    answer["diagnostics"]["reason"]  # ["roles.editor"]

Uids are Cedar's `User::"vera"` strings or `{"type": "User", "id": "vera"}`; an action may be
its id alone (`"edit"`). Answers are the sidecar's JSON, typed as the `TypedDict`s below
(docs/openapi.json is their source). A host fails closed: `may` answers False when the sidecar
cannot be reached, times out or refuses the question, and logs why; every other call raises a
`GatehouseError` that tells these apart.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any, Dict, Iterator, List, Literal, Mapping, Optional, Sequence, TypedDict, Union

__all__ = [
    "ActionDiagnostics",
    "AllowedActions",
    "Decision",
    "Diagnostics",
    "Gatehouse",
    "GatehouseError",
    "ListPage",
    "ListStream",
    "Listed",
    "Position",
    "SubjectActions",
    "Uid",
]

log = logging.getLogger("gatehouse_client")

Uid = Union[str, Mapping[str, str]]
"""`User::"vera"`, `{"type": "User", "id": "vera"}`, or an action's id alone."""

Consistency = Union[Literal["full"], Mapping[str, str]]
"""`{"at_least": token}` (an answer's `entities_at`, or `position()` after a write), or "full"."""


class Diagnostics(TypedDict):
    reason: List[str]
    """The deciding policies: the permits that held on Allow, the forbids on Deny."""
    errors: List[str]
    missing: List[str]


class _DecisionRequired(TypedDict):
    decision: Literal["Allow", "Deny"]
    diagnostics: Diagnostics
    policy_version: str


class Decision(_DecisionRequired, total=False):
    entities_at: Optional[str]
    """With an entity database: the position the entities were read at (a token)."""


class ActionDiagnostics(TypedDict):
    reasons: Dict[str, List[str]]
    errors: Dict[str, List[str]]
    missing: List[str]


class _AllowedRequired(TypedDict):
    allowed: List[str]
    denied: List[str]
    needs_context: List[str]
    diagnostics: ActionDiagnostics
    policy_version: str


class AllowedActions(_AllowedRequired, total=False):
    entities_at: Optional[str]


class SubjectActions(TypedDict):
    id: str
    actions: List[str]


class _ListPageRequired(TypedDict):
    ids: List[str]
    listed_by: Literal["sql", "decisions"]
    policy_version: str


class ListPage(_ListPageRequired, total=False):
    next_token: Optional[str]
    """Where the next page starts; absent on the last page."""
    subjects: Optional[List[SubjectActions]]
    """With several actions: each id with the actions it may take."""
    unsupported: Optional[str]
    """Why the SQL could not answer, when decisions did."""
    entities_at: Optional[str]


class _ListedRequired(TypedDict):
    id: str


class Listed(_ListedRequired, total=False):
    actions: List[str]


class Position(TypedDict):
    position: str
    """The database's last committed change: after a write, the token for `at_least`."""
    applied: str


class GatehouseError(Exception):
    """gatehouse refused the question (4xx, with its code and the field at fault), could not
    answer (5xx), or could not be reached in time (`status` None: `unreachable`, `timeout`)."""

    def __init__(
        self,
        status: Optional[int],
        code: str,
        message: str,
        field: Optional[str] = None,
        request_id: Optional[str] = None,
    ) -> None:
        super().__init__(f"{code}: {message}" if status is None else f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.field, self.request_id = field, request_id


class ListStream:
    """The ids of a streamed list (`Accept: application/x-ndjson`), as they arrive. After the
    last one, `summary` holds the `done` line (`count`, `listed_by`, `policy_version`,
    `entities_at`); a stream cut off before it raises `GatehouseError("cut_off")`, so a
    partial list is never taken for a whole one."""

    def __init__(self, response: Any) -> None:
        self._response = response
        self.summary: Optional[Dict[str, Any]] = None

    def __iter__(self) -> Iterator[Listed]:
        with self._response as response:
            for raw in response:
                if not raw.strip():
                    continue
                line = json.loads(raw)
                if line.get("done") is True:
                    self.summary = line
                    return
                if "error" in line:
                    error = line["error"]
                    raise GatehouseError(
                        response.status, error.get("code", "error"), error.get("message", ""),
                        error.get("field"))
                yield line
        raise GatehouseError(None, "cut_off", "the list ended without its `done` line")


class Gatehouse:
    """A client of one sidecar. `timeout` is in seconds; `consistency` is asked with every
    question that sets none of its own."""

    def __init__(
        self,
        base: str = "http://127.0.0.1:8180",
        timeout: float = 2.0,
        consistency: Optional[Consistency] = None,
        admin_token: Optional[str] = None,
    ) -> None:
        self.base = base.rstrip("/")
        self.timeout = timeout
        self.consistency = consistency
        self.admin_token = admin_token

    def with_consistency(self, consistency: Consistency) -> Gatehouse:
        """The same client, asking every question with `consistency`."""
        return Gatehouse(self.base, self.timeout, consistency, self.admin_token)

    def at_least(self, token: str) -> Gatehouse:
        """The same client, decided on the database as of `token` at least (an answer's
        `entities_at`, or `position()` right after a write of the host's)."""
        return self.with_consistency({"at_least": token})

    # Decisions.

    def is_authorized(
        self,
        principal: Uid,
        action: Uid,
        resource: Uid,
        context: Optional[Mapping[str, Any]] = None,
        entities: Optional[Sequence[Mapping[str, Any]]] = None,
    ) -> Decision:
        """`POST /v1/is_authorized`."""
        body = _question(principal, action, resource, context)
        if entities is not None:
            body["entities"] = list(entities)
        answer: Decision = self._call("/v1/is_authorized", self._consistent(body))
        return answer

    def may(
        self,
        principal: Uid,
        action: Uid,
        resource: Uid,
        context: Optional[Mapping[str, Any]] = None,
    ) -> bool:
        """True on Allow; False on Deny and whenever no decision could be had (fail closed)."""
        try:
            return self.is_authorized(principal, action, resource, context)["decision"] == "Allow"
        except GatehouseError as error:
            log.warning("gatehouse: %s; denying", error)
            return False

    def batch(
        self,
        requests: Sequence[Mapping[str, Any]],
        entities: Optional[Sequence[Mapping[str, Any]]] = None,
    ) -> List[Dict[str, Any]]:
        """`POST /v1/is_authorized/batch`: one result per question, in order: a `Decision`, or
        `{"error": {...}}` for a question that could not be asked."""
        body: Dict[str, Any] = {"requests": list(requests)}
        if entities is not None:
            body["entities"] = list(entities)
        results: List[Dict[str, Any]] = self._call(
            "/v1/is_authorized/batch", self._consistent(body))["results"]
        return results

    def allowed_actions(
        self,
        principal: Uid,
        resource: Uid,
        actions: Optional[Sequence[Uid]] = None,
        context: Optional[Mapping[str, Any]] = None,
    ) -> AllowedActions:
        """`POST /v1/allowed_actions`: the actions (all that apply when none are named) the
        principal may take on the resource: a page's buttons in one call."""
        body: Dict[str, Any] = {"principal": principal, "resource": resource}
        if actions is not None:
            body["actions"] = list(actions)
        if context is not None:
            body["context"] = dict(context)
        answer: AllowedActions = self._call("/v1/allowed_actions", self._consistent(body))
        return answer

    def plan(
        self,
        principal: Uid,
        action: Uid,
        resource_type: str,
        context: Optional[Mapping[str, Any]] = None,
    ) -> Dict[str, Any]:
        """`POST /v1/plan`: the condition, for a host that runs the SQL itself."""
        body = _list_question(principal, action, resource_type, context)
        plan: Dict[str, Any] = self._call("/v1/plan", self._consistent(body))
        return plan

    # Lists, answered in the sidecar's entity database.

    def list(
        self,
        principal: Uid,
        action: Uid,
        resource_type: str,
        context: Optional[Mapping[str, Any]] = None,
        size: Optional[int] = None,
        token: Optional[str] = None,
        within: Optional[Uid] = None,
    ) -> ListPage:
        """`POST /v1/list`: one page (`size` ids at most, 1 to 1000; 100 by default) of the
        resources of `resource_type` the principal may act on, after the page whose
        `next_token` is `token`; only those in `within` when it is given (`in`: Cedar's
        `resource in Project::"p1"`, the items of one project)."""
        body = _list_question(principal, action, resource_type, context, within)
        body["page"] = _page(size, token)
        page: ListPage = self._call("/v1/list", self._consistent(body))
        return page

    def list_all(
        self,
        principal: Uid,
        action: Uid,
        resource_type: str,
        context: Optional[Mapping[str, Any]] = None,
        within: Optional[Uid] = None,
    ) -> List[str]:
        """Every id of `list`, page after page; each page asked at least at the position the
        one before it was read at."""
        body = _list_question(principal, action, resource_type, context, within)
        return self._all("/v1/list", body)

    def stream(
        self,
        principal: Uid,
        action: Uid,
        resource_type: str,
        context: Optional[Mapping[str, Any]] = None,
        within: Optional[Uid] = None,
    ) -> ListStream:
        """Every id of `list` in one streamed answer, for exports."""
        body = _list_question(principal, action, resource_type, context, within)
        return self._stream("/v1/list", body)

    def list_subjects(
        self,
        actions: Union[Uid, Sequence[Uid]],
        resource: Uid,
        principal_type: str,
        context: Optional[Mapping[str, Any]] = None,
        size: Optional[int] = None,
        token: Optional[str] = None,
    ) -> ListPage:
        """`POST /v1/list/subjects`: one page of the principals of `principal_type` that may
        take the action on the resource ("who has access?"). With a list of actions, the
        subjects that may take any of them, and `subjects` says which each may take."""
        body = _subjects_question(actions, resource, principal_type, context)
        body["page"] = _page(size, token)
        page: ListPage = self._call("/v1/list/subjects", self._consistent(body))
        return page

    def list_subjects_all(
        self,
        actions: Union[Uid, Sequence[Uid]],
        resource: Uid,
        principal_type: str,
        context: Optional[Mapping[str, Any]] = None,
    ) -> List[str]:
        """Every id of `list_subjects`, page after page."""
        body = _subjects_question(actions, resource, principal_type, context)
        return self._all("/v1/list/subjects", body)

    def stream_subjects(
        self,
        actions: Union[Uid, Sequence[Uid]],
        resource: Uid,
        principal_type: str,
        context: Optional[Mapping[str, Any]] = None,
    ) -> ListStream:
        """Every subject of `list_subjects` in one streamed answer."""
        body = _subjects_question(actions, resource, principal_type, context)
        return self._stream("/v1/list/subjects", body)

    # The entity database and the sidecar.

    def position(self) -> Position:
        """`GET /v1/entities/position`."""
        answer: Position = self._call("/v1/entities/position")
        return answer

    def status(self) -> Dict[str, Any]:
        """`GET /v1/status` (with the admin token when the sidecar requires one)."""
        answer: Dict[str, Any] = self._call("/v1/status")
        return answer

    def _all(self, path: str, body: Dict[str, Any]) -> List[str]:
        ids: List[str] = []
        body = self._consistent(body)
        body["page"] = {"size": 1000}
        while True:
            page = self._call(path, body)
            ids.extend(page["ids"])
            if page.get("next_token") is None:
                return ids
            body["page"] = {"size": 1000, "token": page["next_token"]}
            if page.get("entities_at") is not None:
                body["consistency"] = {"at_least": page["entities_at"]}

    def _stream(self, path: str, body: Dict[str, Any]) -> ListStream:
        return ListStream(self._open(path, self._consistent(body), "application/x-ndjson"))

    def _consistent(self, body: Dict[str, Any]) -> Dict[str, Any]:
        if self.consistency is not None and "consistency" not in body:
            return {**body, "consistency": self.consistency}
        return body

    def _call(self, path: str, body: Optional[Mapping[str, Any]] = None) -> Any:
        with self._open(path, body, "application/json") as response:
            return json.load(response)

    def _open(self, path: str, body: Optional[Mapping[str, Any]], accept: str) -> Any:
        headers = {"accept": accept}
        if body is not None:
            headers["content-type"] = "application/json"
        if self.admin_token is not None:
            headers["authorization"] = f"Bearer {self.admin_token}"
        request = urllib.request.Request(
            self.base + path,
            data=None if body is None else json.dumps(body).encode(),
            headers=headers,
            method="GET" if body is None else "POST",
        )
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            request_id = e.headers.get("x-request-id")
            try:
                error = json.load(e).get("error", {})
            except ValueError:  # not gatehouse's error body (a proxy's page): the status alone
                error = {}
            raise GatehouseError(
                e.code, error.get("code", "http_error"), error.get("message", e.reason),
                error.get("field"), request_id) from None
        except TimeoutError as e:
            raise GatehouseError(None, "timeout", f"{self.base + path}: {e}") from None
        except urllib.error.URLError as e:
            code = "timeout" if isinstance(e.reason, TimeoutError) else "unreachable"
            raise GatehouseError(None, code, f"{self.base + path}: {e.reason}") from None


def _question(principal: Uid, action: Uid, resource: Uid,
              context: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    body: Dict[str, Any] = {"principal": principal, "action": action, "resource": resource}
    if context is not None:
        body["context"] = dict(context)
    return body


def _list_question(principal: Uid, action: Uid, resource_type: str,
                   context: Optional[Mapping[str, Any]],
                   within: Optional[Uid] = None) -> Dict[str, Any]:
    body: Dict[str, Any] = {"principal": principal, "action": action,
                            "resource_type": resource_type}
    if within is not None:
        body["in"] = within
    if context is not None:
        body["context"] = dict(context)
    return body


def _subjects_question(actions: Union[Uid, Sequence[Uid]], resource: Uid, principal_type: str,
                       context: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    body: Dict[str, Any] = {"resource": resource, "principal_type": principal_type}
    if isinstance(actions, (str, Mapping)):
        body["action"] = actions
    else:
        body["actions"] = list(actions)
    if context is not None:
        body["context"] = dict(context)
    return body


def _page(size: Optional[int], token: Optional[str]) -> Dict[str, Any]:
    page: Dict[str, Any] = {}
    if size is not None:
        page["size"] = size
    if token is not None:
        page["token"] = token
    return page
