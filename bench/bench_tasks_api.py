#!/usr/bin/env python
"""Benchmark of the native task API (issue: Foundation).

    .venv/bin/python bench/bench_tasks_api.py [--tasks 1000] [--repeat 30] [--service-tasks 100] [--profile]

Measures, in one run, on a fresh database it builds itself:
  * GET /tasks?limit=100 and ?limit=10 through Django's test Client with an API token (the whole
    middleware + DRF stack): latency median / p90 and the SQL query count of each;
  * a baseline reading the same 100 tasks with their mtasks, scenes and ROIs with .values() and
    json.dumps, and the ratio endpoint / baseline (medians of the same run, interleaved samples);
  * POST /tasks with 100 new video channels: latency, queries, INSERT statements and whether
    every INSERT ran in one transaction.

The database is a throwaway PostgreSQL one (created, migrated and dropped here) when
localhost:5432 lets `postgres` in, a temporary SQLite file otherwise; VIAS_DATA_DIR is a
temporary directory. The last line is `BENCH_JSON {...}`, for machines.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The test launcher's probe tells whether the local Redis answers; one copy of it.
sys.path.insert(0, str(ROOT / "scripts"))
from run_tests import redis_answers  # noqa: E402

PG_HOST, PG_PORT, PG_USER = "localhost", 5432, "postgres"
REDIS_HOST, REDIS_PORT, REDIS_DB = "localhost", 6379, 9  # db 9: the test suite's; the bench stores nothing
PROBE_TIMEOUT = 2

ROI_XML = (
    '<?xml version="1.0" encoding="UTF-8"?><root>'
    '<polygon name="lane" mode="include"><point x="0.10" y="0.20"/><point x="0.90" y="0.20"/>'
    '<point x="0.95" y="0.90"/><point x="0.05" y="0.90"/></polygon>'
    '<line name="stop" direction="both"><point x="0.10" y="0.60"/><point x="0.90" y="0.60"/></line>'
    "</root>"
)
CALIBRATION_XML = (
    '<?xml version="1.0" encoding="UTF-8"?><root>'
    '<pair><image x="0.1" y="0.9"/><ground x="0.0" y="0.0"/></pair>'
    '<pair><image x="0.9" y="0.9"/><ground x="7.0" y="0.0"/></pair>'
    '<pair><image x="0.7" y="0.3"/><ground x="7.0" y="30.0"/></pair>'
    '<pair><image x="0.3" y="0.3"/><ground x="0.0" y="30.0"/></pair>'
    "</root>"
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=1000, help="tasks to build (default 1000)")
    parser.add_argument(
        "--repeat", type=int, default=30, help="timed samples of each measurement (default 30)"
    )
    parser.add_argument(
        "--service-tasks",
        type=int,
        default=100,
        help="of those, how many go through services.create_task; the rest are bulk copies (default 100)",
    )
    parser.add_argument(
        "--sqlite", action="store_true", help="use a temporary SQLite file even if PostgreSQL answers"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also profile GET /tasks?limit=100 (pyinstrument or cProfile)"
    )
    args = parser.parse_args()
    if args.tasks < 100 or args.repeat < 1 or args.service_tasks < 1:
        parser.error("--tasks must be >= 100 (the limit=100 page), --repeat and --service-tasks >= 1")
    return args


# ---- infrastructure (before django.setup()) ---------------------------------------------------------


def create_pg_database() -> str | None:
    """A fresh PostgreSQL database for this run; None when the server cannot be used."""
    try:
        import psycopg
    except ImportError:
        return None
    name = f"vias_bench_{os.getpid()}"
    try:
        with psycopg.connect(
            host=PG_HOST,
            port=PG_PORT,
            user=PG_USER,
            dbname="postgres",
            connect_timeout=PROBE_TIMEOUT,
            autocommit=True,
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        print(
            f"PostgreSQL not usable ({type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}); falling back to SQLite"
        )
        return None
    return name


def drop_pg_database(name: str) -> None:
    import psycopg

    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---- statistics and timing ----------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    low, high = math.floor(k), math.ceil(k)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def summary(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "median_ms": round(statistics.median(ms), 2),
        "p90_ms": round(percentile(ms, 0.9), 2),
        "min_ms": round(min(ms), 2),
        "n": len(ms),
    }


def timed(fn: Callable[[], Any]) -> float:
    gc.collect()  # no collection left over from the previous sample lands in this one
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class QueryLog:
    """Every SQL statement a block runs, with the outermost atomic block it ran in (None: autocommit)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, int | None]] = []

    def __call__(self, execute, sql, params, many, context):
        conn = context["connection"]
        outer = id(conn.atomic_blocks[0]) if conn.in_atomic_block and conn.atomic_blocks else None
        self.entries.append((sql, outer))
        return execute(sql, params, many, context)

    def __len__(self) -> int:
        return len(self.entries)

    def kinds(self) -> dict[str, int]:
        """Statements by their first word: SELECT, INSERT, UPDATE, ..."""
        return dict(Counter(sql.split(None, 1)[0].upper() for sql, _ in self.entries))

    def inserts(self) -> list[tuple[str, int | None]]:
        return [(sql, outer) for sql, outer in self.entries if sql.lstrip().upper().startswith("INSERT")]


