"""Where pretrained weights are looked for, and what is there: the one home for weight lookup.

The web process uses it for the weights page and for `pretrained: "required"` (without torch);
the workers load exactly the file it finds. Nothing is ever downloaded. Folders, in order:
the studio's own folder (workspace/weights: files added through the weights page, named
`<model_id>.pth|.pt|.safetensors`), STUDIO_WEIGHTS_DIR, the torch hub cache
($TORCH_HOME/hub/checkpoints) and, for models published on Hugging Face, the Hugging Face
cache ($HF_HUB_CACHE or $HF_HOME/hub). The flat folders accept the model id's name and the
published file names (torchvision's hub names, the Hugging Face repository name).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.catalog.models import ModelSpec, get_model, list_models
from app.errors import Invalid
from app.storage import WEIGHT_SUFFIXES as SUFFIXES
from app.storage import Storage

RANDOM_INIT = "random initialisation"


@dataclass(frozen=True)
class WeightLocations:
    managed: Path | None
    weights_dir: Path | None
    torch_home: Path
    hf_hub: Path

    @classmethod
    def from_env(
        cls, workspace: Path | None = None, weights_dir: Path | None = None
    ) -> WeightLocations:
        """Locations from the environment a worker sees (STUDIO_WORKSPACE, STUDIO_WEIGHTS_DIR,
        TORCH_HOME, HF_HUB_CACHE / HF_HOME); explicit arguments win (the web process passes
        its settings)."""
        env = os.environ
        if workspace is None and env.get("STUDIO_WORKSPACE"):
            workspace = Path(env["STUDIO_WORKSPACE"])
        if weights_dir is None and env.get("STUDIO_WEIGHTS_DIR"):
            weights_dir = Path(env["STUDIO_WEIGHTS_DIR"])
        torch_home = Path(env.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
        if env.get("HF_HUB_CACHE"):
            hf_hub = Path(env["HF_HUB_CACHE"])
        else:
            hf_hub = Path(env.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"
        managed = Storage(workspace).weights_dir if workspace is not None else None
        return cls(managed, weights_dir, torch_home, hf_hub)

    @classmethod
    def from_settings(cls, settings: Any) -> WeightLocations:
        """The web process's view: its workspace and STUDIO_WEIGHTS_DIR setting."""
        return cls.from_env(settings.workspace_dir, settings.weights_dir)

    def folders(self) -> list[tuple[str, Path]]:
        """The flat folders, in search order, with the name the weights page shows."""
        found = []
        if self.managed is not None:
            found.append(("studio", self.managed))
        if self.weights_dir is not None:
            found.append(("STUDIO_WEIGHTS_DIR", self.weights_dir))
        found.append(("torch hub cache", self.torch_home / "hub" / "checkpoints"))
        return found

    def hf_snapshots(self, repo: str) -> Path:
        return self.hf_hub / f"models--{repo.replace('/', '--')}" / "snapshots"


@dataclass(frozen=True)
class FoundWeights:
    path: Path
    where: str  # "studio", "STUDIO_WEIGHTS_DIR", "torch hub cache", "Hugging Face cache"
    of_model: str  # whose weights these are: a detector may start from its backbone's
    for_model: str

    @property
    def backbone_only(self) -> bool:
        return self.of_model != self.for_model


def file_names(spec: ModelSpec) -> list[str]:
    """Names a flat folder may hold this model's weights under, preferred first."""
    return [f"{spec.id}{suffix}" for suffix in SUFFIXES] + list(spec.weight_files)


def looked_in(spec: ModelSpec, locations: WeightLocations) -> list[str]:
    paths = [str(folder / name) for _, folder in locations.folders() for name in file_names(spec)]
    if spec.hf_repo:
        paths.append(str(locations.hf_snapshots(spec.hf_repo) / "*" / "model.safetensors"))
    return paths


def _find_own(spec: ModelSpec, locations: WeightLocations) -> FoundWeights | None:
    for where, folder in locations.folders():
        for name in file_names(spec):
            candidate = folder / name
            if candidate.is_file():
                return FoundWeights(candidate, where, spec.id, spec.id)
    if spec.hf_repo:
        snapshots = locations.hf_snapshots(spec.hf_repo)
        if snapshots.is_dir():
            for snapshot in sorted(snapshots.iterdir()):
                candidate = snapshot / "model.safetensors"
                if candidate.is_file():
                    return FoundWeights(candidate, "Hugging Face cache", spec.id, spec.id)
    return None


