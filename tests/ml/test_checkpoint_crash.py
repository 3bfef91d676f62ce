"""A kill -9 between writing a checkpoint's digest and the checkpoint itself must leave the
previous checkpoint loadable (resume after a crash), and a changed file still refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workers.ml import checkpoints


def test_the_old_checkpoint_still_loads_when_the_new_one_never_landed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "last.ckpt"
    checkpoints.save_checkpoint(path, state_dict={"w": torch.zeros(2)}, provenance={"epoch": 1})
    real = checkpoints._atomic_write

    def crash_before_the_checkpoint(target: Path, data: bytes) -> None:
        if target == path:
            raise KeyboardInterrupt("killed")  # the process dies between the two writes
        real(target, data)

    monkeypatch.setattr(checkpoints, "_atomic_write", crash_before_the_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save_checkpoint(path, state_dict={"w": torch.ones(2)}, provenance={"epoch": 2})
    monkeypatch.undo()
    loaded = checkpoints.load_checkpoint(path)
    assert torch.equal(loaded["state_dict"]["w"], torch.zeros(2))
    checkpoints.save_checkpoint(path, state_dict={"w": torch.ones(2)}, provenance={"epoch": 2})
    assert len(checkpoints.digest_path(path).read_text().splitlines()) == 1
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(checkpoints.CheckpointCorrupt):
        checkpoints.load_checkpoint(path)
