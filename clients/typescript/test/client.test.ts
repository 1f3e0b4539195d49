// The client against a live sidecar serving a database seeded with `clients/world.json`
// (`scripts/check-clients` starts it and names it in GATEHOUSE_URL, GATEHOUSE_DB and
// GATEHOUSE_BIN). The world: olga owns p1 (items i1, i2), p2 (public) and p4 (public,
// archived); ana owns p3 (item i3); vera edits p1 and views p3; tom has no role anywhere.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";

import { Gatehouse, GatehouseError, type Listed } from "../src/index.js";

function env(name: string): string {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set: run scripts/check-clients`);
  return value;
}

const gatehouse = new Gatehouse(env("GATEHOUSE_URL"));
const vera = 'User::"vera"';

test("a decision names the policies that decided it", async () => {
  const edit = await gatehouse.isAuthorized({ principal: vera, action: "edit", resource: 'Project::"p1"' });
  assert.equal(edit.decision, "Allow");
  assert.deepEqual(edit.diagnostics.reason, ["roles.editor"]);
  assert.match(edit.entities_at ?? "", /^\d+$/);
  const archived = await gatehouse.isAuthorized({
    principal: vera,
    action: "view",
    resource: { type: "Project", id: "p4" },
  });
  assert.equal(archived.decision, "Deny");
  assert.deepEqual(archived.diagnostics.reason, ["archive.hidden-from-shared-users"]);
});

test("a batch answers each question in order, a bad one with its error", async () => {
  const results = await gatehouse.batch(
    ["view", "edit", "delete", "edt"].map((action) => ({ principal: vera, action, resource: 'Project::"p1"' })),
  );
  const decisions = results.map((r) => ("decision" in r ? r.decision : r.error.code));
  assert.deepEqual(decisions, ["Allow", "Allow", "Deny", "invalid_action"]);
});

test("allowed actions are the buttons of a page", async () => {
  const answer = await gatehouse.allowedActions({ principal: vera, resource: 'Project::"p3"' });
  assert.deepEqual(answer.allowed, ["leave", "view", "view_members"]);
  assert.deepEqual(answer.diagnostics.reasons["view"], ["roles.viewer"]);
  assert.ok(answer.denied.includes("edit"));
});

test("a list pages through what one-by-one decisions allow, never repeating an id", async () => {
  const question = { principal: vera, action: "view", resource_type: "Project" } as const;
  const first = await gatehouse.list({ ...question, page: { size: 2 } });
  assert.deepEqual(first.ids, ["p1", "p2"]);
  assert.equal(first.listed_by, "sql");
  assert.ok(first.next_token, "a next page");
  const second = await gatehouse.list({ ...question, page: { size: 2, token: first.next_token } });
  assert.deepEqual(second.ids, ["p3"]);
  assert.equal(second.next_token, undefined);
  assert.deepEqual(await gatehouse.listAll(question), ["p1", "p2", "p3"]);
  // The same ids as deciding each project: p4 is archived, so hidden from vera.
  const allowed: string[] = [];
  for (const id of ["p1", "p2", "p3", "p4"]) {
    const answer = await gatehouse.isAuthorized({ principal: vera, action: "view", resource: { type: "Project", id } });
    if (answer.decision === "Allow") allowed.push(id);
  }
  assert.deepEqual(allowed, ["p1", "p2", "p3"]);
});

test("a list within an entity is the items of one project", async () => {
  const edit = { principal: vera, action: "edit", resource_type: "Item" } as const;
  assert.deepEqual(await gatehouse.listAll({ ...edit, in: 'Project::"p1"' }), ["i1", "i2"]);
  // vera views p3 but may not edit its items.
  const view = await gatehouse.list({ ...edit, action: "view", in: { type: "Project", id: "p3" } });
  assert.deepEqual(view.ids, ["i3"]);
  assert.deepEqual(await gatehouse.listAll({ ...edit, in: 'Project::"p3"' }), []);
});

test("a streamed list yields every id, then its summary", async () => {
  const stream = gatehouse.stream({ principal: 'User::"olga"', action: "delete", resource_type: "Project" });
  const ids: string[] = [];
  let next = await stream.next();
  while (!next.done) {
    ids.push(next.value.id);
    next = await stream.next();
  }
  assert.deepEqual(ids, ["p1", "p2", "p4"]);
  assert.equal(next.value.count, 3);
  assert.equal(next.value.listed_by, "sql");
});

test("who has access: the members panel in one call", async () => {
  const panel = await gatehouse.listSubjects({
    actions: ["view", "edit", "delete"],
    resource: 'Project::"p1"',
    principal_type: "User",
  });
  assert.deepEqual(panel.ids, ["olga", "vera"]);
  assert.deepEqual(panel.subjects, [
    { id: "olga", actions: ["view", "edit", "delete"] },
    { id: "vera", actions: ["view", "edit"] },
  ]);
  // A public project: every user may view it.
  const everyone = await gatehouse.listSubjectsAll({
    action: "view",
    resource: 'Project::"p2"',
    principal_type: "User",
    page: { size: 1 },
  });
  assert.deepEqual(everyone, ["ana", "olga", "tom", "vera"]);
  const streamed: Listed[] = [];
  for await (const subject of gatehouse.streamSubjects({
    actions: ["view", "edit"],
    resource: 'Project::"p3"',
    principal_type: "User",
  })) {
    streamed.push(subject);
  }
  assert.deepEqual(streamed, [
    { id: "ana", actions: ["view", "edit"] },
    { id: "vera", actions: ["view"] },
  ]);
});

test("a refused question names its field; an unreachable sidecar fails closed", async () => {
  await assert.rejects(
    gatehouse.list({ principal: vera, action: "view", resource_type: "Projetc" }),
    (error: unknown) =>
      error instanceof GatehouseError && error.status === 400 && error.field === "resource_type",
  );
  await assert.rejects(
    gatehouse.list({ principal: vera, action: "view", resource_type: "Project", page: { size: 0 } }),
    (error: unknown) => error instanceof GatehouseError && error.field === "page.size",
  );
  const logged: string[] = [];
  const nowhere = new Gatehouse("http://127.0.0.1:9", { timeoutMs: 500 });
  assert.equal(
    await nowhere.may({ principal: vera, action: "view", resource: 'Project::"p1"' }, (m) => logged.push(m)),
    false,
  );
  assert.match(logged.join("\n"), /unreachable/);
});

// Last: it revokes vera's role in p1.
test("after a write, its position makes the next answers see it", async () => {
  assert.equal(await gatehouse.may({ principal: vera, action: "edit", resource: 'Project::"p1"' }), true);
  const revoked = [{ uid: { type: "User", id: "vera" }, attrs: {}, parents: [{ type: "Group", id: "p3.viewers" }] }];
  execFileSync(env("GATEHOUSE_BIN"), ["entities", "import", "--entities-db", env("GATEHOUSE_DB"), "-"], {
    input: JSON.stringify(revoked),
  });
  const written = (await gatehouse.position()).position;
  const fresh = gatehouse.atLeast(written);
  const edit = await fresh.isAuthorized({ principal: vera, action: "edit", resource: 'Project::"p1"' });
  assert.equal(edit.decision, "Deny");
  assert.ok(BigInt(edit.entities_at ?? "0") >= BigInt(written));
  assert.deepEqual(await fresh.listAll({ principal: vera, action: "edit", resource_type: "Project" }), []);
  const members = await fresh.listSubjects({ action: "view", resource: 'Project::"p1"', principal_type: "User" });
  assert.deepEqual(members.ids, ["olga"]);
});
