from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import Settings, describe_error

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_loopback_sqlite_in_workspace(tmp_path: Path) -> None:
    settings = Settings(workspace=tmp_path)
    assert settings.host == "127.0.0.1"
    assert settings.resolved_database_url == f"sqlite:///{tmp_path.resolve()}/studio.db"
    assert settings.token is None


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"port": 0}, "port"),
        ({"workers": -1}, "workers"),
        ({"host": "0.0.0.0"}, "STUDIO_TOKEN"),
        ({"token": "short"}, "12 characters"),
        ({"import_roots": "/definitely/not/here"}, "not an existing folder"),
        ({"database_url": "mysql://x"}, "sqlite:///"),
        ({"max_upload_mb": 0}, "max_upload_mb"),
    ],
)
def test_invalid_settings_are_rejected_with_a_clear_message(
    overrides: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(**overrides)  # type: ignore[arg-type]
    message = describe_error(info.value)
    assert fragment in message or fragment.upper() in message


def test_binding_elsewhere_is_allowed_with_a_token() -> None:
    settings = Settings(host="0.0.0.0", token="a-long-enough-token")
    assert settings.token is not None


def test_list_settings_accept_comma_separated_env(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.setenv("STUDIO_IMPORT_ROOTS", f"{tmp_path / 'a'},{tmp_path / 'b'}")
    assert Settings().import_roots == [(tmp_path / "a").resolve(), (tmp_path / "b").resolve()]


def test_postgres_urls_are_normalised_to_psycopg() -> None:
    settings = Settings(database_url="postgresql://u@h:5432/db")
    assert settings.resolved_database_url == "postgresql+psycopg://u@h:5432/db"


def test_python_m_app_exits_2_and_names_the_bad_variable(tmp_path: Path) -> None:
    env = {**os.environ, "STUDIO_PORT": "99999", "STUDIO_WORKSPACE": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Invalid settings" in result.stderr
    assert "STUDIO_PORT" in result.stderr
    assert "Traceback" not in result.stderr
