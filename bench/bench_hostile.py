"""A hostile test of the running system (docs/benchmarks.md, "Hostile input"), in one run:

1. schemathesis against the schema the server serves, longer than the suite's bounded run
   (tests/test_schemathesis.py): every operation, the examples, coverage and fuzzing phases,
   `--examples` generated cases each, about half of them aimed at objects that exist;
2. hand-made hostile requests: every operation with an id, sent by another project's token with
   the first project's ids (a leak is any 2xx, or an answer that contains the first project's
   ids); malformed tokens; XML entity attacks; source and webhook URLs into this machine or the
   metadata service (SSRF); framing (oversized headers, chunked bodies, deep and NUL-laden JSON,
   wrong content types).

Counted: cases tried, 5xx, leaks, statuses the schema does not document for the operation.
Targets: all 0. Starts a throwaway PostgreSQL database (SQLite without it), a private
redis-server and daphne serving vias.asgi, as bench_ws.py does.

.venv/bin/python bench/bench_hostile.py [--examples 25] [--workers 2] [--sqlite]
The last line is `BENCH_JSON {...}`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.bench_tasks_api import create_pg_database, drop_pg_database  # noqa: E402
from tests.test_v2_helpers import source_body  # noqa: E402

METHODS = ("get", "post", "put", "delete")
BAD_TOKENS = [
    "x" * 40,
    "Token",
    "Bearer ",
    "Token a b",
    "\u00e9" * 40,
    "' OR 1=1 --",
    "a" * 5000,
    "Basic YWRtaW46YWRtaW4=",
    "Token ../../etc/passwd",
    "null",
]
XML_ATTACKS = [
    '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><root>&x;</root>',
    '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]><root>&c;&c;&c;&c;</root>',
    '<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://127.0.0.1:9/x.dtd"><root/>',
    '<?xml version="1.0"?><root xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="/etc/passwd"/></root>',
    "<root>" * 5000 + "</root>" * 5000,
]
SSRF_URLS = [
    "rtsp://localhost/live",
    "rtsp://127.0.0.1/live",
    "rtsp://127.1/live",
    "http://[::1]/v.mp4",
    "http://[::ffff:127.0.0.1]/v.mp4",
    "http://169.254.169.254/latest/meta-data/",
    "http://metadata.google.internal/",
    "http://0/v.mp4",
    "http://2130706433/v.mp4",
    "http://0x7f000001/v.mp4",
    "http://0177.0.0.1/v.mp4",
    "rtsp://224.0.0.251/x",
    "file:///etc/passwd",
    "concat:/etc/passwd",
    "../../etc/passwd",
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=25, help="schemathesis cases per operation and phase")
    parser.add_argument(
        "--workers", type=int, default=0, help="schemathesis workers (0: 2 on PostgreSQL, 1 on SQLite)"
    )
    parser.add_argument("--sqlite", action="store_true", help="use SQLite even when PostgreSQL answers")
    parser.add_argument(
        "--agreement",
        action="store_true",
        help="also count valid-by-schema requests refused and invalid ones accepted (schemathesis ST202/ST201)",
    )
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Documented:
    """Which statuses the served schema documents for each operation."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.routes: list[tuple[re.Pattern[str], str, dict[str, set[str]]]] = []
        for path, item in schema["paths"].items():
            pieces = re.split(r"\{[^}]+\}", path.rstrip("/"))
            pattern = re.compile("^" + "[^/]+".join(re.escape(piece) for piece in pieces) + "/?$")
            codes = {m: set(op["responses"]) for m, op in item.items() if m in METHODS}
            self.routes.append((pattern, path, codes))

    def statuses(self, method: str, path: str) -> set[str] | None:
        for pattern, _template, codes in self.routes:
            if pattern.match(path.split("?", 1)[0]):
                return codes.get(method.lower())
        return None


class Tally:
    def __init__(self, documented: Documented, secrets: list[str]) -> None:
        self.documented = documented
        self.secrets = secrets
        self.cases = self.server_errors = self.leaks = self.undocumented = 0
        self.findings: list[str] = []

    def record(self, method: str, path: str, status: int, body: str, cross_project: bool = False) -> None:
        self.cases += 1
        where = f"{method} {path[:120]} -> {status}"
        if status >= 500:
            self.server_errors += 1
            self.findings.append(f"5xx: {where}: {body[:200]}")
        codes = self.documented.statuses(method, path)
        if codes is not None and str(status) not in codes and status not in (431,):
            self.undocumented += 1
            self.findings.append(f"undocumented: {where}")
        if cross_project and (200 <= status < 300 or any(secret in body for secret in self.secrets)):
            self.leaks += 1
            self.findings.append(f"leak: {where}: {body[:200]}")