def find_weights(
    model_id: str, locations: WeightLocations | None = None, *, fallback: bool = True
) -> FoundWeights | None:
    """The local weights file this model would start from, or None (random initialisation).
    With `fallback`, a detector without its own weights uses its backbone's."""
    locations = locations or WeightLocations.from_env()
    spec = get_model(model_id)
    found = _find_own(spec, locations)
    if found is None and fallback and spec.weights_fallback:
        own = _find_own(get_model(spec.weights_fallback), locations)
        if own is not None:
            found = FoundWeights(own.path, own.where, own.of_model, spec.id)
    return found


_DIGESTS: dict[tuple[str, int, int], str] = {}


def sha256_of(path: Path) -> str:
    """The file's sha256, from its `<file>.sha256` (written when the studio stored it) or
    computed once per (path, size, mtime)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key in _DIGESTS:
        return _DIGESTS[key]
    sidecar = path.with_name(path.name + ".sha256")
    digest = ""
    if sidecar.is_file() and sidecar.stat().st_mtime_ns >= stat.st_mtime_ns:
        digest = sidecar.read_text().split()[0] if sidecar.read_text().strip() else ""
    if len(digest) != 64:
        hasher = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(block)
        digest = hasher.hexdigest()
    _DIGESTS[key] = digest
    return digest


def weights_record(found: FoundWeights | None) -> dict[str, Any]:
    """What an experiment and its exports record about the weights it started from."""
    if found is None:
        return {"file": None, "sha256": None, "source": RANDOM_INIT}
    return {
        "file": str(found.path),
        "name": found.path.name,
        "sha256": sha256_of(found.path),
        "bytes": found.path.stat().st_size,
        "source": found.where,
        "of_model": found.of_model,
    }


def require_weights(model_id: str, locations: WeightLocations) -> FoundWeights:
    """For `pretrained: "required"`: the file, or a 422 naming what is missing and where it
    was looked for, before any job starts."""
    found = find_weights(model_id, locations)
    if found is not None:
        return found
    spec = get_model(model_id)
    help_ = how_to_provide(spec, locations)
    names = file_names(spec)
    raise Invalid(
        f'pretrained="required" but no weights for {spec.title} were found: looked for '
        f"{', '.join(names)} in {', '.join(str(f) for _, f in locations.folders())}"
        + (f" and the Hugging Face cache ({spec.hf_repo})" if spec.hf_repo else "")
        + f". {help_['text']}",
        code="weights_missing",
        details={
            "model_id": model_id,
            "file_names": names,
            "looked_in": looked_in(spec, locations),
            "how_to_provide": help_,
        },
    )


def how_to_provide(spec: ModelSpec, locations: WeightLocations) -> dict[str, Any]:
    """The exact files and the commands to run on a machine with internet access."""
    if spec.pretrained_source == "torchvision" and spec.weight_files:
        name = spec.weight_files[0]
        url = f"https://download.pytorch.org/models/{name}"
        commands = [f"curl -L -o {name} {url}"]
    elif spec.pretrained_source == "huggingface" and spec.hf_repo:
        name = spec.weight_files[0] if spec.weight_files else f"{spec.id}.safetensors"
        commands = [
            "pip install -U huggingface_hub && hf auth login  # accept the model's licence first",
            f"hf download {spec.hf_repo} model.safetensors --local-dir {spec.id}",
            f"mv {spec.id}/model.safetensors {name}",
        ]
    else:
        return {
            "available": False,
            "text": f"{spec.title} has no published pretrained weights; it trains from random "
            "initialisation.",
        }
    target = locations.weights_dir or locations.managed
    return {
        "available": True,
        "file_name": name,
        "commands": commands,
        "place_in": str(target) if target is not None else "STUDIO_WEIGHTS_DIR",
        "text": f"Download {name} on a machine with internet access, then either upload it "
        "here (or POST /api/weights) or copy it into "
        f"{target if target is not None else 'the folder STUDIO_WEIGHTS_DIR names'}"
        f" (also accepted as {spec.id}.pth / {spec.id}.safetensors).",
    }


def weights_overview(locations: WeightLocations, task: str | None = None) -> list[dict[str, Any]]:
    """Per catalog model: where the studio looks, what it found, how to provide it."""
    rows = []
    for spec in list_models(task):
        found = find_weights(spec.id, locations)
        rows.append(
            {
                "model_id": spec.id,
                "title": spec.title,
                "tasks": list(spec.tasks),
                "source": spec.pretrained_source or "none",
                "looked_in": looked_in(spec, locations),
                "present": found is not None,
                "file": str(found.path) if found else None,
                "found_in": found.where if found else None,
                "backbone_only": bool(found and found.backbone_only),
                "bytes": found.path.stat().st_size if found else None,
                "sha256": sha256_of(found.path) if found else None,
                "how_to_provide": how_to_provide(spec, locations),
            }
        )
    return rows