def capture(fn: Callable[[], Any]) -> tuple[Any, QueryLog]:
    from django.db import connection

    log = QueryLog()
    with connection.execute_wrapper(log):
        result = fn()
    return result, log


def insert_table(sql: str) -> str:
    # INSERT INTO "tasks_mtask" ("task_id", ...) -> tasks_mtask
    return sql.split(None, 3)[2].strip('"`')


# ---- data -----------------------------------------------------------------------------------------


def test_helpers():
    """tests/conftest.py (task_body, make_actor), loaded by path: `tests` is not a package."""
    global _HELPERS
    if _HELPERS is None:
        spec = importlib.util.spec_from_file_location(
            "vias_bench_test_helpers", ROOT / "tests" / "conftest.py"
        )
        _HELPERS = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(_HELPERS)
    return _HELPERS


_HELPERS = None


def task_payload(prefix: str, vchans: int) -> dict[str, Any]:
    """A POST /tasks body: 3 mtasks x 4 scenes x 2 ROIs and `vchans` new channels, unique to `prefix`."""
    body = test_helpers().task_body(vchans=vchans, mtasks=3, scenes=4, task_name=f"bench {prefix}")
    body["vchans"] = [
        {
            "vchan_refid": f"{prefix}-cam-{i}",
            "name": f"camera {i}",
            "url": f"rtsp://cams.example/{prefix}/{i}",
        }
        for i in range(vchans)
    ]
    for mtask in body["mtasks"]:
        for index, scene in enumerate(mtask["scenes"]):
            scene["vchan_refid"] = f"{prefix}-cam-{index % vchans}"
            scene["callibration"] = {"calibration": CALIBRATION_XML}
            scene["rois"] = [{"roi": ROI_XML}, {"roi": ROI_XML}]
            scene["algo_args"] = {"fps": 5.0, "min_score": 0.5}
    return body


def build_tasks(project, count: int) -> float:
    """`count` tasks through the POST serializer and services.create_task, as POST /tasks builds them."""
    from tasks import services
    from tasks.api.serializers import TaskIn

    start = time.perf_counter()
    for index in range(count):
        serializer = TaskIn(data=task_payload(f"t{index}", vchans=2))
        serializer.is_valid(raise_exception=True)
        services.create_task(project, serializer.to_spec())
    return time.perf_counter() - start


def fresh(instance, **changes: Any):
    """An unsaved copy of a row (new primary key), with `changes` (field names) applied."""
    model = type(instance)
    values = {
        f.attname: getattr(instance, f.attname)
        for f in model._meta.concrete_fields
        if not f.primary_key and f.name not in changes and f.attname not in changes
    }
    return model(**values, **changes)


