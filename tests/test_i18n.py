"""Error messages follow Accept-Language: Simplified Chinese or English (the default)."""

from __future__ import annotations

from pathlib import Path

import polib
import pytest
from django.conf import settings

PO = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"


@pytest.mark.parametrize("language", ["zh-hans", "zh-CN", "zh-cn,zh;q=0.9,en;q=0.8", "zh"])
def test_our_own_messages_are_chinese_when_asked(alice, language):
    answer = alice.get("/tasks/no-such-task", HTTP_ACCEPT_LANGUAGE=language)
    assert answer.status_code == 404
    assert answer.json() == {
        "ecode": 404,
        "enote": "task_id: 任务 no-such-task 不存在",
        "errors": {"task_id": ["任务 no-such-task 不存在"]},
    }


@pytest.mark.parametrize("language", ["en", "fr-FR", "xx", ""])
def test_english_when_the_language_is_unknown(alice, language):
    answer = alice.get("/tasks/no-such-task", HTTP_ACCEPT_LANGUAGE=language)
    assert answer.json()["enote"] == "task_id: no task no-such-task"


def test_validation_messages_are_chinese_when_asked(alice):
    answer = alice.post("/tasks", {"task_name": "x"}, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert answer.status_code == 400
    assert answer.json()["errors"]["run_dt"] == ["该字段是必填项。"]


def test_unauthenticated_answer_is_chinese_when_asked(db, client):
    answer = client.get("/tasks", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert answer.status_code == 401
    assert "API 令牌" in answer.json()["enote"]


def test_every_message_in_the_catalogue_is_translated():
    catalogue = polib.pofile(str(PO))
    untranslated = [
        entry.msgid
        for entry in catalogue
        if entry.msgid and not entry.msgstr and not any((entry.msgstr_plural or {}).values())
    ]
    assert untranslated == []
    assert not [entry.msgid for entry in catalogue if "fuzzy" in entry.flags]
