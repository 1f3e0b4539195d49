"""The client against a live sidecar serving a SQLite database seeded with
`clients/world.json` (`scripts/check-clients` starts it and names it in GATEHOUSE_URL and
GATEHOUSE_DB). The world: olga owns p1 (items i1, i2), p2 (public) and p4 (public, archived);
ana owns p3 (item i3); vera edits p1 and views p3; tom has no role anywhere."""

from __future__ import annotations

import os
import sqlite3
import unittest

from gatehouse_client import Gatehouse, GatehouseError

VERA = 'User::"vera"'


def _env(name: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise unittest.SkipTest(f"{name} is not set: run scripts/check-clients")
    return value


class Client(unittest.TestCase):
    gatehouse: Gatehouse

    @classmethod
    def setUpClass(cls) -> None:
        cls.gatehouse = Gatehouse(_env("GATEHOUSE_URL"))

    def test_a_decision_names_the_policies_that_decided_it(self) -> None:
        edit = self.gatehouse.is_authorized(VERA, "edit", 'Project::"p1"')
        self.assertEqual(edit["decision"], "Allow")
        self.assertEqual(edit["diagnostics"]["reason"], ["roles.editor"])
        archived = self.gatehouse.is_authorized(VERA, "view", {"type": "Project", "id": "p4"})
        self.assertEqual(archived["decision"], "Deny")
        self.assertEqual(archived["diagnostics"]["reason"], ["archive.hidden-from-shared-users"])

    def test_a_batch_answers_in_order_a_bad_question_with_its_error(self) -> None:
        results = self.gatehouse.batch([
            {"principal": VERA, "action": action, "resource": 'Project::"p1"'}
            for action in ["view", "edit", "delete", "edt"]])
        self.assertEqual([r.get("decision") or r["error"]["code"] for r in results],
                         ["Allow", "Allow", "Deny", "invalid_action"])

    def test_allowed_actions_are_a_pages_buttons(self) -> None:
        answer = self.gatehouse.allowed_actions(VERA, 'Project::"p3"')
        self.assertEqual(answer["allowed"], ["leave", "view", "view_members"])
        self.assertEqual(answer["diagnostics"]["reasons"]["view"], ["roles.viewer"])
        self.assertIn("edit", answer["denied"])

    def test_a_list_pages_through_what_decisions_allow(self) -> None:
        first = self.gatehouse.list(VERA, "view", "Project", size=2)
        self.assertEqual(first["ids"], ["p1", "p2"])
        self.assertEqual(first["listed_by"], "sql")
        second = self.gatehouse.list(VERA, "view", "Project", size=2, token=first["next_token"])
        self.assertEqual(second["ids"], ["p3"])
        self.assertNotIn("next_token", second)
        self.assertEqual(self.gatehouse.list_all(VERA, "view", "Project"), ["p1", "p2", "p3"])
        # The same as deciding each project: p4 is archived, so hidden from vera.
        decided = [p for p in ["p1", "p2", "p3", "p4"]
                   if self.gatehouse.may(VERA, "view", {"type": "Project", "id": p})]
        self.assertEqual(decided, ["p1", "p2", "p3"])

    def test_a_list_within_an_entity_is_the_items_of_one_project(self) -> None:
        self.assertEqual(self.gatehouse.list_all(VERA, "edit", "Item", within='Project::"p1"'),
                         ["i1", "i2"])
        # vera views p3 but may not edit its items.
        self.assertEqual(self.gatehouse.list(VERA, "view", "Item", within='Project::"p3"')["ids"],
                         ["i3"])
        self.assertEqual(self.gatehouse.list_all(VERA, "edit", "Item", within='Project::"p3"'), [])
        streamed = self.gatehouse.stream(VERA, "view", "Item", within='Project::"p1"')
        self.assertEqual([line["id"] for line in streamed], ["i1", "i2"])

    def test_a_streamed_list_yields_every_id_then_its_summary(self) -> None:
        stream = self.gatehouse.stream('User::"olga"', "delete", "Project")
        self.assertEqual([line["id"] for line in stream], ["p1", "p2", "p4"])
        assert stream.summary is not None
        self.assertEqual((stream.summary["count"], stream.summary["listed_by"]), (3, "sql"))

    def test_who_has_access_the_members_panel_in_one_call(self) -> None:
        panel = self.gatehouse.list_subjects(["view", "edit", "delete"], 'Project::"p1"', "User")
        self.assertEqual(panel["ids"], ["olga", "vera"])
        self.assertEqual(panel.get("subjects"), [
            {"id": "olga", "actions": ["view", "edit", "delete"]},
            {"id": "vera", "actions": ["view", "edit"]},
        ])
        # A public project: every user may view it.
        self.assertEqual(self.gatehouse.list_subjects_all("view", 'Project::"p2"', "User"),
                         ["ana", "olga", "tom", "vera"])
        streamed = list(self.gatehouse.stream_subjects(["view", "edit"], 'Project::"p3"', "User"))
        self.assertEqual(streamed, [{"id": "ana", "actions": ["view", "edit"]},
                                    {"id": "vera", "actions": ["view"]}])

    def test_a_refused_question_names_its_field_and_unreachable_fails_closed(self) -> None:
        with self.assertRaises(GatehouseError) as refused:
            self.gatehouse.list(VERA, "view", "Projetc")
        self.assertEqual((refused.exception.status, refused.exception.field), (400, "resource_type"))
        with self.assertRaises(GatehouseError) as refused:
            self.gatehouse.list(VERA, "view", "Project", size=0)
        self.assertEqual(refused.exception.field, "page.size")
        nowhere = Gatehouse("http://127.0.0.1:9", timeout=0.5)
        with self.assertLogs("gatehouse_client", "WARNING") as logged:
            self.assertFalse(nowhere.may(VERA, "view", 'Project::"p1"'))
        self.assertIn("unreachable", logged.output[0])

    def test_z_after_a_write_its_position_makes_the_next_answers_see_it(self) -> None:
        # Last (unittest runs in name order): it revokes vera's role in p1, in the host's SQL.
        self.assertTrue(self.gatehouse.may(VERA, "edit", 'Project::"p1"'))
        database = sqlite3.connect(_env("GATEHOUSE_DB").removeprefix("sqlite://"))
        with database:
            database.execute(
                "DELETE FROM user_groups WHERE user_id = 'vera' AND group_id = 'p1.editors'")
        database.close()
        fresh = self.gatehouse.at_least(self.gatehouse.position()["position"])
        self.assertEqual(fresh.is_authorized(VERA, "edit", 'Project::"p1"')["decision"], "Deny")
        self.assertEqual(fresh.list_all(VERA, "edit", "Project"), [])
        self.assertEqual(fresh.list_subjects("view", 'Project::"p1"', "User")["ids"], ["olga"])


if __name__ == "__main__":
    unittest.main()
