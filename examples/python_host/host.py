#!/usr/bin/env python3
"""A host service in Python that asks gatehouse, with the standard library only.

It builds the entities of docs/DOMAIN.md ("What to send": an organization's project) and asks
one decision, a batch and the allowed actions, as the README shows with curl. Run it against
a sidecar and it prints what it learned as one JSON object:

    cargo run --release -- serve &
    python3 examples/python_host/host.py http://127.0.0.1:8180

Copy `Gatehouse` and the entity helpers into a service: they are the whole client. A host
fails closed: `may` answers False when gatehouse cannot be reached, times out or refuses the
question, and logs why.
"""

import json
import sys
import urllib.error
import urllib.request


class GatehouseError(Exception):
    """gatehouse refused the question (4xx) or could not answer (5xx, unreachable)."""

    def __init__(self, status, code, message, field=None):
        super().__init__(f"{code}: {message}" if status is None else f"{status} {code}: {message}")
        self.status, self.code, self.message, self.field = status, code, message, field


class Gatehouse:
    """A client of one sidecar."""

    def __init__(self, base="http://127.0.0.1:8180", timeout=2.0):
        self.base = base.rstrip("/")
        self.timeout = timeout

    def _post(self, path, body):
        request = urllib.request.Request(
            self.base + path,
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.load(response)
        except urllib.error.HTTPError as e:
            error = json.load(e).get("error", {})
            raise GatehouseError(e.code, error.get("code"), error.get("message"), error.get("field"))
        except (urllib.error.URLError, TimeoutError) as e:
            raise GatehouseError(None, "unreachable", str(e))

    def is_authorized(self, principal, action, resource, entities, context=None):
        """POST /v1/is_authorized: {"decision", "diagnostics": {"reason", "errors"}, "policy_version"}.
        `action` is an action's id ("share"); uids are `{"type", "id"}` or `Type::"id"` strings."""
        body = {"principal": principal, "action": action, "resource": resource, "entities": entities}
        if context is not None:
            body["context"] = context
        return self._post("/v1/is_authorized", body)

    def may(self, principal, action, resource, entities, context=None):
        """True on Allow; False on Deny and whenever no decision could be had (fail closed)."""
        try:
            answer = self.is_authorized(principal, action, resource, entities, context)
        except GatehouseError as e:
            print(f"gatehouse: {e}; denying", file=sys.stderr)
            return False
        return answer["decision"] == "Allow"

    def batch(self, requests, entities):
        """POST /v1/is_authorized/batch: one result per request, in order (a decision, or
        {"error": {...}} for a bad item)."""
        return self._post("/v1/is_authorized/batch", {"entities": entities, "requests": requests})["results"]

    def allowed_actions(self, principal, resource, entities, actions=None):
        """POST /v1/allowed_actions: {"allowed", "denied", "needs_context", "diagnostics", ...}."""
        body = {"principal": principal, "resource": resource, "entities": entities}
        if actions is not None:
            body["actions"] = actions
        return self._post("/v1/allowed_actions", body)


# The entities of docs/DOMAIN.md.


def uid(entity_type, entity_id):
    return {"type": entity_type, "id": entity_id}


def ref(entity_type, entity_id):
    """An entity-typed attribute value."""
    return {"__entity": uid(entity_type, entity_id)}


def user(user_id, groups=(), email=None):
    """A User in `groups` (ids such as "acme.editors" or "p1.viewers")."""
    attrs = {} if email is None else {"email": email}
    return {"uid": uid("User", user_id), "attrs": attrs, "parents": [uid("Group", g) for g in groups]}


def organization(org_id):
    """An Organization with its five groups, named after it."""
    roles = ["admins", "data_owners", "editors", "viewers", "members"]
    return {"uid": uid("Organization", org_id), "parents": [],
            "attrs": {r: ref("Group", f"{org_id}.{r}") for r in roles}}


def project(project_id, owner, organization_id=None, phase="planning", archived=False, public=False,
            downloads_enabled=False, editors_can_share=False):
    """A Project with its four groups, named after it."""
    attrs = {r: ref("Group", f"{project_id}.{r}") for r in ["admins", "managers", "editors", "viewers"]}
    attrs.update(owner=ref("User", owner), phase=phase, archived=archived, public=public,
                 downloads_enabled=downloads_enabled, editors_can_share=editors_can_share)
    if organization_id is not None:
        attrs["organization"] = ref("Organization", organization_id)
    return {"uid": uid("Project", project_id), "parents": [], "attrs": attrs}


def main(base):
    gatehouse = Gatehouse(base)
    # Vera: organization-wide editor of acme, and viewer of its project op1. Tom: a member.
    vera = user("vera", ["acme.members", "acme.editors", "op1.viewers"])
    tom = user("tom", ["acme.members"])
    acme = organization("acme")
    op1 = project("op1", "otto", "acme", phase="processing", editors_can_share=True)
    entities = [vera, tom, acme, op1]
    me, p1 = 'User::"vera"', uid("Project", "op1")
    share_with_tom = {"role": "viewer", "target": ref("User", "tom")}

    report = {}
    answer = gatehouse.is_authorized(me, "share", p1, entities, share_with_tom)
    report["share"] = {"decision": answer["decision"], "reason": answer["diagnostics"]["reason"]}
    # Without the organization the rules that read it cannot evaluate: Deny, with the errors.
    answer = gatehouse.is_authorized(me, "share", p1, [vera, tom, op1], share_with_tom)
    report["share_without_organization"] = {
        "decision": answer["decision"],
        "errors": len(answer["diagnostics"]["errors"]),
    }
    results = gatehouse.batch(
        [{"principal": me, "action": a, "resource": p1} for a in ["view", "edit", "delete", "edt"]],
        entities,
    )
    report["batch"] = [r.get("decision") or r["error"]["code"] for r in results]
    buttons = gatehouse.allowed_actions(me, p1, entities)
    report["allowed_actions"] = buttons["allowed"]
    report["may_delete"] = gatehouse.may(me, "delete", p1, entities)
    try:
        gatehouse.is_authorized(me, "view", uid("Projetc", "op1"), entities)
    except GatehouseError as e:
        report["bad_question"] = {"status": e.status, "code": e.code, "field": e.field}
    report["unreachable_may"] = Gatehouse("http://127.0.0.1:9", timeout=0.5).may(me, "view", p1, entities)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8180")
