"""Asks a running sidecar the README's example questions and writes every request body and
every answer as a typed TypeScript constant, each typed by the operation of `paths` that
openapi-typescript generated from docs/openapi.json. `tsc --strict` then checks that the
generated types accept what hosts really send and receive.

    python3 scripts/typescript/capture.py BASE_URL OUT.ts
"""

import json
import sys
import urllib.error
import urllib.request

# The README's `vera.json`: one question, with the entities it is decided over.
VERA_ENTITIES = [
    {"uid": {"type": "User", "id": "vera"}, "attrs": {},
     "parents": [{"type": "Group", "id": "p1.editors"}]},
    {"uid": {"type": "Project", "id": "p1"}, "parents": [], "attrs": {
        "owner": {"type": "User", "id": "olga"},
        "admins": {"type": "Group", "id": "p1.admins"},
        "managers": {"type": "Group", "id": "p1.managers"},
        "editors": {"type": "Group", "id": "p1.editors"},
        "viewers": {"type": "Group", "id": "p1.viewers"},
        "phase": "processing", "archived": False, "public": False,
        "downloads_enabled": False, "editors_can_share": False}},
]
VERA = {"principal": 'User::"vera"', "action": 'Action::"edit"',
        "resource": 'Project::"p1"', "entities": VERA_ENTITIES}

# (method, path, body): the README's examples, with the context and attributes they carry.
EXAMPLES = [
    ("post", "/v1/is_authorized", VERA),
    ("post", "/v1/is_authorized", {
        "principal": 'User::"vera"', "action": 'Action::"share"', "resource": 'Project::"p1"',
        "context": {"role": "viewer", "target": {"__entity": {"type": "User", "id": "stan"}}},
        "entities": VERA_ENTITIES}),
    ("post", "/v1/is_authorized/batch", {"entities": VERA_ENTITIES, "requests": [
        {"principal": 'User::"vera"', "action": 'Action::"export_report"',
         "resource": 'Project::"p1"'},
        {"principal": 'User::"vera"', "action": 'Action::"edt"', "resource": 'Project::"p1"'},
        {"principal": 'User::"vera"', "action": 'Action::"share"', "resource": 'Project::"p1"',
         "context": {"role": "viewer", "target": 'User::"stan"'}}]}),
    ("post", "/v1/allowed_actions", {
        "principal": 'User::"vera"', "resource": 'Project::"p1"', "entities": VERA_ENTITIES}),
    ("post", "/v1/allowed_actions", {
        "principal": 'User::"vera"', "resource": 'Project::"p1"', "actions": ["share", "view"],
        "context": {"role": "viewer"}, "entities": VERA_ENTITIES}),
    ("post", "/v1/plan", {
        "principal": 'User::"erin"', "action": 'Action::"edit"', "resource_type": "Project",
        "entities": [{"uid": {"type": "User", "id": "erin"}, "attrs": {}, "parents": [
            {"type": "Group", "id": "acme.editors"},
            {"type": "Group", "id": "acme.members"}]}]}),
    ("post", "/access/v1/evaluation", {
        "subject": {"type": "user", "id": "vera"}, "action": {"name": "edit"},
        "resource": {"type": "project", "id": "p1"}}),
    ("post", "/access/v1/evaluation", {
        "subject": {"type": "user", "id": "vera"}, "action": {"name": "edit"},
        "resource": {"type": "project", "id": "p1", "properties": {"archived": True}}}),
    ("post", "/access/v1/evaluations", {
        "subject": {"type": "user", "id": "vera"}, "resource": {"type": "project", "id": "p1"},
        "context": {"role": "viewer", "target": {"type": "User", "id": "stan"}},
        "evaluations": [{"action": {"name": "edit"}}, {"action": {"name": "share"}}]}),
    ("post", "/access/v1/search/resource", {
        "subject": {"type": "user", "id": "vera"}, "action": {"name": "edit"},
        "resource": {"type": "project"}, "page": {"limit": 2}}),
    ("get", "/.well-known/authzen-configuration", None),
    ("get", "/v1/status", None),
    ("get", "/v1/policies", None),
    ("get", "/v1/schema", None),
]


def ask(base, method, path, body):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method.upper(),
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        sys.exit(f"capture: {method.upper()} {path} answered {error.code}: {error.read()!r}")


def main():
    base, out = sys.argv[1], sys.argv[2]
    lines = ['import type { paths } from "./openapi";', ""]
    for i, (method, path, body) in enumerate(EXAMPLES):
        status, answer = ask(base, method, path, body)
        operation = f'paths["{path}"]["{method}"]'
        if body is not None:
            kind = f'NonNullable<{operation}["requestBody"]>["content"]["application/json"]'
            lines.append(f"// {method.upper()} {path}")
            lines.append(f"export const request{i}: {kind} = {json.dumps(body, indent=2)};")
        kind = f'{operation}["responses"][{status}]["content"]["application/json"]'
        lines.append(f"export const answer{i}: {kind} = {json.dumps(answer, indent=2)};")
        lines.append("")
    with open(out, "w") as f:
        f.write("\n".join(lines))
    print(f"capture: {len(EXAMPLES)} exchanges written to {out}")


main()
