"""REPORT.md and REPORT.html from the same blocks, record text kept inert, and the forest plot."""

from __future__ import annotations

import math
import re

import pytest

pytest.importorskip("pandas")
pytest.importorskip("matplotlib")
pytest.importorskip("tabulate")
pytest.importorskip("markdown_it")

import pandas as pd  # noqa: E402

from benchmarks.report.plots import (  # noqa: E402
    BACKEND_COLORS,
    FOREST_XLABEL,
    forest_plot,
    forest_rows,
    write_forest_plots,
)
from benchmarks.report.render import escape_md, markdown_to_html, to_html, to_markdown  # noqa: E402

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"


def _tags(page: str) -> set[str]:
    """The element names that the HTML really opens."""
    return {m.lower() for m in re.findall(r"<([A-Za-z][A-Za-z0-9]*)", page)}


def test_html_is_the_markdown_rendered():
    """**bold** is <strong> (no literal asterisks), `code` is <code>, a list is a list."""
    page = to_html([("h", 1, "rnnbench report"), ("p", "**quick-gru** (G1): `eager` first"),
                    ("list", ["one", "**two**"])], "rnnbench report")
    assert "<strong>quick-gru</strong> (G1): <code>eager</code> first" in page
    assert "**" not in page
    assert "<li><strong>two</strong></li>" in page
    assert page.startswith("<!doctype html>") and "charset='utf-8'" in page
    assert "<title>rnnbench report</title>" in page and "border-collapse" in page


def test_title_is_escaped():
    assert "<title>a &lt;b&gt; &amp; c</title>" in to_html([], "a <b> & c")


def test_markup_in_a_paragraph_is_printed_not_run():
    page = to_html([("p", f"run {SCRIPT} then {IMG}")], "t")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert {"script", "img"}.isdisjoint(_tags(page))


def test_markup_in_a_table_cell_is_escaped_in_both_files():
    frame = pd.DataFrame({"contender": [SCRIPT, IMG, "a | b"], "sample": ["`x | <y>`", "ok", "**bold**"]})
    blocks = [("table", frame)]
    md, page = to_markdown(blocks), to_html(blocks, "t")
    assert "&lt;script>alert(1)&lt;/script>" in md and "&lt;img src=x" in md  # GitHub shows it as text too
    assert "a \\| b" in md
    assert {"script", "img"}.isdisjoint(_tags(page))
    assert page.count("<tr>") == 4  # the header and three rows: the escaped pipe split nothing
    assert "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>" in page
    assert "<td><code>x | &lt;y&gt;</code></td>" in page  # a whole code span stays literal
    assert "<td>a | b</td>" in page


def test_empty_table_and_image():
    blocks = [("table", pd.DataFrame({"a": []})), ("img", "plots/FG1-quick-gru-verdict.png", "G1 verdict")]
    page = to_html(blocks, "t")
    assert "<em>(none)</em>" in page
    assert '<img src="plots/FG1-quick-gru-verdict.png" alt="G1 verdict" />' in page


@pytest.mark.parametrize(("text", "shown"), [
    (IMG, IMG),
    ("`rm -rf`", "`rm -rf`"),
    ("first\nsecond", "first second"),
    ("# not a heading", "# not a heading"),
    ("1. not a list", "1. not a list"),
    ("- not a list", "- not a list"),
    ("*a* _b_ [c](javascript:alert(1)) a|b &amp; ~~d~~ \\*", "*a* _b_ [c](javascript:alert(1)) a|b &amp; ~~d~~ \\*"),
])
def test_escape_md_prints_record_text_as_written(text, shown):
    """Record text through escape_md renders as itself: no tag, code, emphasis, link, heading or list."""
    escaped = escape_md(text)
    assert "\n" not in escaped
    for page in (markdown_to_html(escaped), markdown_to_html(f"Campaign {escaped} ran.")):
        assert _tags(page) == {"p"}, page
    assert markdown_to_html(escaped) == f"<p>{_html_escape(shown)}</p>\n"
    cell = to_html([("table", pd.DataFrame({"c": [escaped]}))], "t")
    assert f"<td>{_html_escape(shown)}</td>" in cell


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _row(contender, ratio, lo, hi, verdict, track="tuned", twin=False, status="ok", group="G1", label="quick-gru"):
    backend, mode = contender.split("/")
    return {"group": group, "preset_label": label, "contender": contender, "backend": backend, "mode": mode,
            "track": track, "ratio": ratio, "ratio_lo": lo, "ratio_hi": hi, "verdict": verdict, "twin": twin,
            "status": status}


