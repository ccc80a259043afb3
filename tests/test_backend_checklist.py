"""Adding a backend is a checklist the interface enforces when the backend's class is
defined: a fourth backend that misses a hook or its mode table fails to load with one
line naming what is missing, instead of an AttributeError deep inside a run."""

import sys
import textwrap

import pytest

import backends
from backends import Entry, load_backend
from backends.base import _BACKEND_HOOKS, Backend, IncompleteBackend

FOURTH = """
from backends.base import Backend, ModeInfo

MODES = {{"plain": ModeInfo("tuned", "a plain loop")}}


class FourthBackend(Backend):
    name, framework = "fourth", "Fourth"
{body}


BACKEND = FourthBackend()
"""
COMPLETE = """
    MODES, default_mode = MODES, "plain"

    def devices(self):
        return ["cpu"]

    def environment(self):
        return {}

    def set_threads(self, threads):
        pass

    def _build(self, spec, vocab_size, device, params, mode):
        raise NotImplementedError
"""


def register(tmp_path, monkeypatch, body: str) -> None:
    package = tmp_path / f"fourth_{abs(hash(body))}"
    package.mkdir()
    (package / "__init__.py").write_text(FOURTH.format(body=textwrap.indent(textwrap.dedent(body), "    ")))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(backends.BACKENDS, "fourth", Entry(package.name, "Fourth", "pip install fourth"))
    monkeypatch.setattr(sys, "modules", dict(sys.modules))


def test_a_complete_fourth_backend_loads_with_its_modes(tmp_path, monkeypatch):
    register(tmp_path, monkeypatch, COMPLETE)
    backend = load_backend("fourth", 1)
    assert backend.modes == ("plain",) and backend.track_of("plain") == "tuned"


@pytest.mark.parametrize("dropped, named", [
    ("    def _build(self, spec, vocab_size, device, params, mode):\n        raise NotImplementedError\n", "_build"),
    ("    def devices(self):\n        return [\"cpu\"]\n", "devices"),
    ('    MODES, default_mode = MODES, "plain"\n', "default_mode, MODES"),
])
def test_an_incomplete_fourth_backend_is_refused_naming_what_it_lacks(tmp_path, monkeypatch, dropped, named):
    assert dropped in COMPLETE
    register(tmp_path, monkeypatch, COMPLETE.replace(dropped, ""))
    with pytest.raises(IncompleteBackend, match=f"^backend 'fourth' .* lacks {named}: see README, Adding a backend$"):
        load_backend("fourth", 1)


def test_a_default_mode_outside_the_table_is_refused(tmp_path, monkeypatch):
    register(tmp_path, monkeypatch, COMPLETE.replace('default_mode = MODES, "plain"', 'default_mode = MODES, "fast"'))
    with pytest.raises(IncompleteBackend, match="default_mode must be one of MODES; check fast"):
        load_backend("fourth", 1)


def test_the_checklist_names_every_abstract_hook():
    assert set(_BACKEND_HOOKS) == set(Backend.__abstractmethods__)


def test_a_mode_row_names_a_known_track_and_its_switches_follow_from_it():
    """The out-of-box and book switches are the track itself, spelled once for every backend."""
    from backends.base import ModeInfo

    with pytest.raises(ValueError, match="track 'fast' is not one of"):
        ModeInfo("fast", "a typo")
    rows = {track: ModeInfo(track, "x") for track in ("tuned", "out-of-box", "book")}
    assert [(r.library, r.book) for r in rows.values()] == [(False, False), (True, False), (False, True)]
