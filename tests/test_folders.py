"""medtune replaces only folders it made: every folder it writes whole carries a marker file, and
push, space, export and demo refuse (one line, nothing touched) a non-empty folder without one."""

from __future__ import annotations

import pytest

from conftest import run_cli
from medtune.errors import MedtuneError
from medtune.io import MARKER, check_replaceable, remove_made_folder, replace_dir


def _user_folder(tmp_path):
    folder = tmp_path / "my-notes"
    folder.mkdir()
    (folder / "notes.txt").write_text("a patient list nobody may lose")
    return folder


def _refusal(folder, field):
    return (f"{folder}: {field}: is not empty and was not made by medtune (no {MARKER} file): medtune replaces "
            "only folders it made; empty it, or choose another folder")


def test_replace_dir_marks_what_it_makes_and_replaces_only_that(tmp_path):
    target = tmp_path / "out"
    with replace_dir(target) as staging:
        (staging / "a.txt").write_text("one")
    assert sorted(p.name for p in target.iterdir()) == [MARKER, "a.txt"]
    with replace_dir(target) as staging:  # medtune's own folder: replaced whole
        (staging / "b.txt").write_text("two")
    assert sorted(p.name for p in target.iterdir()) == [MARKER, "b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder left behind
    user = _user_folder(tmp_path)
    with pytest.raises(MedtuneError) as err:
        with replace_dir(user, field="--out") as staging:
            raise AssertionError("the block must not run")
    assert str(err.value) == _refusal(user, "--out")
    assert (user / "notes.txt").read_text() == "a patient list nobody may lose"
    empty = tmp_path / "empty"
    empty.mkdir()
    check_replaceable(empty)  # an empty folder may be used
    (tmp_path / "file").write_text("x")
    with pytest.raises(MedtuneError, match="is not a folder medtune made \\(a file or a link\\)"):
        check_replaceable(tmp_path / "file")
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(MedtuneError, match="is not a folder medtune made \\(a file or a link\\)"):
        remove_made_folder(tmp_path / "link")
    remove_made_folder(target)
    assert not target.exists()


@pytest.mark.parametrize("verb, extra", [("push", ["--repo", "someone/x", "--dry-run"]), ("space", ["--base-model", "someone/base"]),
                                         ("export", [])])
def test_out_refuses_a_folder_medtune_did_not_make(tiny_run, tmp_path, verb, extra):
    user = _user_folder(tmp_path)
    proc = run_cli(verb, str(tiny_run), "--out", str(user), *extra)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip() == _refusal(user, "--out")
    assert sorted(p.name for p in user.iterdir()) == ["notes.txt"]


def test_out_refuses_to_replace_the_run_it_reads(tiny_run):
    proc = run_cli("push", str(tiny_run), "--repo", "someone/x", "--dry-run", "--out", str(tiny_run / "adapter"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"{tiny_run / 'adapter'}: --out: would replace {tiny_run / 'adapter'}, which "
                                   "this command reads; choose another folder")
    assert (tiny_run / "adapter" / "adapter_model.safetensors").is_file()


def test_demo_refuses_an_output_dir_it_did_not_make(tmp_path):
    user = _user_folder(tmp_path)
    proc = run_cli("demo", f"output_dir={user}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip() == _refusal(user, "output_dir")
    assert sorted(p.name for p in user.iterdir()) == ["notes.txt"]
