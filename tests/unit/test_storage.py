from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.storage import Storage, UnsafePath, atomic_write_bytes, contained, safe_relative


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "a/../../x",
        "/etc/passwd",
        "C:/x",
        "c:evil",
        "a\\b",
        "..\\x",
        "a\x00b",
        "",
        ".",
        "./",
        "a/./b",
    ],
)
def test_unsafe_names_are_rejected(name: str) -> None:
    with pytest.raises(UnsafePath):
        safe_relative(name)


def test_safe_names_stay_relative() -> None:
    assert str(safe_relative("train/cat/1.jpg")) == "train/cat/1.jpg"
    assert str(safe_relative("a//b/")) == "a/b"


def test_symlink_escaping_the_root_is_rejected(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, root / "link")
    with pytest.raises(UnsafePath):
        contained(root, "link/file.txt")
    assert contained(root, "ok/file.txt") == root.resolve() / "ok" / "file.txt"


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.bin"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]


def test_remove_tree_refuses_paths_outside_the_workspace(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "ws")
    storage.ensure()
    outside = tmp_path / "keep"
    outside.mkdir()
    with pytest.raises(UnsafePath):
        storage.remove_tree(outside)
    with pytest.raises(UnsafePath):
        storage.remove_tree(storage.root)
    assert outside.exists()
    inside = storage.project_dir(3)
    inside.mkdir(parents=True)
    (inside / "f").write_text("x")
    storage.remove_tree(inside)
    assert not inside.exists()


def test_generated_names_drop_odd_suffixes() -> None:
    storage = Storage(Path("/tmp"))
    assert storage.new_name(".JPG").endswith(".jpg")
    assert "." not in storage.new_name(".php/../x")
