"""Where ``demo`` and ``example-dags`` find the example DAGs: the installed package's copy first
(a wheel ships them as airflow_jobstatus/example_dags), else a source checkout's example_dags/."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_jobstatus import demo


def dags_in(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / demo.DEMO_DAG_FILE).write_text("dag = None\n", encoding="utf-8")
    return folder


def test_the_packaged_copy_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "PACKAGED_EXAMPLE_DAGS", dags_in(tmp_path / "site-packages"))
    monkeypatch.setattr(demo, "CHECKOUT_EXAMPLE_DAGS", dags_in(tmp_path / "checkout"))
    assert demo.example_dags_dir() == tmp_path / "site-packages"


def test_a_checkout_without_a_packaged_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "PACKAGED_EXAMPLE_DAGS", tmp_path / "site-packages")  # an editable install
    monkeypatch.setattr(demo, "CHECKOUT_EXAMPLE_DAGS", dags_in(tmp_path / "checkout"))
    assert demo.example_dags_dir() == tmp_path / "checkout"


def test_neither(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "PACKAGED_EXAMPLE_DAGS", tmp_path / "a")
    monkeypatch.setattr(demo, "CHECKOUT_EXAMPLE_DAGS", (tmp_path / "b"))
    (tmp_path / "b").mkdir()  # a folder without the demo DAG does not count
    assert demo.example_dags_dir() is None


def test_this_checkout_has_them() -> None:
    found = demo.example_dags_dir()
    assert found is not None and (found / demo.DEMO_DAG_FILE).is_file()


def test_missing_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "DEMO_EXTRAS", {"json": ("x", "json"), "no_such_pkg_q.mod": ("vertex", "V")})
    assert demo.missing_extras() == [("vertex", "V")]
