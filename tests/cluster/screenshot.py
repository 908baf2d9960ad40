#!/usr/bin/env python3
"""Screenshot of a terminal command, as a PNG: run it in tmux, capture the screen with its colours, draw it.

    python tests/cluster/screenshot.py OUT.png [--cols 150 --rows 40 --wait 8] -- COMMAND...

Made for the README's picture of ``python -m prepull status`` from a real run on the local cluster:
tmux gives the command a real terminal (so rich draws its live table as for a person), and
``capture-pane -e`` returns the screen with its SGR colour codes, which are drawn here with
DejaVu Sans Mono. Needs tmux and Pillow (requirements-dev.txt).
"""

import argparse
import re
import shlex
import subprocess
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
FONT_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"
BACKGROUND, FOREGROUND = (30, 30, 30), (220, 220, 220)
# The 16 standard colours (xterm's defaults, a little softened for a dark background).
PALETTE = [
    (0, 0, 0),
    (205, 49, 49),
    (13, 188, 121),
    (229, 229, 16),
    (36, 114, 200),
    (188, 63, 188),
    (17, 168, 205),
    (229, 229, 229),
    (102, 102, 102),
    (241, 76, 76),
    (35, 209, 139),
    (245, 245, 67),
    (59, 142, 234),
    (214, 112, 214),
    (41, 184, 219),
    (255, 255, 255),
]
SGR = re.compile(r"\x1b\[([0-9;]*)m")


def capture(command: list, cols: int, rows: int, wait: float) -> str:
    """The screen, with colour codes, ``wait`` seconds after ``command`` started in a fresh tmux session."""
    session = f"prepull-shot-{int(time.time())}"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", str(cols), "-y", str(rows), shlex.join(command) + "; sleep 600"], check=True
    )
    try:
        time.sleep(wait)
        return subprocess.run(["tmux", "capture-pane", "-e", "-p", "-t", session], check=True, capture_output=True, text=True).stdout
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)


def color_256(n: int) -> tuple:
    if n < 16:
        return PALETTE[n]
    if n < 232:
        n -= 16
        return tuple(0 if v == 0 else 55 + v * 40 for v in (n // 36, (n // 6) % 6, n % 6))
    return (8 + (n - 232) * 10,) * 3


def apply_sgr(params: list, style: dict) -> None:
    """Update ``style`` (fg, bg, bold, dim) from one SGR sequence's parameters."""
    i = 0
    while i < len(params):
        p = params[i]
        if p == 0:
            style.update(fg=FOREGROUND, bg=None, bold=False, dim=False)
        elif p in (1, 2, 22):
            style.update(bold=p == 1, dim=p == 2) if p != 22 else style.update(bold=False, dim=False)
        elif 30 <= p <= 37 or 90 <= p <= 97:
            style["fg"] = PALETTE[p - 30 if p < 90 else p - 90 + 8]
        elif 40 <= p <= 47 or 100 <= p <= 107:
            style["bg"] = PALETTE[p - 40 if p < 100 else p - 100 + 8]
        elif p in (39, 49):
            style["fg" if p == 39 else "bg"] = FOREGROUND if p == 39 else None
        elif p in (38, 48) and i + 1 < len(params):
            key = "fg" if p == 38 else "bg"
            if params[i + 1] == 5 and i + 2 < len(params):
                style[key], i = color_256(params[i + 2]), i + 2
            elif params[i + 1] == 2 and i + 4 < len(params):
                style[key], i = tuple(params[i + 2 : i + 5]), i + 4
        i += 1


def spans(line: str, style: dict):
    """Yield (text, style copy) runs of one captured line."""
    pos = 0
    for match in SGR.finditer(line):
        if match.start() > pos:
            yield line[pos : match.start()], dict(style)
        apply_sgr([int(x) if x else 0 for x in match.group(1).split(";")], style)
        pos = match.end()
    if pos < len(line):
        yield line[pos:], dict(style)


def draw(screen: str, out: Path, cols: int, size: int = 15) -> None:
    fonts = {False: ImageFont.truetype(FONT, size), True: ImageFont.truetype(FONT_BOLD, size)}
    cell_w, cell_h = round(fonts[False].getlength("M")), int(size * 1.35)
    lines = screen.rstrip("\n").split("\n")
    image = Image.new("RGB", (cols * cell_w + 24, len(lines) * cell_h + 24), BACKGROUND)
    pen = ImageDraw.Draw(image)
    style = {"fg": FOREGROUND, "bg": None, "bold": False, "dim": False}
    for row, line in enumerate(lines):
        x, y = 12, 12 + row * cell_h
        for text, s in spans(line, style):
            width = len(text) * cell_w
            if s["bg"]:
                pen.rectangle([x, y, x + width, y + cell_h], fill=s["bg"])
            fg = tuple(c // 2 + 40 for c in s["fg"]) if s["dim"] else s["fg"]
            for i, ch in enumerate(text):  # one cell per character, as a terminal lays them out
                pen.text((x + i * cell_w, y), ch, font=fonts[s["bold"]], fill=fg)
            x += width
    image.save(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--cols", type=int, default=150)
    p.add_argument("--rows", type=int, default=40)
    p.add_argument("--wait", type=float, default=8, help="seconds to let the command draw (default 8)")
    p.add_argument("command", nargs="+")
    args = p.parse_args()
    draw(capture(args.command, args.cols, args.rows, args.wait), args.out, args.cols)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