def clone_tasks(project, first: int, count: int, chunk: int = 100) -> float:
    """`count` more tasks copied row for row from those the service built, with bulk inserts.

    Each copy gets its own task id, name and 2 new video channels; its subtasks point at the
    copied channels and scenes, as create_task would have made them.
    """
    from django.db import transaction
    from django.db.models import Prefetch

    from subtasks.models import Subtask
    from tasks.models import Task

    start = time.perf_counter()
    templates = list(
        Task.objects.filter(project=project)
        .order_by("create_dt")
        .prefetch_related(
            "mtasks__scenes__rois",
            Prefetch(
                "subtasks", queryset=Subtask.objects.select_related("video_channel").order_by("position")
            ),
        )
    )
    for low in range(first, first + count, chunk):
        rows: dict[str, list[Any]] = {
            k: [] for k in ("channels", "tasks", "mtasks", "scenes", "rois", "subtasks")
        }
        for index in range(low, min(low + chunk, first + count)):
            template, prefix = templates[index % len(templates)], f"t{index}"
            task = fresh(template, project=project, task_name=f"bench {prefix}")
            rows["tasks"].append(task)
            channels = {}
            for sub in template.subtasks.all():
                suffix = sub.video_channel.vchan_refid.split("-cam-")[-1]
                channels[sub.video_channel_id] = fresh(
                    sub.video_channel,
                    project=project,
                    vchan_refid=f"{prefix}-cam-{suffix}",
                    url=f"rtsp://cams.example/{prefix}/{suffix}",
                )
            rows["channels"].extend(channels.values())
            scenes = {}
            for mtask in template.mtasks.all():
                new_mtask = fresh(mtask, task=task)
                rows["mtasks"].append(new_mtask)
                for scene in mtask.scenes.all():
                    suffix = scene.vchan_refid.split("-cam-")[-1]
                    scenes[scene.id] = fresh(scene, mtask=new_mtask, vchan_refid=f"{prefix}-cam-{suffix}")
                    rows["scenes"].append(scenes[scene.id])
                    rows["rois"].extend(fresh(roi, scene=scenes[scene.id]) for roi in scene.rois.all())
            rows["subtasks"].extend(
                fresh(
                    sub,
                    task=task,
                    video_channel=channels[sub.video_channel_id],
                    scene=scenes.get(sub.scene_id),
                )
                for sub in template.subtasks.all()
            )
        with transaction.atomic():  # bulk_create sets primary keys; children pick them up from parents
            for key in rows:
                type(rows[key][0]).objects.bulk_create(rows[key])
    return time.perf_counter() - start


def check_clone(project, first: int, last: int, templates: int) -> None:
    """A copied task reads back as its template does, but for ids, names, dates and channel refids."""
    from subtasks.models import Subtask
    from tasks import queries
    from tasks.api.serializers import task_out
    from tasks.models import Task

    def doc(index: int) -> str:
        rows = queries.task_documents(Task.objects.filter(project=project, task_name=f"bench t{index}"))
        out = task_out(rows[0])
        subtasks = Subtask.objects.filter(task_id=out["task_id"]).order_by("position")
        out["subtasks"] = list(
            subtasks.values_list("video_channel__vchan_refid", "scene__scene_unid", "rois")
        )
        for key in ("task_id", "task_name", "create_dt", "update_dt"):
            out.pop(key)
        return json.dumps(out).replace(f'"t{index}-cam-', '"cam-')

    assert doc(last) == doc(last % templates), "a copied task differs from its template"
    assert doc(first) == doc(first % templates), "a copied task differs from its template"


def mix_states(project) -> None:
    """Spread the subtasks over every state, so that derived task states and counts vary."""
    from subtasks.choices import State
    from subtasks.models import Subtask

    ids = list(Subtask.objects.filter(task__project=project).order_by("id").values_list("id", flat=True))
    states = list(State)
    for offset, state in enumerate(states):
        Subtask.objects.filter(id__in=ids[offset :: len(states)]).update(state=state)


# ---- what is measured -----------------------------------------------------------------------------


