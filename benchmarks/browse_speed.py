"""Browse API latency on large projects: p95 of GET a filtered, sorted page of 100 images.

Rows (images with classes, label and box annotations, attributes and a split) are inserted
directly into a fresh SQLite database; requests go through the real app in-process (httpx
TestClient), so routing, validation, the query and JSON serialization are all measured.

    .venv/bin/python benchmarks/browse_speed.py            # 10k and 100k
    .venv/bin/python benchmarks/browse_speed.py --sizes 2000 --repeats 20
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi.testclient import TestClient
from sqlalchemy import insert
from sqlmodel import Session

from app.config import Settings
from app.db import engine_for, migrate, utcnow
from app.main import create_app
from app.models import (
    Annotation,
    Image,
    LabelClass,
    Project,
    Split,
    SplitMember,
)
from app.services import browse_cache, image_index

N_CLASSES = 20
CHUNK = 10_000


def populate(engine: Any, n: int, seed: int = 0) -> dict[str, int]:
    """Insert one project with n images, N_CLASSES classes, ~1.5 annotations per image."""
    rng = random.Random(seed)
    now = utcnow()
    with Session(engine) as session:
        project = Project(name="bench", name_key="bench", task_type="detection")
        session.add(project)
        session.commit()
        session.refresh(project)
        pid = project.id
        assert pid is not None
        classes = [
            LabelClass(project_id=pid, name=f"class_{i:02d}", index=i, color="#336699")
            for i in range(N_CLASSES)
        ]
        session.add_all(classes)
        split = Split(project_id=pid, name="main", strategy="random")
        session.add(split)
        session.commit()
        class_ids = [c.id for c in classes]
        split_id = split.id
    assert split_id is not None
    with engine.begin() as conn:
        for start in range(0, n, CHUNK):
            rows = []
            for i in range(start, min(n, start + CHUNK)):
                rows.append(
                    {
                        "project_id": pid,
                        "stored_path": f"projects/{pid}/images/{i:08x}.jpg",
                        "original_name": f"dir_{rng.randrange(50):02d}/"
                        f"img_{rng.getrandbits(40):010x}.jpg",
                        "width": 256,
                        "height": 256,
                        "channels": 3,
                        "format": "JPEG",
                        "bytes": rng.randrange(5_000, 60_000),
                        "sha256": f"{rng.getrandbits(256):064x}",
                        "phash": f"{rng.getrandbits(64):016x}",
                        "attributes": {"camera": f"cam{rng.randrange(5)}"},
                        "created_at": now + timedelta(seconds=i),
                    }
                )
            conn.execute(insert(Image), rows)
        ids = [row[0] for row in conn.exec_driver_sql("SELECT id FROM image ORDER BY id")]
        annotations = []
        members = []
        for k, image_id in enumerate(ids):
            label = class_ids[min(int(rng.expovariate(0.25)), N_CLASSES - 1)]
            annotations.append(
                {
                    "project_id": pid,
                    "image_id": image_id,
                    "class_id": label,
                    "kind": "label",
                    "geometry": {},
                    "attributes": {},
                }
            )
            if k % 2 == 0:
                annotations.append(
                    {
                        "project_id": pid,
                        "image_id": image_id,
                        "class_id": label,
                        "kind": "bbox",
                        "geometry": {"x": 10, "y": 10, "w": 50, "h": 40},
                        "attributes": {},
                    }
                )
            subset = "train" if k % 10 < 7 else "val" if k % 10 < 9 else "test"
            members.append({"split_id": split_id, "image_id": image_id, "subset": subset})
        for start in range(0, len(annotations), CHUNK * 2):
            conn.execute(insert(Annotation), annotations[start : start + CHUNK * 2])
        for start in range(0, len(members), CHUNK * 2):
            conn.execute(insert(SplitMember), members[start : start + CHUNK * 2])
        image_index.refresh(conn, ids)  # what the importer does after its inserts
        conn.exec_driver_sql("ANALYZE")
    return {"project_id": pid, "class_id": class_ids[3], "split_id": split_id}


QUERIES: dict[str, dict[str, Any]] = {
    "class filter, sort by name": {"class_id": "{class_id}", "sort": "name"},
    "class filter, sort by -date": {"class_id": "{class_id}", "sort": "-date"},
    "split subset, sort by size": {"split_id": "{split_id}", "subset": "test", "sort": "size"},
    "attribute filter, sort by name": {"attr": "camera=cam2", "sort": "name"},
    "name search, sort by -size": {"q": "dir_07/", "sort": "-size"},
    "no filter, sort by class": {"sort": "class"},
}


MODES = ("first", "spread", "miss", "cursor")


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return round(ordered[max(0, -(-len(ordered) * 95 // 100) - 1)], 1)


def _request(
    client: TestClient, url: str, params: dict[str, str], first: dict[str, Any], mode: str, r: int
) -> tuple[float, float] | None:
    """One timed request of a page pattern (the cursor is fetched untimed first)."""
    pages = max(1, -(-int(first["total"]) // 100))
    params = dict(params)
    if mode == "first":
        params["page"] = str(1 + r % min(pages, 3))
    else:  # spread, miss and cursor: page numbers over the whole result
        params["page"] = str(1 + (r * 7919) % min(pages, 1000))
    if mode == "cursor":
        cursor = client.get(url, params=params).json()["next_cursor"]
        cursor = cursor or first["next_cursor"]  # the last page has no next: the first's
        if cursor is None:
            return None
        params.pop("page")
        params["cursor"] = cursor
    if mode == "miss":
        browse_cache.clear()  # as after a write: the first visit to a page builds the anchors
    start, start_cpu = time.perf_counter(), time.process_time()
    response = client.get(url, params=params)
    timing = ((time.perf_counter() - start) * 1000, (time.process_time() - start_cpu) * 1000)
    assert response.status_code == 200, response.text
    return timing


def measure(
    targets: dict[int, tuple[TestClient, dict[str, int]]], repeats: int
) -> dict[int, dict[str, dict[str, float]]]:
    """Per query, four page patterns: the first pages (what a user mostly looks at), page
    numbers spread over the whole result (first to last; served from the browse cache's
    anchors, built by the first of them), the same pages each right after the cache was
    emptied ("miss": what the first visit to a deep page after a write costs), and "Next" from
    the spread pages (the answer's next_cursor: keyset, what the grid's Next button and an API
    client paging through the result use). Requests to the databases of
    each size alternate, so a change in the machine's load hits every size alike and the
    ratios between sizes hold even on a shared machine."""
    results: dict[int, dict[str, dict[str, float]]] = {n: {} for n in targets}
    for name, template in QUERIES.items():
        setup = {}
        for n, (client, ids) in targets.items():
            url = f"/api/projects/{ids['project_id']}/images"
            params = {k: str(v).format(**ids) for k, v in template.items()}
            params["page_size"] = "100"
            first = client.get(url, params=params)
            assert first.status_code == 200, first.text
            setup[n] = (client, url, params, first.json())
            results[n][name] = {"total": first.json()["total"]}
        for mode in MODES:
            wall: dict[int, list[float]] = {n: [] for n in targets}
            cpu: dict[int, list[float]] = {n: [] for n in targets}
            order = list(targets)
            for r in range(repeats):
                for n in order if r % 2 == 0 else order[::-1]:
                    client, url, params, first = setup[n]
                    timing = _request(client, url, params, first, mode, r)
                    if timing is not None:
                        wall[n].append(timing[0])
                        cpu[n].append(timing[1])
            for n in targets:
                if not wall[n]:
                    continue
                row = results[n][name]
                row[f"{mode}_p50_ms"] = round(statistics.median(wall[n]), 1)
                row[f"{mode}_p95_ms"] = _p95(wall[n])
                # CPU time of the whole process (server thread included): what a request
                # costs when the machine is shared and wall time partly measures waiting.
                row[f"{mode}_cpu_p95_ms"] = _p95(cpu[n])
    return results


def run(sizes: list[int], repeats: int) -> dict[int, dict[str, dict[str, float]]]:
    with contextlib.ExitStack() as stack:
        targets = {}
        for n in sizes:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="browse-bench-"))
            url = f"sqlite:///{tmp}/studio.db"
            migrate(url)
            settings = Settings(workspace=Path(tmp) / "ws", database_url=url, start_pool=False)
            engine = engine_for(settings.resolved_database_url)
            stack.callback(engine.dispose)
            started = time.perf_counter()
            ids = populate(engine, n)
            print(f"{n}: inserted in {time.perf_counter() - started:.1f} s", file=sys.stderr)
            client = TestClient(create_app(settings), base_url="http://127.0.0.1")
            targets[n] = (stack.enter_context(client), ids)
        return measure(targets, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=60)
    args = parser.parse_args()
    report = run(args.sizes, args.repeats)
    print(json.dumps(report, indent=2))
    if len(args.sizes) >= 2:
        small, large = report[args.sizes[0]], report[args.sizes[-1]]
        print(f"p95 ms, {args.sizes[0]} -> {args.sizes[-1]} images (ratio); wall | cpu")
        for name in QUERIES:
            cells = []
            for mode in MODES:
                for key in (f"{mode}_p95_ms", f"{mode}_cpu_p95_ms"):
                    a, b = small[name].get(key, 0.0), large[name].get(key, 0.0)
                    cells.append(f"{a:6.1f} -> {b:6.1f} ({b / max(a, 0.1):.2f}x)")
            parts = [f"{m}: {cells[2 * k]} | {cells[2 * k + 1]}" for k, m in enumerate(MODES)]
            print(f"{name:32s} " + "   ".join(parts))
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
