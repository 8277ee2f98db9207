"""`carpscope docs`: the guides of docs/ ship in the package (carpscope/docs is docs/), listed and
printed whole; an unknown guide is one usage error. The installed copy is checked by
.ci/install_check.py (tests/test_install.py)."""
from __future__ import annotations

import pytest

from conftest import REPO, run_cli

GUIDES = sorted(p.stem for p in (REPO / "docs").glob("*.md"))


def test_every_guide_is_listed_with_its_title():
    rc, out, err = run_cli("docs")
    assert rc == 0, err
    listed = {line.split()[0]: line.split(None, 1)[1] for line in out.splitlines()[:len(GUIDES)]}
    assert sorted(listed) == GUIDES
    for name, title in listed.items():
        assert (REPO / "docs" / f"{name}.md").read_text(encoding="utf-8").startswith(f"# {title}")


@pytest.mark.parametrize("name", GUIDES)
def test_a_guide_is_printed_whole(name):
    rc, out, err = run_cli("docs", name)
    assert rc == 0, err
    assert out == (REPO / "docs" / f"{name}.md").read_text(encoding="utf-8")


def test_the_sensor_unit_is_printed():
    rc, out, err = run_cli("docs", "--unit")
    assert rc == 0, err
    assert out == (REPO / "docs" / "carpscope-sensor.service").read_text(encoding="utf-8")


def test_an_unknown_guide_is_one_usage_error():
    rc, out, err = run_cli("docs", "nonesuch")
    assert rc == 2 and out == ""
    assert "no guide named 'nonesuch'" in err and "Traceback" not in err


def test_the_package_declares_the_guides_as_data():
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert '"docs/*.md"' in text
    assert (REPO / "carpscope" / "docs").resolve() == (REPO / "docs").resolve()
