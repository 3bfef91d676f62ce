"""The import rules from DESIGN.md, checked by reading the code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ML_LIBRARIES = {
    "torch",
    "torchvision",
    "lightning",
    "pytorch_lightning",
    "torchmetrics",
    "transformers",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "timm",
    "sklearn",
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("path", files("app"), ids=lambda p: str(p.relative_to(ROOT)))
def test_app_never_imports_workers_or_ml_libraries(path: Path) -> None:
    bad = {n for n in imports_of(path) if top(n) in ML_LIBRARIES or top(n) == "workers"}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize(
    "path", files("app/api") + files("app/web"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_routers_do_not_touch_the_database_directly(path: Path) -> None:
    names = imports_of(path)
    other_side = "app.web" if "/api/" in str(path) else "app.api"
    assert not {n for n in names if n.startswith(other_side)}, (
        "api and web must not import each other"
    )
    assert not {n for n in names if top(n) == "sqlalchemy"}, "routers use services, not SQL"
    sqlmodel = {n for n in names if top(n) == "sqlmodel"} - {"sqlmodel", "sqlmodel.Session"}
    assert not sqlmodel, f"routers may only take a Session to hand on: {sorted(sqlmodel)}"
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr
            in {
                "exec",
                "execute",
                "query",
                "add",
                "commit",
                "delete",
                "get",
            }
            and isinstance(node.value, ast.Name)
            and node.value.id == "session"
        ):
            raise AssertionError(f"{path.relative_to(ROOT)}: session.{node.attr} in a router")


@pytest.mark.parametrize("path", files("app/services"), ids=lambda p: str(p.relative_to(ROOT)))
def test_services_never_import_the_web_framework(path: Path) -> None:
    bad = {n for n in imports_of(path) if top(n) in {"fastapi", "starlette"}}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", files("workers/ml"), ids=lambda p: str(p.relative_to(ROOT)))
def test_ml_code_never_touches_the_database(path: Path) -> None:
    bad = {
        n
        for n in imports_of(path)
        if top(n) in {"sqlmodel", "sqlalchemy"}
        or n.startswith(("app.services", "app.db", "app.models"))
    }
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_paths_are_built_only_in_storage() -> None:
    """Only app/storage.py joins user input or ids into filesystem paths under the workspace."""
    offenders = []
    for path in files("app"):
        if path.name in {"storage.py", "config.py"}:  # config: the fixed studio.db name only
            continue
        text = path.read_text()
        for needle in ("workspace_dir /", "settings.workspace /", "os.path.join("):
            if needle in text:
                offenders.append(f"{path.relative_to(ROOT)}: {needle}")
    assert not offenders, offenders


# Not ML, but slow to import and only needed by request handlers: keeping them out of start-up
# keeps `python -m app` under its 2-second budget (benchmarks/startup.py).
LAZY_AT_START = {"numpy", "yaml"}


def test_the_web_process_does_not_load_torch() -> None:
    code = (
        "import sys\n"
        "from app.main import create_app\n"
        "from app.config import Settings\n"
        "import tempfile\n"
        "create_app(Settings(workspace=tempfile.mkdtemp()))\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{sorted(set(ML_LIBRARIES) | LAZY_AT_START)!r})\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == ""
