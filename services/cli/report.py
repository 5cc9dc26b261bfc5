"""The one-page PDF evidence report of `notar verify --report FILE.pdf`, drawn with reportlab from
what services/cli/evidence.py gathers: a header, the verdict in a coloured box, the document and
the log entry side by side, the timeline as a picture, each check in a table, and what was trusted.

Everything is shrunk to fit one A4 page when a receipt has many anchors. Text is set in DejaVu
Sans when the system has it (Debian's fonts-dejavu-core), else in the Vera font reportlab ships;
a character neither has is written as <U+XXXX>, so that no name is ever shown as something else.
Marks (✓ ✗ –) are drawn as lines, not set as text, so they do not depend on the font.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Flowable, KeepInFrame, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from merkle.checks import Status
from services.cli.evidence import Event, Evidence, gap

INK, MUTED, LINE = colors.HexColor("#1b1f24"), colors.HexColor("#57606a"), colors.HexColor("#d0d7de")
COLOURS = {
    Status.OK: (colors.HexColor("#116329"), colors.HexColor("#dafbe1")),
    Status.FAILED: (colors.HexColor("#a40e26"), colors.HexColor("#ffebe9")),
    Status.NOT_CHECKED: (colors.HexColor("#6e7781"), colors.HexColor("#f6f8fa")),
}
VERDICT_COLOURS = {  # valid as far as checked is still valid: green, its box pale
    Status.OK: COLOURS[Status.OK],
    Status.NOT_CHECKED: (colors.HexColor("#116329"), colors.HexColor("#eef8f0")),
    Status.FAILED: COLOURS[Status.FAILED],
}
WORDS = {Status.OK: "ok", Status.FAILED: "FAILED", Status.NOT_CHECKED: "not checked"}
_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/share/fonts/TTF")
MARGIN = 15 * mm
WIDTH = A4[0] - 2 * MARGIN - 12  # the frame's width less its padding of 6 pt on each side


@functools.cache
def fonts() -> tuple[str, str, str]:
    """The (regular, bold, monospace) font names, registered with reportlab once."""
    for d in map(Path, _FONT_DIRS):
        files = [d / "DejaVuSans.ttf", d / "DejaVuSans-Bold.ttf", d / "DejaVuSansMono.ttf"]
        if all(f.is_file() for f in files):
            for name, f in zip(("NotarSans", "NotarSans-Bold", "NotarMono"), files, strict=True):
                pdfmetrics.registerFont(TTFont(name, str(f)))
            return "NotarSans", "NotarSans-Bold", "NotarMono"
    pdfmetrics.registerFont(TTFont("NotarSans", "Vera.ttf"))
    pdfmetrics.registerFont(TTFont("NotarSans-Bold", "VeraBd.ttf"))
    return "NotarSans", "NotarSans-Bold", "Courier"


def printable(text: str, font: str) -> str:
    """`text` with each character `font` has no glyph for written as <U+XXXX>."""
    face = pdfmetrics.getFont(font)
    glyphs = getattr(getattr(face, "face", None), "charToGlyph", None)
    if glyphs is None:  # a standard PDF font (Courier): Latin-1
        return "".join(c if ord(c) < 256 else f"<U+{ord(c):04X}>" for c in text)
    return "".join(c if ord(c) in glyphs or c in "\n\t" else f"<U+{ord(c):04X}>" for c in text)


class Styles:
    def __init__(self) -> None:
        regular, bold, mono = fonts()
        self.regular, self.bold, self.mono = regular, bold, mono
        base = ParagraphStyle("base", fontName=regular, fontSize=8.6, leading=11, textColor=INK,
                              alignment=TA_LEFT)  # fmt: skip
        self.body = base
        self.small = ParagraphStyle("small", base, fontSize=7.4, leading=8.9)
        self.muted = ParagraphStyle("muted", self.small, textColor=MUTED)
        self.mono_small = ParagraphStyle("mono", self.small, fontName=mono, fontSize=6.8, leading=8.6)
        self.label = ParagraphStyle("label", base, fontName=bold)
        self.title = ParagraphStyle("title", base, fontName=bold, fontSize=15, leading=19)
        self.kicker = ParagraphStyle("kicker", base, fontName=bold, fontSize=7.5, textColor=MUTED, leading=9)
        self.heading = ParagraphStyle("heading", base, fontName=bold, fontSize=10, leading=12, spaceBefore=5,
                                      spaceAfter=2)  # fmt: skip

    def p(self, text: str, style: ParagraphStyle | None = None, *, mono: bool = False) -> Paragraph:
        st = style or self.body
        return Paragraph(escape(printable(text, self.mono if mono else st.fontName)), st)


def _mark(c: Any, status: Status, x: float, y: float, size: float, colour: colors.Color) -> None:
    """✓, ✗ or – centred on (x, y), drawn with lines."""
    c.saveState()
    c.setStrokeColor(colour)
    c.setLineWidth(max(size / 5, 0.9))
    c.setLineCap(1)
    h = size / 2
    if status is Status.OK:
        corner = (x - h * 0.2, y - h * 0.6)
        c.lines([(x - h * 0.8, y, *corner), (*corner, x + h * 0.8, y + h * 0.7)])
    elif status is Status.FAILED:
        d = h * 0.7
        c.lines([(x - d, y - d, x + d, y + d), (x - d, y + d, x + d, y - d)])
    else:
        c.line(x - h * 0.6, y, x + h * 0.6, y)
    c.restoreState()


class Mark(Flowable):  # type: ignore[misc]
    """A check's mark and its status in words, for the checks table."""

    def __init__(self, status: Status, font: str) -> None:
        super().__init__()
        self.status, self.font = status, font
        self.width, self.height = 18 * mm, 9

    def draw(self) -> None:
        colour = COLOURS[self.status][0]
        _mark(self.canv, self.status, 4, 3.5, 7, colour)
        self.canv.setFont(self.font, 7.4)
        self.canv.setFillColor(colour)
        self.canv.drawString(11, 1, WORDS[self.status])