def substitute(template: str, values: dict[str, str]) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: values.get(m.group(1), "x"), template)


def hostile_requests(
    base: str, alice: str, bob: str, ids: dict[str, list[str]], projects: tuple[str, str], tally: Tally
) -> None:
    import httpx

    from tests.conftest import task_body

    alice_project, bob_project = projects
    first = {name: values[0] for name, values in ids.items()}
    with httpx.Client(base_url=base, timeout=30) as client:
        # Cross-project: bob's token on alice's objects, through both bob's and alice's v2 path.
        for _pattern, template, codes in tally.documented.routes:
            if "{" not in template:
                continue
            for project in (bob_project, alice_project):
                path = substitute(
                    template, {**first, "project_id": project, "action": "start", "service_name": "face"}
                )
                for method in codes:
                    body = {} if method in ("post", "put") else None
                    aimed = alice_project in path or any(value in path for value in first.values())
                    # Each way a token travels: both headers and the query parameter.
                    for headers, query in (
                        ({"Authorization": bob}, {}),
                        ({"X-Auth-Token": bob}, {}),
                        ({}, {"token": bob}),
                    ):
                        answer = client.request(method, path, json=body, headers=headers, params=query)
                        tally.record(
                            method.upper(), path, answer.status_code, answer.text, cross_project=aimed
                        )
        # Malformed tokens on every operation.
        for token in BAD_TOKENS:
            for _pattern, template, codes in tally.documented.routes:
                path = substitute(
                    template,
                    {**first, "project_id": alice_project, "action": "start", "service_name": "face"},
                )
                for method in codes:
                    body = {} if method in ("post", "put") else None
                    try:
                        answer = client.request(method, path, headers={"Authorization": token}, json=body)
                    except (httpx.LocalProtocolError, UnicodeEncodeError):
                        continue  # the client itself refuses to send it
                    tally.record(method.upper(), path, answer.status_code, answer.text)
                    if answer.status_code != 401:
                        tally.findings.append(
                            f"bad token {token[:20]!r} answered {answer.status_code} at {method} {path}"
                        )
        # XML attacks in every XML field of a task.
        for document in XML_ATTACKS:
            scene_xml = {
                "rois": [{"roi": document}],
                "callibration": {"calibration": document},
                "config": {"xml": document},
            }
            body = task_body(vchans=1)
            body["mtasks"][0]["scenes"][0].update(scene_xml)
            answer = client.post("/tasks", json=body, headers={"Authorization": alice})
            tally.record("POST", "/tasks", answer.status_code, answer.text)
        # Sources and webhooks into this machine, the metadata service, local files.
        for url in SSRF_URLS:
            for path, body in (
                ("/tasks", task_body(vchans=0, play_url=url)),
                ("/vchans", {"vchan_refid": "ssrf", "url": url}),
                (f"/v2/{alice_project}/source", source_body("ssrf", url)),
                ("/tasks", task_body(vchans=0, output={"webhook": {"url": url, "headers": {"a": "a"}}})),
            ):
                answer = client.post(path, json=body, headers={"Authorization": alice})
                tally.record("POST", path, answer.status_code, answer.text)
                if answer.status_code < 300:
                    tally.findings.append(f"accepted: {url} at {path}")
                    tally.leaks += 1
        # Framing and shapes.
        deep = "[" * 5000 + "]" * 5000
        for content, kind in (
            (deep, "application/json"),
            ('{"task_name": "a\\u0000b"}', "application/json"),
            ('{"task_name": 1e999}', "application/json"),
            ("not json", "application/json"),
            ("<a/>", "application/xml"),
            ('{"task_name": "x"}', "text/plain"),
        ):
            for path in ("/tasks", f"/v2/{alice_project}/source", "/vcs/console/task/createComputeTask"):
                answer = client.post(
                    path, content=content.encode(), headers={"Authorization": alice, "Content-Type": kind}
                )
                tally.record("POST", path, answer.status_code, answer.text)
        chunked = client.post(
            "/tasks",
            content=iter([json.dumps(task_body(vchans=0, task_name="chunked")).encode()]),
            headers={"Authorization": alice, "Content-Type": "application/json"},
        )
        tally.record("POST", "/tasks", chunked.status_code, chunked.text)
    for size in (20_000, 60_000):
        with socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=15) as sock:
            sock.sendall(f"GET /tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {'a' * size}\r\n\r\n".encode())
            head = sock.recv(200).decode("latin-1")
        status = int(head.split()[1]) if head.startswith("HTTP/") else 0
        tally.record("GET", "/tasks", status, head)
        if status != 431:
            tally.findings.append(f"oversized header answered {status or 'nothing'}")


