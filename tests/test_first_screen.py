"""The first screen of REPORT.html in a real browser (headless Chromium at 1280x800)
shows the answer: the headline's sentence, its forest plot and its table.

In the report's venv (`nox -s tests` sets RNNBENCH_TEST_REPORT=1 there) a missing
Chromium fails the run; elsewhere these tests skip.
"""

from __future__ import annotations

import math
import os

import pytest

pytest.importorskip("pandas")
pytest.importorskip("matplotlib")
pytest.importorskip("markdown_it")

import pandas as pd  # noqa: E402

from benchmarks.report.browser import BrowserMissing, describe, find_browser, first_screen  # noqa: E402
from benchmarks.report.plots import write_forest_plots  # noqa: E402
from benchmarks.report.render import to_html  # noqa: E402


def _required() -> bool:
    """This venv is the report's: the browser check must run, not skip."""
    names = [n.strip() for n in os.environ.get("RNNBENCH_TEST_BACKENDS", "").split(",")]
    return os.environ.get("RNNBENCH_TEST_REPORT") == "1" or "report" in names


@pytest.fixture(scope="module")
def browser() -> str:
    try:
        return find_browser()
    except BrowserMissing as exc:
        missing = str(exc)
    if _required():
        pytest.fail(missing, pytrace=False)
    pytest.skip(missing)


INTRO = ("Generated 2026-12-05T09:00:00+00:00 from 54 record(s) under `results/runs`. Records from 2026-12-03 17:36 "
         "to 2026-12-04 00:52 UTC; 15 comparison group(s).")
SENTENCE = ("On this machine, PyTorch `eager` trains quick-gru at 0.86× [0.80, 0.90] the speed of MXNet `hybridized`, "
            "the fastest; JAX ties it (0.97× [0.93, 1.01]).")
CONTENDERS = [("mxnet/tuned", "tuned", 1.0), ("mxnet/out-of-box", "out-of-box", 0.84), ("jax/tuned", "tuned", 0.74),
              ("pytorch/tuned", "tuned", 0.59), ("mxnet/book", "book", 0.56), ("jax/out-of-box", "out-of-box", 0.52),
              ("pytorch/out-of-box", "out-of-box", 0.42), ("pytorch/book", "book", 0.42)]


def _headline() -> pd.DataFrame:
    """Eight contenders, as many as the default campaign's quick-gru."""
    rows = []
    for contender, track, ratio in CONTENDERS:
        backend, mode = contender.split("/")
        lo, hi = (math.nan, math.nan) if ratio == 1.0 else (ratio - 0.04, ratio + 0.04)
        rows.append({"group": "G1", "preset_label": "quick-gru", "contender": contender, "backend": backend,
                     "mode": mode, "track": track, "ratio": ratio, "ratio_lo": lo, "ratio_hi": hi,
                     "verdict": "fastest" if ratio == 1.0 else "slower", "twin": False, "status": "ok"})
    return pd.DataFrame(rows)


def _table(headline: pd.DataFrame) -> pd.DataFrame:
    """The headline table's shape: eleven columns, one row per contender."""
    return pd.DataFrame({"backend (mode)": headline["contender"], "track": headline["track"],
                         "tok/s": "63,480", "95% CI": "55,835–70,908", "vs fastest [95% CI]": "0.84 [0.80, 0.89]",
                         "verdict": headline["verdict"], "rounds": "10", "utilisation": "76%", "warm-up s": "0.3",
                         "final ppl": "9.194", "target": "—"})


def _page(tmp_path, intro_paragraphs: int, plot_first: bool = False, campaign_line: bool = False) -> tuple:
    """The headline as the report lays it out: title, intro, then per preset the answer
    sentence, its forest plot and its table (or the plot before the sentence)."""
    headline = _headline()
    plot = write_forest_plots(headline, tmp_path / "plots")["G1"]
    answer = [("p", SENTENCE), ("img", plot.relative_to(tmp_path).as_posix(), "G1 verdict")]
    blocks = [("h", 1, "rnnbench report"), *[("p", INTRO)] * intro_paragraphs,
              ("h", 2, "Headline: which framework is fastest here, and how sure"),
              ("h", 3, "Campaign 20261203-214129-d799 (this report's)"),
              *([("p", "Campaign `20261203-214129-d799` on vm, 2 thread(s).")] if campaign_line else []),
              *(answer[::-1] if plot_first else answer),
              ("table", _table(headline)), ("p", "Tracks: ..."), ("h", 2, "1. Throughput and quality")]
    page = tmp_path / "REPORT.html"
    page.write_text(to_html(blocks, "rnnbench report"), encoding="utf-8")
    return page


def test_first_screen_holds_sentence_plot_and_table(browser, tmp_path):
    page = _page(tmp_path, intro_paragraphs=1)
    seen = first_screen(page)
    assert seen["boxes"]["sentence"]["text"].startswith("On this machine")
    assert seen["boxes"]["plot"]["text"] == "G1 verdict"
    assert (seen["sentence"], seen["plot"], seen["table"]) == (True, True, True), describe(seen)
    assert seen["viewport"] == [1280, 800]
    shot = tmp_path / "first-screen.png"
    assert seen["screenshot"] == str(shot) and shot.read_bytes()[:4] == b"\x89PNG"


def test_first_screen_sees_a_headline_pushed_down(browser, tmp_path):
    """Long text before the headline: the check says so instead of passing."""
    seen = first_screen(_page(tmp_path, intro_paragraphs=25), tmp_path / "shot.png")
    assert seen["sentence"] is False and seen["plot"] is False and seen["table"] is False, describe(seen)
    assert seen["boxes"]["table"]["top"] > 800
    assert (tmp_path / "shot.png").is_file()


def test_the_sentence_is_the_first_paragraph_of_text(browser, tmp_path):
    """A plot's own paragraph (an image alone) is not taken for the sentence."""
    seen = first_screen(_page(tmp_path, intro_paragraphs=1, plot_first=True))
    assert seen["boxes"]["sentence"]["text"].startswith("On this machine"), describe(seen)
    assert seen["boxes"]["sentence"]["top"] > seen["boxes"]["plot"]["bottom"]


def test_the_sentence_found_by_its_first_words(browser, tmp_path):
    """With a campaign line first, `sentence_start` picks the answer, not that line."""
    page = _page(tmp_path, intro_paragraphs=0, campaign_line=True)
    seen = first_screen(page, sentence_start="On this machine")
    assert seen["boxes"]["sentence"]["text"].startswith("On this machine"), describe(seen)
    assert all(seen[name] for name in ("sentence", "plot", "table")), describe(seen)