class VerdictHeading(Flowable):  # type: ignore[misc]
    def __init__(self, text: str, status: Status, font: str) -> None:
        super().__init__()
        self.text, self.status, self.font = text, status, font
        self.width, self.height = WIDTH - 20, 20

    def draw(self) -> None:
        colour = VERDICT_COLOURS[self.status][0]
        shown = Status.FAILED if self.status is Status.FAILED else Status.OK
        _mark(self.canv, shown, 8, 7, 13, colour)
        self.canv.setFont(self.font, 15)
        self.canv.setFillColor(colour)
        self.canv.drawString(22, 2, self.text)


class Timeline(Flowable):  # type: ignore[misc]
    """The events on an axis of time, evenly spaced in their order; more than six alternate above
    and below the axis (the page's drawTimeline)."""

    def __init__(self, events: Sequence[Event], fonts: tuple[str, str]) -> None:
        super().__init__()
        self.events, (self.font, self.bold) = list(events), fonts
        self.stagger = len(self.events) > 6
        self.width, self.height = WIDTH, (44 * mm if self.stagger else 27 * mm)

    def draw(self) -> None:
        c, n = self.canv, len(self.events)
        axis = self.height / 2 if self.stagger else self.height - 13 * mm
        left = 12 * mm
        step = (self.width - 2 * left) / (n - 1) if n > 1 else 0
        c.setStrokeColor(MUTED)
        c.setFillColor(MUTED)
        c.setLineWidth(1)
        c.line(2, axis, self.width - 2, axis)
        path = c.beginPath()
        path.moveTo(self.width - 2, axis)
        path.lineTo(self.width - 8, axis + 3)
        path.lineTo(self.width - 8, axis - 3)
        path.close()
        c.drawPath(path, stroke=0, fill=1)
        for k, e in enumerate(self.events):
            x = left + k * step
            self._event(k, e, x, axis)
            before = self.events[k - 1] if k else None
            if before is not None and before.time is not None and e.time is not None and not self.stagger:
                c.setFont(self.font, 6.5)
                c.setFillColor(MUTED)
                c.drawCentredString(x - step / 2, axis + 3, printable(gap(before.time, e.time), self.font))

    def _event(self, k: int, e: Event, x: float, axis: float) -> None:
        c = self.canv
        stroke = COLOURS[e.status][0]
        c.setStrokeColor(stroke)
        c.setFillColor(stroke if e.status is not Status.NOT_CHECKED else colors.white)
        c.setLineWidth(1.3)
        c.circle(x, axis, 5.2, stroke=1, fill=1)
        _mark(c, e.status, x, axis, 5.5, colors.white if e.status is not Status.NOT_CHECKED else stroke)
        date, when = e.time_lines()
        lines = [(e.label, self.bold, 8, INK), (e.kind, self.font, 7, MUTED), (date, self.font, 7, MUTED),
                 (when, self.font, 7, MUTED)]  # fmt: skip
        if not self.stagger:
            ys = [axis + 16, axis + 7.5, axis - 15, axis - 23.5]
        elif k % 2 == 0:
            ys = [axis + 40, axis + 31.5, axis + 22, axis + 13.5]
        else:
            ys = [axis - 16, axis - 24.5, axis - 34, axis - 42.5]
        for (text, font, size, colour), y in zip(lines, ys, strict=True):
            c.setFont(font, size)
            c.setFillColor(colour)
            c.drawCentredString(x, y, printable(text, font))


def _facts(s: Styles, rows: Sequence[tuple[str, str]], width: float) -> Table:
    mono = {"Fingerprint", "SHA-256"}
    data = [[s.p(k, s.label), s.p(v, s.mono_small if k in mono else s.body, mono=k in mono)] for k, v in rows]
    t = Table(data, colWidths=[26 * mm, width - 26 * mm], hAlign="LEFT")
    t.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0),
        ("RIGHTPADDING", (0, 0), (-1, -1), 4), ("TOPPADDING", (0, 0), (-1, -1), 1),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
    ]))  # fmt: skip
    return t


