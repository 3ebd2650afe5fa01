"""The embedded default holds concurrent writers: 20 clients x 100 POST /tasks against a real
threaded server on a fresh SQLite file. Every answer is 200 (POST /tasks creates with 200) or a
refusal in the envelope (never a 500 "database is locked"), and every 200 is stored."""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

from tests.live_server import LiveServer, task_body

WRITERS = 20
POSTS_PER_WRITER = int(os.environ.get("VIAS_TEST_SQLITE_POSTS", "100"))


def write_tasks(server: LiveServer, writer: int) -> list[tuple[int, object]]:
    answers = []
    for n in range(POSTS_PER_WRITER):
        answers.append(server.request("POST", "/tasks", task_body(f"w{writer}-{n}")))
    return answers


def test_twenty_concurrent_writers_on_sqlite_get_no_500_and_every_200_is_stored():
    # The suite's Redis carries the announcements, as `up`'s bundled one would.
    with LiveServer({"REDIS_URL": settings.REDIS_URL, "VIAS_CHANNEL_PREFIX": "sqlite-writers"}) as server:
        with ThreadPoolExecutor(WRITERS) as pool:
            results = [
                answer
                for batch in pool.map(lambda w: write_tasks(server, w), range(WRITERS))
                for answer in batch
            ]
        statuses = Counter(status for status, _body in results)
        assert statuses == {200: WRITERS * POSTS_PER_WRITER}, (
            statuses,
            [b for s, b in results if s != 200][:3],
        )
        created = {body["data"]["task_id"] for status, body in results if status == 200}
        assert server.task_ids() == created