def baseline_json(project, limit: int) -> bytes:
    """The floor: the same task, mtask, scene and ROI rows with .values(), dumped flat with json.dumps."""
    from tasks.models import MTask, Scene, SceneRoi, Task
    from tasks.queries import MTASK_COLUMNS, SCENE_COLUMNS, TASK_COLUMNS

    tasks = list(
        Task.objects.filter(project=project).order_by("-create_dt", "task_id")[:limit].values(*TASK_COLUMNS)
    )
    task_ids = [t["task_id"] for t in tasks]
    mtasks = list(
        MTask.objects.filter(task_id__in=task_ids).order_by("task_id", "position").values(*MTASK_COLUMNS)
    )
    mtask_ids = [m["id"] for m in mtasks]
    scenes = list(
        Scene.objects.filter(mtask_id__in=mtask_ids).order_by("mtask_id", "position").values(*SCENE_COLUMNS)
    )
    rois = list(
        SceneRoi.objects.filter(scene__mtask_id__in=mtask_ids)
        .order_by("scene_id", "position")
        .values("scene_id", "position", "xml")
    )
    doc = {"tasks": tasks, "mtasks": mtasks, "scenes": scenes, "rois": rois}
    return json.dumps(doc, default=str).encode()


def core_json(project, limit: int) -> bytes:
    """The view's body without the HTTP stack: count, task_documents, task_out, DRF's JSONRenderer."""
    from rest_framework.renderers import JSONRenderer

    from tasks import queries
    from tasks.api.serializers import task_out
    from tasks.models import Task
    from vias.lib.envelopes import native_ok

    tasks = Task.objects.filter(project=project)
    total = tasks.count()
    items = [task_out(row) for row in queries.task_documents(tasks.order_by("-create_dt", "task_id")[:limit])]
    return JSONRenderer().render(native_ok(total_num=total, offset=0, list_size=len(items), list_data=items))


def check_same_rows(endpoint_body: bytes, baseline_body: bytes) -> dict[str, int]:
    """The endpoint and the baseline read the same tasks, mtasks, scenes and ROIs."""
    answer, floor = json.loads(endpoint_body), json.loads(baseline_body)
    items = answer["list_data"]
    assert [t["task_id"] for t in items] == [t["task_id"] for t in floor["tasks"]], "not the same tasks"
    mtasks = [m for t in items for m in t["mtasks"]]
    scenes = [s for m in mtasks for s in m["scenes"]]
    rois = [r for s in scenes for r in s["rois"]]
    assert (len(mtasks), len(scenes), len(rois)) == (
        len(floor["mtasks"]),
        len(floor["scenes"]),
        len(floor["rois"]),
    )
    return {"tasks": len(items), "mtasks": len(mtasks), "scenes": len(scenes), "rois": len(rois)}


def profile_get(client, token: str, runs: int = 20) -> None:
    path = "/tasks?limit=100"
    try:
        from pyinstrument import Profiler
    except ImportError:
        Profiler = None  # noqa: N806
    print(f"\n== profile: {runs} x GET {path} ==")
    if Profiler is not None:
        profiler = Profiler(interval=0.0005)
        profiler.start()
        for _ in range(runs):
            client.get(path, HTTP_AUTHORIZATION=token)
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))
        return
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    for _ in range(runs):
        client.get(path, HTTP_AUTHORIZATION=token)
    prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(30)


