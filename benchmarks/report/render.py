"""The report as a list of blocks, rendered to Markdown and to a standalone HTML page.

Blocks: ("h", level, text), ("p", text), ("list", [text, ...]), ("table", DataFrame),
("img", relative path, alt text). Text may hold `code` spans; table cells that are
one whole `code` span stay literal (sample generations).
"""

from __future__ import annotations

import html
import re

import pandas as pd
from tabulate import tabulate

CODE = re.compile(r"`([^`]*)`")
HTML_START = re.compile(r"<(?=[A-Za-z/!?])")  # what Markdown would take for a tag
CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1400px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.2em;font-size:0.85em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f0f0f0}tr:nth-child(even) td{background:#fafafa}img{max-width:100%;margin:0.3em 0}
code{background:#f4f4f4;padding:0 3px}"""


def _md_cell(value: object) -> str:
    text = " ".join(str(value).splitlines())
    if not (len(text) >= 2 and text.startswith("`") and text.endswith("`")):
        text = HTML_START.sub("&lt;", text)
    return text.replace("|", "\\|")


def _md_table(frame: pd.DataFrame) -> str:
    rows = [[_md_cell(v) for v in row] for row in frame.itertuples(index=False)]
    return tabulate(rows, headers=[_md_cell(c) for c in frame.columns], tablefmt="github", disable_numparse=True)


def to_markdown(blocks: list[tuple]) -> str:
    out = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            out.append("#" * block[1] + " " + block[2])
        elif kind == "p":
            out.append(block[1])
        elif kind == "list":
            out.append("\n".join(f"- {item}" for item in block[1]))
        elif kind == "table":
            out.append(_md_table(block[1]) if len(block[1]) else "*(none)*")
        elif kind == "img":
            out.append(f"![{block[2]}]({block[1]})")
    return "\n\n".join(out) + "\n"


def _html_text(text: str) -> str:
    return CODE.sub(lambda m: f"<code>{m.group(1)}</code>", html.escape(str(text), quote=False))


def _html_table(frame: pd.DataFrame) -> str:
    if not len(frame):
        return "<p><em>(none)</em></p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{_html_text(v)}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(blocks: list[tuple], title: str) -> str:
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{CSS}</style></head><body>"]
    for block in blocks:
        kind = block[0]
        if kind == "h":
            out.append(f"<h{block[1]}>{_html_text(block[2])}</h{block[1]}>")
        elif kind == "p":
            out.append(f"<p>{_html_text(block[1])}</p>")
        elif kind == "list":
            out.append("<ul>" + "".join(f"<li>{_html_text(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "table":
            out.append(_html_table(block[1]))
        elif kind == "img":
            out.append(f"<img src='{html.escape(block[1])}' alt='{html.escape(block[2])}'>")
    return "\n".join(out + ["</body></html>"]) + "\n"
