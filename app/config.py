"""Settings from STUDIO_* environment variables; invalid values stop the studio at start."""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _split_list(value: object) -> object:
    """Accept comma- or os.pathsep-separated strings for list settings given as env vars."""
    if isinstance(value, str):
        parts = value.replace(os.pathsep, ",").split(",")
        return [p.strip() for p in parts if p.strip()]
    return value


def _default_workers() -> int:
    """One training worker per GPU the driver exposes, one on CPU; read without importing torch."""
    gpus = Path("/proc/driver/nvidia/gpus")
    count = len(list(gpus.iterdir())) if gpus.is_dir() else 0
    return max(1, count)


class Settings(BaseSettings):
    """Everything the studio reads from its environment, validated once at start."""

    model_config = SettingsConfigDict(env_prefix="STUDIO_", extra="ignore")

    workspace: Path = Field(default=Path("workspace"), description="Data root for all files.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///<workspace>/studio.db."
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(
        default_factory=_default_workers, ge=0, le=64, description="Training/evaluation slots."
    )
    light_workers: int = Field(default=2, ge=0, le=64, description="Import/predict slots.")
    token: SecretStr | None = Field(default=None, description="Bearer token; enables auth.")
    import_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="Server folders that imports may read from."
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_upload_mb: int = Field(default=2048, ge=1, le=1024 * 1024)
    max_json_kb: int = Field(default=1024, ge=1, le=1024 * 1024)
    heartbeat_seconds: float = Field(default=5.0, gt=0, le=300)
    stale_after_seconds: float = Field(default=60.0, gt=0, le=3600)
    cancel_grace_seconds: float = Field(default=20.0, ge=0, le=3600)
    poll_seconds: float = Field(default=0.5, gt=0, le=60)
    worker_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="Niceness of job workers, so request handling comes first on a busy CPU.",
    )
    max_streams: int = Field(
        default=500,
        ge=1,
        le=100_000,
        description="Open SSE streams one web process serves; more are answered 503.",
    )
    web_threads: int = Field(
        default=12,
        ge=1,
        le=1000,
        description=(
            "Threads serving synchronous requests (pages, most API routes); beyond them requests"
            " wait in order. Fewer threads contend less for the interpreter lock, so the event"
            " loop (streams, health) stays responsive under a browsing load."
        ),
    )
    db_busy_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="How long a web request waits for a busy database before answering 503.",
    )
    job_plugins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Extra modules that register job handlers."
    )
    weights_dir: Path | None = Field(
        default=None,
        description="Folder of local pretrained weights (torchvision file names); also searched: "
        "the torch hub cache. Nothing is ever downloaded.",
    )
    start_pool: bool = Field(default=True, description="Start the worker pool with the server.")
    resident_predictor: bool = Field(
        default=True,
        description="Run predict jobs in one long-lived process with a model cache (started by "
        "the pool when light workers > 0); off: a worker process per prediction.",
    )
    predict_fallback_seconds: float = Field(
        default=2.0,
        ge=0,
        le=600,
        description="A predict job the resident predictor has not claimed after this long is "
        "run by a light worker instead (at once while the predictor is down).",
    )

    _split = field_validator("import_roots", "allowed_hosts", "job_plugins", mode="before")(
        _split_list
    )

    @field_validator("token")
    @classmethod
    def _token_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value() == "":
            return None
        if value is not None and len(value.get_secret_value()) < 12:
            raise ValueError("STUDIO_TOKEN must be at least 12 characters")
        return value

    @field_validator("import_roots")
    @classmethod
    def _roots_exist(cls, roots: list[Path]) -> list[Path]:
        resolved = []
        for root in roots:
            if not root.is_dir():
                raise ValueError(f"import root {str(root)!r} is not an existing folder")
            resolved.append(root.resolve())
        return resolved

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str | None) -> str | None:
        if url is None or url == "":
            return None
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            return "postgresql+psycopg://" + url.split("://", 1)[1]
        if not (url.startswith("sqlite:///") or url.startswith("postgresql+psycopg://")):
            raise ValueError("use sqlite:///path/to/file.db or postgresql://user@host:port/db")
        return url

    @model_validator(mode="after")
    def _token_required_off_loopback(self) -> Settings:
        if not _is_loopback(self.host) and self.token is None:
            raise ValueError(
                f"binding to {self.host!r} exposes the studio to the network; "
                "set STUDIO_TOKEN (12+ characters) or bind to 127.0.0.1"
            )
        return self

    @property
    def workspace_dir(self) -> Path:
        return self.workspace.resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.workspace_dir / 'studio.db'}"

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def trusted_hosts(self) -> list[str]:
        hosts = set(LOOPBACK_HOSTS) | set(self.allowed_hosts)
        if self.host not in {"0.0.0.0", "::"}:  # noqa: S104 - compared, not bound
            hosts.add(self.host)
        return sorted(hosts)

    def child_env(self) -> dict[str, str]:
        """The environment a worker subprocess needs to see the same studio as this process."""
        env = {
            "STUDIO_WORKSPACE": str(self.workspace_dir),
            "STUDIO_DATABASE_URL": self.resolved_database_url,
            "STUDIO_HEARTBEAT_SECONDS": str(self.heartbeat_seconds),
            "STUDIO_STALE_AFTER_SECONDS": str(self.stale_after_seconds),
            "STUDIO_CANCEL_GRACE_SECONDS": str(self.cancel_grace_seconds),
            "STUDIO_POLL_SECONDS": str(self.poll_seconds),
            "STUDIO_WORKER_NICE": str(self.worker_nice),
            "STUDIO_WORKERS": str(self.workers),
            "STUDIO_LIGHT_WORKERS": str(self.light_workers),
            "STUDIO_JOB_PLUGINS": ",".join(self.job_plugins),
            "STUDIO_RESIDENT_PREDICTOR": str(self.resident_predictor).lower(),
            "STUDIO_PREDICT_FALLBACK_SECONDS": str(self.predict_fallback_seconds),
        }
        if self.weights_dir is not None:
            env["STUDIO_WEIGHTS_DIR"] = str(self.weights_dir)
        if self.import_roots:
            env["STUDIO_IMPORT_ROOTS"] = ",".join(str(r) for r in self.import_roots)
        return env


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def describe_error(error: ValidationError) -> str:
    """One line per invalid setting, naming the STUDIO_* variable and what is valid."""
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        name = f"STUDIO_{field.upper()}" if field else "settings"
        lines.append(f"  {name}: {item['msg']}")
    return "Invalid settings:\n" + "\n".join(lines)


@lru_cache
def get_settings() -> Settings:
    return Settings()
