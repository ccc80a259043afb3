"""The report as a list of blocks, rendered to Markdown, and that Markdown to a standalone HTML page.

Blocks: ("h", level, text), ("p", text), ("list", [text, ...]), ("table", DataFrame),
("img", relative path, alt text). Text is Markdown written by the report (`code`,
**bold**); text taken from records goes through `escape_md` first. Table cells that are
one whole `code` span stay literal (sample generations).

REPORT.html is REPORT.md run through markdown-it-py (CommonMark plus GFM tables) with raw
HTML off, so the two files say the same thing and any markup in a record comes out as
text in both.
"""

from __future__ import annotations

import html
import re

import pandas as pd
from markdown_it import MarkdownIt
from tabulate import tabulate

HTML_START = re.compile(r"(?<!\\)<(?=[A-Za-z/!?])")  # what Markdown would take for a tag (unless escaped)
UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")
MD_SPECIAL = re.compile(r"([\\`*_\[\]<>&|~])")
BARE_PATH_BREAKERS = re.compile(r"[\s()<>]")  # what ends or splits a bare link target
LINE_START = re.compile(r"^(\s*)([#>+=-]|\d+(?=[.)]))")  # a heading, quote, list or setext line if left alone
CSS = """body{font-family:system-ui,sans-serif;margin:1em auto;max-width:1400px;padding:0 1em;color:#222}
h1{font-size:1.7em;margin:0 0 0.4em}h2{margin:0.9em 0 0.4em}h3{margin:0.8em 0 0.3em}p{margin:0.6em 0}
table{border-collapse:collapse;margin:0.5em 0 1.2em;font-size:0.85em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f0f0f0}tr:nth-child(even) td{background:#fafafa}img{max-width:100%;margin:0.3em 0}
code{background:#f4f4f4;padding:0 3px}"""


def escape_md(text: object) -> str:
    """Record-derived free text (campaign ids, tags, contender names) made inert in
    Markdown and HTML: one line, and every character that could start emphasis, code, a
    link, a tag, an entity, a table cell, a heading, a quote or a list is backslash-escaped,
    so it prints as written in REPORT.md, on GitHub and in REPORT.html."""
    line = " ".join(str(text).splitlines())
    line = MD_SPECIAL.sub(r"\\\1", line)
    return LINE_START.sub(lambda m: m.group(1) + m.group(2) + "\\" if m.group(2)[0].isdigit()
                          else m.group(1) + "\\" + m.group(2), line, count=1)


def _md_cell(value: object) -> str:
    """One table cell on one line, its pipes escaped, and a `<` that would open a tag
    escaped unless the whole cell is a code span (kept literal)."""
    text = " ".join(str(value).splitlines())
    if not (len(text) >= 2 and text.startswith("`") and text.endswith("`")):
        text = HTML_START.sub("&lt;", text)
    return UNESCAPED_PIPE.sub(r"\\|", text)


def _md_table(frame: pd.DataFrame) -> str:
    rows = [[_md_cell(v) for v in row] for row in frame.itertuples(index=False)]
    return tabulate(rows, headers=[_md_cell(c) for c in frame.columns], tablefmt="github", disable_numparse=True)


def _md_image(path: str, alt: str) -> str:
    """An image; a path with spaces or parentheses goes in angle brackets, which keep it whole."""
    alt = re.sub(r"([\\\[\]])", r"\\\1", " ".join(str(alt).splitlines()))
    target = f"<{path}>" if BARE_PATH_BREAKERS.search(path) else path
    return f"![{alt}]({target})"


def _inert(text: object, one_line: bool = True) -> str:
    """The choke point every heading, paragraph and list item passes: whatever a record
    smuggled in cannot open an HTML tag, and (`one_line`) cannot start a new block."""
    text = str(text)
    return HTML_START.sub("&lt;", " ".join(text.splitlines()) if one_line else text)


def to_markdown(blocks: list[tuple]) -> str:
    out = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            out.append("#" * block[1] + " " + _inert(block[2]))
        elif kind == "p":
            out.append(_inert(block[1], one_line=False))
        elif kind == "list":
            out.append("\n".join(f"- {_inert(item)}" for item in block[1]))
        elif kind == "table":
            out.append(_md_table(block[1]) if len(block[1]) else "*(none)*")
        elif kind == "img":
            out.append(_md_image(block[1], block[2]))
    return "\n\n".join(out) + "\n"


def markdown_to_html(text: str) -> str:
    """CommonMark with GFM tables and raw HTML disabled: a tag in the text is printed, never run."""
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


def to_html(blocks: list[tuple], title: str) -> str:
    """A standalone page (doctype, utf-8, the CSS inline) of exactly what `to_markdown` writes."""
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>\n"
            f"<style>{CSS}</style></head><body>\n{markdown_to_html(to_markdown(blocks))}</body></html>\n")
