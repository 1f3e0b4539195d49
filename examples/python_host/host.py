#!/usr/bin/env python3
"""A host service in Python that asks gatehouse, with the standard library only.

The host keeps its records in its own database, in the tables gatehouse's bundled mapping
reads (entities/migrations), and gatehouse reads the entities of each question from there:
the host asks by id alone, and builds no entity. Right after a write of its own (a revoke),
it asks with the write's position as a consistency token, so that the answer sees the write.
Run it against a sidecar serving that database and it prints what it learned as one JSON
object:

    cargo run --release -- serve --entities-db sqlite://gatehouse.db &
    python3 examples/python_host/host.py http://127.0.0.1:8180 gatehouse.db

Copy `Gatehouse` into a service: it is the whole client. A host fails closed: `may` answers
False when gatehouse cannot be reached, times out or refuses the question, and logs why.
"""

import json
import sqlite3
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

    def _call(self, path, body=None):
        request = urllib.request.Request(
            self.base + path,
            data=None if body is None else json.dumps(body).encode(),
            headers={"content-type": "application/json"},
            method="GET" if body is None else "POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.load(response)
        except urllib.error.HTTPError as e:
            error = json.load(e).get("error", {})
            raise GatehouseError(e.code, error.get("code"), error.get("message"), error.get("field"))
        except (urllib.error.URLError, TimeoutError) as e:
            raise GatehouseError(None, "unreachable", str(e))

    def is_authorized(self, principal, action, resource, context=None, at_least=None):
        """POST /v1/is_authorized by id: {"decision", "diagnostics": {"reason", "errors",
        "missing"}, "policy_version", "entities_at"}. `action` is an action's id ("share");
        uids are `Type::"id"` strings or `{"type", "id"}`. `at_least`: a position (from
        `position()` after a write): the answer sees everything committed before it."""
        body = {"principal": principal, "action": action, "resource": resource}
        if context is not None:
            body["context"] = context
        if at_least is not None:
            body["consistency"] = {"at_least": at_least}
        return self._call("/v1/is_authorized", body)

    def may(self, principal, action, resource, context=None, at_least=None):
        """True on Allow; False on Deny and whenever no decision could be had (fail closed)."""
        try:
            answer = self.is_authorized(principal, action, resource, context, at_least)
        except GatehouseError as e:
            print(f"gatehouse: {e}; denying", file=sys.stderr)
            return False
        return answer["decision"] == "Allow"

    def batch(self, requests):
        """POST /v1/is_authorized/batch: one result per request, in order (a decision, or
        {"error": {...}} for a bad item)."""
        return self._call("/v1/is_authorized/batch", {"requests": requests})["results"]

    def allowed_actions(self, principal, resource, actions=None):
        """POST /v1/allowed_actions: {"allowed", "denied", "needs_context", "diagnostics", ...}."""
        body = {"principal": principal, "resource": resource}
        if actions is not None:
            body["actions"] = actions
        return self._call("/v1/allowed_actions", body)

    def position(self):
        """GET /v1/entities/position: the database's position now (after the host's own
        write, a token for its next question)."""
        return self._call("/v1/entities/position")["position"]


# The host's own records, as its code writes them (here in SQL, in the bundled tables).


class Records:
    def __init__(self, path):
        self.db = sqlite3.connect(path, isolation_level=None)

    def user(self, user_id, groups=(), email=None):
        self.db.execute("INSERT INTO users (id, email) VALUES (?, ?)", (user_id, email))
        for group in groups:
            self.join(user_id, group)

    def join(self, user_id, group):
        self.db.execute("INSERT INTO user_groups (user_id, group_id) VALUES (?, ?)", (user_id, group))

    def leave(self, user_id, group):
        self.db.execute("DELETE FROM user_groups WHERE user_id = ? AND group_id = ?", (user_id, group))

    def organization(self, org_id):
        """An organization with its five groups, named after it."""
        roles = ["admins", "data_owners", "editors", "viewers", "members"]
        self.db.execute(
            f"INSERT INTO organizations (id, {', '.join(r + '_group' for r in roles)}) VALUES (?, ?, ?, ?, ?, ?)",
            (org_id, *(f"{org_id}.{r}" for r in roles)))

    def project(self, project_id, owner, organization_id, phase, editors_can_share):
        """A project with its four groups, named after it."""
        self.db.execute(
            "INSERT INTO projects (id, owner_id, organization_id, admins_group, managers_group,"
            " editors_group, viewers_group, phase, archived, public, downloads_enabled,"
            " editors_can_share) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0, ?)",
            (project_id, owner, organization_id, *(f"{project_id}.{r}" for r in
             ["admins", "managers", "editors", "viewers"]), phase, int(editors_can_share)))


def main(base, database):
    gatehouse = Gatehouse(base)
    records = Records(database)
    # Vera: organization-wide editor of acme, and viewer of its project op1. Tom: a member.
    records.organization("acme")
    records.project("op1", "otto", "acme", phase="processing", editors_can_share=True)
    records.user("vera", ["acme.members", "acme.editors", "op1.viewers"])
    records.user("tom", ["acme.members"])
    written = gatehouse.position()
    me, p1 = 'User::"vera"', 'Project::"op1"'
    share_with_tom = {"role": "viewer", "target": {"__entity": {"type": "User", "id": "tom"}}}

    report = {}
    answer = gatehouse.is_authorized(me, "share", p1, share_with_tom, at_least=written)
    report["share"] = {"decision": answer["decision"], "reason": answer["diagnostics"]["reason"]}
    results = gatehouse.batch(
        [{"principal": me, "action": a, "resource": p1} for a in ["view", "edit", "delete", "edt"]])
    report["batch"] = [r.get("decision") or r["error"]["code"] for r in results]
    buttons = gatehouse.allowed_actions(me, p1)
    report["allowed_actions"] = buttons["allowed"]
    report["may_delete"] = gatehouse.may(me, "delete", p1)
    # Someone the database does not hold: denied, and named.
    answer = gatehouse.is_authorized('User::"nobody"', "view", p1)
    report["nobody"] = {"decision": answer["decision"], "missing": answer["diagnostics"]["missing"]}
    # Vera no longer an editor of acme: the next question, with the revoke's position, sees it.
    records.leave("vera", "acme.editors")
    revoked = gatehouse.position()
    answer = gatehouse.is_authorized(me, "share", p1, share_with_tom, at_least=revoked)
    report["share_after_revoke"] = answer["decision"]
    try:
        gatehouse.is_authorized(me, "view", {"type": "Projetc", "id": "op1"})
    except GatehouseError as e:
        report["bad_question"] = {"status": e.status, "code": e.code, "field": e.field}
    report["unreachable_may"] = Gatehouse("http://127.0.0.1:9", timeout=0.5).may(me, "view", p1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8180",
         sys.argv[2] if len(sys.argv) > 2 else "gatehouse.db")