def _verdict(s: Styles, ev: Evidence) -> Table:
    colour, background = VERDICT_COLOURS[ev.status]
    inner: list[Flowable] = [VerdictHeading(ev.verdict, ev.status, s.bold), Spacer(1, 3)]
    inner.append(s.p(" ".join(ev.summary)))
    if ev.unchecked and ev.status is Status.FAILED:
        inner.append(s.p("These were not checked either:"))
    inner += [s.p(f"•  {line}") for line in ev.unchecked]
    box = Table([[inner]], colWidths=[WIDTH], hAlign="LEFT")
    box.setStyle(TableStyle([
        ("BOX", (0, 0), (-1, -1), 1.6, colour), ("BACKGROUND", (0, 0), (-1, -1), background),
        ("LEFTPADDING", (0, 0), (-1, -1), 9), ("RIGHTPADDING", (0, 0), (-1, -1), 9),
        ("TOPPADDING", (0, 0), (-1, -1), 6), ("BOTTOMPADDING", (0, 0), (-1, -1), 7),
    ]))  # fmt: skip
    return box


def _checks(s: Styles, ev: Evidence) -> Table:
    what = "What it establishes, and what the verifier found"
    head = [s.p("Status", s.label), s.p("Check", s.label), s.p(what, s.label)]
    data: list[list[Any]] = [head]
    for row in ev.checks:
        sentence = row.meaning[:1].upper() + row.meaning[1:].removesuffix(".") + "."
        meaning = [s.p(sentence, s.small)] if row.meaning else []
        style = s.muted if row.status is Status.NOT_CHECKED else s.small
        data.append([Mark(row.status, s.regular), s.p(row.name, s.label), [*meaning, s.p(row.detail, style)]])
    t = Table(data, colWidths=[23 * mm, 36 * mm, WIDTH - 59 * mm], repeatRows=1, hAlign="LEFT")
    style = [("VALIGN", (0, 0), (-1, -1), "TOP"), ("LINEBELOW", (0, 0), (-1, -1), 0.4, LINE),
             ("LEFTPADDING", (0, 0), (-1, -1), 2), ("TOPPADDING", (0, 0), (-1, -1), 1.8),
             ("BOTTOMPADDING", (0, 0), (-1, -1), 2.2)]  # fmt: skip
    for i, row in enumerate(ev.checks, start=1):
        if row.status is Status.FAILED:
            style.append(("BACKGROUND", (0, i), (-1, i), COLOURS[Status.FAILED][1]))
    t.setStyle(TableStyle(style))
    return t


def build_story(ev: Evidence, s: Styles) -> list[Flowable]:
    half = (WIDTH - 8 * mm) / 2
    facts = Table(
        [[[s.p("The document", s.heading), _facts(s, ev.document, half)],
          [s.p("The log entry", s.heading), _facts(s, ev.entry, half)]]],
        colWidths=[half + 8 * mm, half],
        hAlign="LEFT",
    )  # fmt: skip
    facts.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0),
                               ("RIGHTPADDING", (0, 0), (-1, -1), 0)]))  # fmt: skip
    story: list[Flowable] = [_verdict(s, ev), facts]
    if ev.events:
        story += [s.p("Timeline", s.heading), Timeline(ev.events, (s.regular, s.bold))]
    story += [s.p("Each check", s.heading), _checks(s, ev)]
    story += [s.p("What was trusted, and the receipt", s.heading)]
    story += [s.p(line, s.mono_small, mono=True) for line in ev.trusted]
    story += [Spacer(1, 3), _facts(s, ev.receipt, WIDTH)]
    story += [Spacer(1, 3), s.p(f"To check it again: {ev.again}", s.muted)]
    return story


def write_report(path: Path, ev: Evidence) -> None:
    """Write the one-page report of `ev` to `path` (OSError when it cannot be written)."""
    s = Styles()
    doc = SimpleDocTemplate(
        str(path), pagesize=A4, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=11 * mm,
        bottomMargin=13 * mm, title=printable(f"Evidence report — {ev.title}", s.regular),
        author="notar verify", subject="Verification of a notar receipt", creator="notar",
    )  # fmt: skip
    header = [s.p("EVIDENCE REPORT · NOTAR RECEIPT VERIFICATION", s.kicker), s.p(ev.title, s.title),
              s.p(ev.made, s.muted), Spacer(1, 6)]  # fmt: skip
    used = sum(f.wrap(WIDTH, doc.height)[1] for f in header)
    body = KeepInFrame(WIDTH, doc.height - 12 - used - 4, build_story(ev, s), mode="shrink")
    sha = dict(ev.receipt).get("SHA-256", "")

    def footer(canvas: Any, _doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(s.regular, 6.8)
        canvas.setFillColor(MUTED)
        text = printable(f"notar evidence report · receipt SHA-256 {sha}", s.regular)
        canvas.drawString(MARGIN + 6, 8 * mm, text)
        canvas.drawRightString(A4[0] - MARGIN - 6, 8 * mm, "page 1 of 1")
        canvas.restoreState()

    doc.build([*header, body], onFirstPage=footer)