HEADLINE = pd.DataFrame([
    _row("jax/tuned", 0.62, 0.60, 0.64, "slower"),
    _row("mxnet/hybridized", 0.86, 0.80, 0.90, "slower", track="out-of-box"),
    _row("jax/jit", math.nan, math.nan, math.nan, "error", track="out-of-box", status="error"),
    _row("pytorch/tuned", 1.0, math.nan, math.nan, "fastest"),
    _row("pytorch/tuned", 0.99, 0.97, 1.02, "tie", twin=True),
    _row("mxnet/book", 0.41, 0.39, 0.44, "slower", track="book"),
])


def test_forest_rows_order_colour_and_twin():
    """Fastest on top, then by ratio, the failed row last with its verdict; colour per
    framework, marker per track, the twin hollow and grey."""
    data = forest_rows(HEADLINE)
    assert data["label"].tolist() == ["pytorch/tuned", "twin (A/A): pytorch/tuned", "mxnet/hybridized",
                                      "jax/tuned", "mxnet/book", "jax/jit"]
    assert data["color"].iloc[0] == BACKEND_COLORS["pytorch"] and data["color"].iloc[3] == BACKEND_COLORS["jax"]
    assert data["filled"].tolist() == [True, False, True, True, True, True]
    assert data["color"].iloc[1] not in BACKEND_COLORS.values()
    assert data["marker"].tolist()[2:5] == ["s", "o", "^"]
    assert data["note"].iloc[2] == "0.86× [0.80, 0.90] slower"
    assert math.isnan(data["ratio"].iloc[-1]) and data["note"].iloc[-1] == "error"


def test_forest_rows_without_a_twin_column():
    assert forest_rows(HEADLINE.drop(columns="twin"))["filled"].all()


def test_forest_plot_draws_one_row_per_contender(tmp_path, monkeypatch):
    """One y tick per contender (failed rows too), the reference line at 1, the x label."""
    import matplotlib.pyplot as plt

    seen = {}
    real_close = plt.close

    def keep(fig):
        ax = fig.axes[0]
        seen["ticks"] = [t.get_text() for t in ax.get_yticklabels()]
        seen["xlabel"] = ax.get_xlabel()
        seen["lines_at_1"] = [ln for ln in ax.get_lines() if list(ln.get_xdata()) == [1.0, 1.0]]
        real_close(fig)

    monkeypatch.setattr(plt, "close", keep)
    path = tmp_path / "forest.png"
    labels = forest_plot(HEADLINE, path, "G1 · quick-gru")
    assert path.stat().st_size > 5000 and path.read_bytes()[:4] == b"\x89PNG"
    assert labels == forest_rows(HEADLINE)["label"].tolist()
    assert seen["ticks"] == list(reversed(labels))  # matplotlib counts from the bottom: fastest on top
    assert seen["xlabel"] == FOREST_XLABEL
    assert len(seen["lines_at_1"]) == 1


def test_write_forest_plots_names_and_clears_old_ones(tmp_path):
    stale, other = tmp_path / "FG9-old-verdict.png", tmp_path / "G1-quick-gru-ppl.png"
    stale.write_bytes(b"x")
    other.write_bytes(b"x")
    second = HEADLINE.assign(group="G2", preset_label="quick lstm")
    written = write_forest_plots(pd.concat([HEADLINE, second]), tmp_path)
    assert {k: v.name for k, v in written.items()} == {"G1": "FG1-quick-gru-verdict.png",
                                                       "G2": "FG2-quick-lstm-verdict.png"}
    assert not stale.exists() and other.exists()
    assert write_forest_plots(HEADLINE.iloc[:0], tmp_path) == {}
    assert not (tmp_path / "FG1-quick-gru-verdict.png").exists()


def test_headings_paragraphs_and_lists_pass_one_choke_point():
    """Whatever a record smuggles into a heading, a paragraph or a list item cannot open
    a tag, and in a heading or an item cannot start a new block."""
    text = to_markdown([("h", 2, "G1 <script>alert(1)</script>\n# injected"),
                        ("p", "campaign <img src=x onerror=alert(1)>"),
                        ("list", ["<b>bold</b>\n## also injected"])])
    assert "<script" not in text and "<img" not in text and "<b>" not in text
    assert not any(line.startswith(("# injected", "## also")) for line in text.splitlines())
    assert "&lt;script>" in text