def run(args: argparse.Namespace, db_label: str) -> dict[str, Any]:
    import django
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    make_actor = test_helpers().make_actor
    t0 = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    migrate_s = time.perf_counter() - t0
    print(f"migrated in {migrate_s:.1f} s")

    reader = make_actor("bench-reader", "bench-read")
    t0 = time.perf_counter()
    service_count = min(args.service_tasks, args.tasks)
    service_s = build_tasks(reader.project, service_count)
    clone_s = clone_tasks(reader.project, service_count, args.tasks - service_count)
    if args.tasks > service_count:
        check_clone(reader.project, service_count, args.tasks - 1, service_count)
    mix_states(reader.project)
    build_s = time.perf_counter() - t0
    print(
        f"built {args.tasks} tasks in {build_s:.1f} s: {service_count} through services.create_task "
        f"({service_s / service_count * 1000:.1f} ms/task), {args.tasks - service_count} copied in bulk "
        f"({clone_s:.1f} s)"
    )

    def get(path: str):
        response = reader.client.get(path, HTTP_AUTHORIZATION=reader.token)
        assert response.status_code == 200, (path, response.status_code, response.content[:300])
        return response

    for _ in range(3):  # warm up: imports, URL resolver, the token's last_used_at write
        get("/tasks?limit=100")
        get("/tasks?limit=10")
        baseline_json(reader.project, 100)
        core_json(reader.project, 100)

    resp100, log100 = capture(lambda: get("/tasks?limit=100"))
    resp10, log10 = capture(lambda: get("/tasks?limit=10"))
    base_body, log_base = capture(lambda: baseline_json(reader.project, 100))
    rows = check_same_rows(resp100.content, base_body)
    assert json.loads(resp10.content)["list_size"] == 10

    samples: dict[str, list[float]] = {
        k: [] for k in ("get100", "get10", "baseline100", "core100", "baseline10")
    }
    ratios: list[float] = []
    for _ in range(args.repeat):  # interleaved, so that the machine's noise hits all of them alike
        samples["get100"].append(timed(lambda: get("/tasks?limit=100")))
        samples["baseline100"].append(timed(lambda: baseline_json(reader.project, 100)))
        samples["core100"].append(timed(lambda: core_json(reader.project, 100)))
        samples["get10"].append(timed(lambda: get("/tasks?limit=10")))
        samples["baseline10"].append(timed(lambda: baseline_json(reader.project, 10)))
        ratios.append(samples["get100"][-1] / samples["baseline100"][-1])

    # POST: a project of its own, so that the GET pages above are not disturbed.
    writer = make_actor("bench-writer", "bench-write")
    # Bodies are encoded beforehand: only the request is timed. Each has 100 channels never seen before.
    bodies = iter([json.dumps(task_payload(f"p{i}", vchans=100)) for i in range(args.repeat + 3)])

    def post():
        response = writer.post("/tasks", next(bodies))
        assert response.status_code == 200, (response.status_code, response.content[:500])
        return response

    writer.get("/tasks?limit=1")  # the token's last_used_at write, out of the way
    for _ in range(2):
        post()
    _, post_log = capture(post)
    post_samples = [timed(post) for _ in range(args.repeat)]
    inserts = post_log.inserts()
    insert_blocks = {outer for _, outer in inserts if outer is not None}

    if args.profile:
        profile_get(reader.client, reader.token)

    get100, base100 = summary(samples["get100"]), summary(samples["baseline100"])
    return {
        "database": db_label,
        "db_vendor": connection.vendor,
        "redis": settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1],
        "python": platform.python_version(),
        "django": django.get_version(),
        "cpus": os.cpu_count(),
        "tasks": args.tasks,
        "repeat": args.repeat,
        "build": {
            "total_s": round(build_s, 1),
            "service_tasks": service_count,
            "service_ms_per_task": round(service_s / service_count * 1000, 1),
            "cloned_tasks": args.tasks - service_count,
            "clone_s": round(clone_s, 1),
        },
        "page_rows": rows,
        "get_limit100": {
            **get100,
            "queries": len(log100),
            "query_kinds": log100.kinds(),
            "bytes": len(resp100.content),
        },
        "get_limit10": {**summary(samples["get10"]), "queries": len(log10), "bytes": len(resp10.content)},
        "baseline_limit100": {**base100, "queries": len(log_base), "bytes": len(base_body)},
        "baseline_limit10": summary(samples["baseline10"]),
        "core_limit100": summary(samples["core100"]),
        "ratio_get100_vs_baseline": round(get100["median_ms"] / base100["median_ms"], 2),
        "ratio_median_of_pairs": round(statistics.median(ratios), 2),
        "ratio_get10_vs_baseline": round(
            statistics.median(samples["get10"]) / statistics.median(samples["baseline10"]), 2
        ),
        "post_100_vchans": {
            **summary(post_samples),
            "queries": len(post_log),
            "query_kinds": post_log.kinds(),
            "inserts": len(inserts),
            "inserts_by_table": dict(Counter(insert_table(sql) for sql, _ in inserts)),
            "insert_transactions": len(insert_blocks),
            "inserts_outside_transaction": sum(1 for _, outer in inserts if outer is None),
        },
    }