def setup_tokens() -> tuple[str, str, str, str]:
    from django.contrib.auth import get_user_model

    from tasks.models import ApiToken, Project

    tokens = []
    for username, project_id in (("alice", "proj-a"), ("bob", "proj-b")):
        user = get_user_model().objects.create_user(username)
        project = Project.objects.create(project_id=project_id, name=project_id)
        project.members.add(user)
        tokens.append(ApiToken.issue(user, project)[1])
    return tokens[0], tokens[1], "proj-a", "proj-b"


def main() -> None:
    args = parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="vias-bh-"))
    pg_name = None if args.sqlite else create_pg_database()
    database_url = (
        f"postgres://postgres@localhost:5432/{pg_name}"
        if pg_name
        else f"sqlite:///{data_dir / 'bench.sqlite3'}"
    )
    workers = args.workers or (2 if pg_name else 1)
    from vias.lib.bundled_redis import BundledRedis

    redis_server = BundledRedis(data_dir / "r.sock", data_dir, persist=False)
    redis_server.start()
    env = {
        "DJANGO_SETTINGS_MODULE": "vias.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_server.url,
        "VIAS_DATA_DIR": str(data_dir),
        "VIAS_CHANNEL_PREFIX": "vias-bench-hostile",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    server = None
    try:
        import django

        django.setup()
        import httpx
        from django.core.management import call_command
        from django.db import connections

        from tests.fuzz_helpers import AGREEMENT_CHECKS, run_schemathesis, seed_objects, write_config

        call_command("migrate", verbosity=0)
        alice, bob, alice_project, bob_project = setup_tokens()
        connections.close_all()
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "vias.asgi:application"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=open(data_dir / "daphne.log", "wb"),  # noqa: SIM115 - open for the server's life
        )
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        base = f"http://127.0.0.1:{port}"
        print(f"database {'PostgreSQL' if pg_name else 'SQLite'}; private redis-server; daphne on {base}")
        ids = seed_objects(base, alice, alice_project, data_dir)
        # What only alice's objects hold (ids are echoed in "no task <id>", so they do not count).
        secrets = ["fuzz target", "10.9.9.8", "10.9.9.9", "rtsp://10.0.0.1/live", "PHJvb3QvPg"]
        documented = Documented(httpx.get(f"{base}/api/schema/?format=json", timeout=30).json())

        started = time.monotonic()
        tally = Tally(documented, secrets)
        hostile_requests(base, alice, bob, ids, (alice_project, bob_project), tally)
        hostile_s = time.monotonic() - started
        print(f"hand-made hostile requests: {tally.cases} in {hostile_s:.0f} s")

        report_dir = data_dir / "schemathesis"
        report_dir.mkdir()
        config = write_config(data_dir / "schemathesis.toml", alice, alice_project, ids)
        fuzz = run_schemathesis(
            f"{base}/api/schema/",
            config,
            report_dir,
            max_examples=args.examples,
            phases="examples,coverage,fuzzing",
            workers=workers,
            timeout_s=3600,
            extra_checks=AGREEMENT_CHECKS if args.agreement else "",
        )
        print(f"schemathesis: {fuzz.as_dict()}")
        for line in tally.findings[:40] + fuzz.messages[:10]:
            print("  " + line[:400])
        result = {
            "machine": {"nproc": os.cpu_count(), "python": platform.python_version()},
            "database": "postgresql" if pg_name else "sqlite",
            "schemathesis": {**fuzz.as_dict(), "examples_per_operation": args.examples, "workers": workers},
            "hostile": {
                "cases": tally.cases,
                "server_errors": tally.server_errors,
                "leaks": tally.leaks,
                "undocumented_statuses": tally.undocumented,
                "seconds": round(hostile_s, 1),
            },
        }
        print("BENCH_JSON " + json.dumps(result))
    except BaseException:
        log = data_dir / "daphne.log"
        if log.exists():
            print("daphne log:\n" + log.read_text(errors="replace")[-4000:])
        raise
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        redis_server.stop()
        if pg_name:
            from django.db import connections

            connections.close_all()
            drop_pg_database(pg_name)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
