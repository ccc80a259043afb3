"""What a reader sees first: REPORT.html opened in a real headless browser, one screen.

`first_screen` loads the page in Chromium at 1280x800, finds the headline's answer
sentence (the first paragraph of text after the "Headline" heading, or the first that
starts with given words), the first image and the first table after that heading, says
which lie wholly within the first viewport, and saves a screenshot of that viewport.
`python -m benchmarks.report.browser results/REPORT.html` prints the same.

Why Chromium's DevTools protocol over a pipe rather than Selenium: Chromium alone
(Debian's `chromium`) does everything needed here in four protocol calls (viewport size,
navigate, evaluate, screenshot), `--remote-debugging-pipe` speaks it on two file
descriptors with NUL-separated JSON, so the standard library suffices, and the viewport is
set exactly (Emulation.setDeviceMetricsOverride) rather than through a window size. No
chromedriver, no Selenium with its network stack (trio, urllib3, websocket-client) to pin,
and no driver/browser version pairing to keep.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
INSTALL_HINT = "apt-get install chromium (Debian/Ubuntu), or set RNNBENCH_CHROMIUM to a Chromium/Chrome binary"
VIEWPORT = (1280, 800)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         "--no-default-browser-check", "--disable-extensions", "--mute-audio", "--force-device-scale-factor=1",
         "--remote-debugging-pipe"]
ITEMS = ("sentence", "plot", "table")
LOCATE = """((start) => {
  const heading = [...document.querySelectorAll('h1,h2,h3')].find(e => e.textContent.trim().startsWith('Headline'));
  const after = (sel, ok) => heading ? [...document.querySelectorAll(sel)].find(
      e => (heading.compareDocumentPosition(e) & Node.DOCUMENT_POSITION_FOLLOWING) && ok(e)) || null : null;
  const box = e => { if (!e) return null; const r = e.getBoundingClientRect();
    return {top: r.top, bottom: r.bottom, left: r.left, right: r.right,
            loaded: e.tagName !== 'IMG' || (e.complete && e.naturalWidth > 0),
            text: (e.textContent.trim() || e.getAttribute('alt') || '').slice(0, 120)}; };
  const text = e => e.textContent.trim();
  return {heading: box(heading), sentence: box(after('p', e => text(e) !== '' && text(e).startsWith(start))),
          plot: box(after('img', e => true)), table: box(after('table', e => true)),
          viewport: [window.innerWidth, window.innerHeight]};
})"""


class BrowserMissing(RuntimeError):
    """No Chromium or Chrome on this machine."""


def find_browser() -> str:
    """RNNBENCH_CHROMIUM if set, else the first Chromium/Chrome on PATH."""
    wanted = os.environ.get("RNNBENCH_CHROMIUM")
    found = shutil.which(wanted) if wanted else next(filter(None, map(shutil.which, BROWSERS)), None)
    if not found:
        raise BrowserMissing(f"no Chromium found for the first-screen check: {INSTALL_HINT}")
    return found


class DevTools:
    """One headless Chromium driven over --remote-debugging-pipe (fd 3: commands in,
    fd 4: replies and events out, each message JSON ended by a NUL byte)."""

    def __init__(self, binary: str, timeout: float = 60.0):
        self.deadline = time.monotonic() + timeout
        self.profile = tempfile.mkdtemp(prefix="rnnbench-chromium-")
        self.log = tempfile.TemporaryFile()
        to_browser, self._write = os.pipe()
        self._read, from_browser = os.pipe()

        def onto_3_and_4() -> None:  # in the child, before exec: the two pipe ends as fds 3 and 4
            ends = [os.dup(to_browser), os.dup(from_browser)]
            for fd, end in zip((3, 4), ends, strict=True):
                os.dup2(end, fd)
                os.set_inheritable(fd, True)

        self.proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={self.profile}",
                                      f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "about:blank"],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                     close_fds=False, preexec_fn=onto_3_and_4)
        os.close(to_browser)
        os.close(from_browser)
        self._buffer, self._next_id, self.session = b"", 0, None
        self._events: list[dict] = []  # events read while waiting for a reply

    def _receive(self) -> dict:
        while b"\0" not in self._buffer:
            left = self.deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise TimeoutError(f"Chromium did not answer in time; its log ends: {self.log_tail()}")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium closed the DevTools pipe; its log ends: {self.log_tail()}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, **params) -> dict:
        """Send one command (to the attached page once there is one) and return its result."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"DevTools {method}: {reply['error']}")
                return reply.get("result", {})
            self._events.append(reply)

    def wait_for(self, event: str) -> dict:
        """The next event of that name (events seen while waiting for replies count)."""
        while True:
            for i, seen in enumerate(self._events):
                if seen.get("method") == event:
                    return self._events.pop(i)
            self._events.append(self._receive())

    def open_page(self) -> None:
        """A fresh tab, attached in flat mode so page commands go over the same pipe."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def log_tail(self, chars: int = 600) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-chars:].strip() or "(empty)"

    def close(self) -> None:
        for fd in (self._write, self._read):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


def _within(box: dict | None, width: int, height: int) -> bool:
    """Wholly on the first screen: drawn (non-empty, image loaded) and inside the viewport."""
    return bool(box and box["loaded"] and box["bottom"] > box["top"] and box["top"] >= 0
                and box["bottom"] <= height and box["left"] >= 0 and box["right"] <= width)


def first_screen(html_path: Path, screenshot: Path | None = None, timeout: float = 60.0,
                 sentence_start: str = "") -> dict:
    """Open `html_path` at 1280x800 and report, for the answer sentence, the plot and the
    table after the Headline heading, whether each lies wholly within the first screen.
    The sentence is the first paragraph of text after that heading, or the first that
    starts with `sentence_start` when given.

    Returns {"sentence": bool, "plot": bool, "table": bool, "boxes": {name: box or None},
    "viewport": [w, h], "screenshot": path}; a box has top/bottom/left/right in CSS
    pixels from the page's top-left and the element's first text. The screenshot of the
    first screen goes to `screenshot` (default: first-screen.png beside the page)."""
    html_path = Path(html_path).resolve()
    screenshot = Path(screenshot) if screenshot else html_path.with_name("first-screen.png")
    browser = DevTools(find_browser(), timeout)
    try:
        browser.open_page()
        width, height = VIEWPORT
        browser.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                     mobile=False)
        browser.call("Page.enable")
        browser.call("Page.navigate", url=html_path.as_uri())
        browser.wait_for("Page.loadEventFired")  # images included, so their boxes have their size
        expression = f"{LOCATE}({json.dumps(sentence_start)})"
        found = browser.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"]["value"]
        shot = browser.call("Page.captureScreenshot", format="png")["data"]
    finally:
        browser.close()
    screenshot.write_bytes(base64.b64decode(shot))
    boxes = {name: found[name] for name in ("heading", *ITEMS)}
    return {**{name: _within(found[name], *found["viewport"]) for name in ITEMS}, "boxes": boxes,
            "viewport": found["viewport"], "screenshot": str(screenshot)}


def describe(result: dict) -> str:
    """One line per item: where it lies and whether it is on the first screen."""
    lines = []
    for name in ("heading", *ITEMS):
        box = result["boxes"][name]
        where = "not found" if box is None else f"top {box['top']:.0f}px, bottom {box['bottom']:.0f}px"
        shown = "" if name == "heading" else " — " + ("on" if result[name] else "NOT on") + " the first screen"
        lines.append(f"{name}: {where}{shown}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmarks.report.browser results/REPORT.html`: where the headline lies."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("html", type=Path, help="a REPORT.html")
    parser.add_argument("--screenshot", type=Path, default=None, help="default: first-screen.png beside it")
    parser.add_argument("--sentence-start", default="", help="the answer sentence begins so (default: any text)")
    args = parser.parse_args(argv)
    result = first_screen(args.html, args.screenshot, sentence_start=args.sentence_start)
    print(describe(result) + f"\nscreenshot: {result['screenshot']}")
    return 0 if all(result[name] for name in ITEMS) else 1


if __name__ == "__main__":
    raise SystemExit(main())