def checks(result: dict[str, Any]) -> dict[str, bool]:
    get100, get10, post = result["get_limit100"], result["get_limit10"], result["post_100_vchans"]
    return {
        "get_queries_equal": get100["queries"] == get10["queries"],
        "get_queries_le_6": get100["queries"] <= 6,
        "ratio_le_2": result["ratio_get100_vs_baseline"] <= 2,
        "post_one_transaction": post["insert_transactions"] == 1 and post["inserts_outside_transaction"] == 0,
        "post_bulk_inserts": post["inserts"] <= 10,
    }


def print_table(result: dict[str, Any]) -> None:
    print(
        f"\nVIAS native task API, {result['tasks']} tasks (3 mtasks x 4 scenes x 2 ROIs, 2 subtasks each), "
        f"{result['repeat']} samples each"
    )
    print(
        f"database: {result['database']} | channel layer: {result['redis']} | Python {result['python']}, "
        f"Django {result['django']}, {result['cpus']} CPUs"
    )
    rows = [
        ("GET /tasks?limit=100 (test Client, token)", result["get_limit100"]),
        ("GET /tasks?limit=10  (test Client, token)", result["get_limit10"]),
        ("baseline: values() + json.dumps, 100 tasks", result["baseline_limit100"]),
        ("baseline: values() + json.dumps, 10 tasks", result["baseline_limit10"]),
        ("view body without HTTP, 100 tasks", result["core_limit100"]),
        ("POST /tasks, 100 new video channels", result["post_100_vchans"]),
    ]
    print(f"{'measurement':<44} {'median ms':>10} {'p90 ms':>8} {'min ms':>8} {'queries':>8}")
    for label, row in rows:
        queries = str(row.get("queries", ""))
        print(
            f"{label:<44} {row['median_ms']:>10.2f} {row['p90_ms']:>8.2f} {row['min_ms']:>8.2f} {queries:>8}"
        )
    post = result["post_100_vchans"]
    print(
        f"ratio GET limit=100 / baseline: {result['ratio_get100_vs_baseline']} (median of per-sample ratios "
        f"{result['ratio_median_of_pairs']}); limit=10: {result['ratio_get10_vs_baseline']}; page: {result['page_rows']}"
    )
    print(
        f"POST: {post['inserts']} INSERT statements {post['inserts_by_table']}, in {post['insert_transactions']} "
        f"transaction(s), {post['inserts_outside_transaction']} outside one"
    )
    print(
        "checks: "
        + ", ".join(f"{name}={'ok' if good else 'FAIL'}" for name, good in result["checks"].items())
    )


@contextmanager
def throwaway_site(sqlite: bool) -> Iterator[str]:
    """Django set up on a throwaway database (PostgreSQL when it answers, else a SQLite file) and a
    temporary data directory, announcing to Redis when it answers; everything removed after.
    Yields a description of the database. Shared by the benchmarks that drive the API."""
    data_dir = tempfile.mkdtemp(prefix="vias-bench-")
    pg_name = None if sqlite else create_pg_database()
    if pg_name:
        os.environ["DATABASE_URL"] = f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{pg_name}"
        db_label = f"PostgreSQL, throwaway database {pg_name} on {PG_HOST}:{PG_PORT}"
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{data_dir}/bench.sqlite3"
        db_label = "SQLite, temporary file"
    use_redis = redis_answers()
    if use_redis:
        os.environ["REDIS_URL"] = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
        os.environ["VIAS_CHANNEL_PREFIX"] = (
            f"vias-bench-{os.getpid()}"  # nobody listens: group_send stores nothing
        )
    os.environ["VIAS_DATA_DIR"] = data_dir
    os.environ["DEBUG"] = "0"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "vias.settings"
    sys.path.insert(0, str(ROOT))
    print(f"database: {db_label}; data dir: {data_dir}")

    import django

    django.setup()
    from django.conf import settings
    from django.db import connections

    if not use_redis:
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
        print(f"Redis not reachable on {REDIS_HOST}:{REDIS_PORT}: announcing to an in-memory channel layer")
    try:
        yield db_label
    finally:
        connections.close_all()
        if pg_name:
            drop_pg_database(pg_name)
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> int:
    args = parse_args()
    with throwaway_site(args.sqlite) as db_label:
        result = run(args, db_label)
    result["checks"] = checks(result)
    print_table(result)
    print("BENCH_JSON " + json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
