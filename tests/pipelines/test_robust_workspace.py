"""Atomic writers: a temporary name per writer, so two runs into one workspace never share one."""

import os
import subprocess
import sys

import pytest

from pipelines import workspace


def test_two_writers_of_one_file_use_different_temporary_files(tmp_path):
    target = tmp_path / "stats" / "vg.json"
    with workspace.atomic_path(target) as first, workspace.atomic_path(target) as second:
        assert first != second and first.parent == second.parent == target.parent
        assert first.name.startswith(f".vg.json.{os.getpid()}.") and first.suffix == ".tmp"
        first.write_text("one")
        second.write_text("two")  # would have overwritten `first` with a fixed temporary name
        assert first.read_text() == "one"
    assert target.read_text() == "one"  # the outer writer renamed last
    assert sorted(p.name for p in target.parent.iterdir()) == ["vg.json"]


def test_a_failed_write_leaves_the_target_and_no_temporary_file(tmp_path):
    target = tmp_path / "part.done"
    workspace.write_text_atomic(target, "old")
    with pytest.raises(RuntimeError, match="disk full"), workspace.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["part.done"]


def test_only_temps_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    mine = tmp_path / f".000001.tar.{os.getpid()}.abc.tmp"
    gone = tmp_path / f".000001.tar.{dead}.def.tmp"
    kept = tmp_path / "000000.tar"
    for path in (mine, gone, kept):
        path.write_bytes(b"x")
    workspace.remove_dead_temps(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, kept.name])
