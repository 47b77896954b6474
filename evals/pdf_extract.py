"""Which PDF text extractor reads multi-column articles best: pypdf or pdfplumber.

Writes a few PDFs with fpdf2 whose reading order is known (one, two and three columns; columns
written one after another, as most generators do, and written line by line across the page, as
some do), extracts them with each library, and compares the result with the text as written:

- sentences kept: the share of written sentences found word for word in the extraction (lines
  joined by spaces) — what an extractive answer needs, since it quotes whole sentences;
- order: difflib's ratio between the written and the extracted word sequences (1.0 = same words
  in the same order);
- ms/page: extraction time.

    python -m evals.pdf_extract            # prints the table recorded in evals/README.md

The PDF writer here is also what the tests use to make their PDFs (make_pdf).
"""
from __future__ import annotations

import difflib
import io
import time
from pathlib import Path
from typing import Sequence

# Neutral filler: each sentence is made unique by its number, so "found word for word" is exact.
_TEMPLATES = [
    "The river barge number {n} carried grain to the northern mills before the frost.",
    "Engineers tested pump {n} for three weeks and found that it used less power than planned.",
    "A survey of {n} households showed that most families cycle to the market on weekends.",
    "The museum opened gallery {n}, which shows maps drawn by sailors in the last century.",
    "Farmers near the valley planted {n} hectares of barley after the late spring rains.",
    "The council approved budget line {n} to repair the stone bridge over the canal.",
    "Researchers counted {n} species of moth in the forest during a single summer night.",
    "The orchestra rehearsed symphony {n} in the old hall, whose roof was fixed in May.",
]


def paragraphs(count: int, per: int = 3, seed: int = 0) -> list[str]:
    """``count`` paragraphs of ``per`` unique sentences each."""
    out, n = [], seed * 1000
    for _ in range(count):
        sentences = []
        for _ in range(per):
            n += 1
            sentences.append(_TEMPLATES[n % len(_TEMPLATES)].format(n=n))
        out.append(" ".join(sentences))
    return out


def make_pdf(path: Path, pages: Sequence[Sequence[str]], columns: int = 1, order: str = "columns",
             title: str | None = None, header: str | None = None, footer: bool = False) -> Path:
    """Write a PDF: page i holds the paragraphs ``pages[i]`` (a title above the first), laid out in
    ``columns`` columns of Helvetica 10 pt. ``order`` "columns" writes each column top to bottom
    before the next (reading order); "rows" writes every visual line across all columns before the
    next line, so the content stream interleaves the columns; "flow" lets fpdf2's own text_columns
    flow and justify the text. ``header`` is printed on top of each
    page, and ``footer`` adds "Page N of M" at the bottom."""
    from fpdf import FPDF

    pdf = FPDF(format="A4", unit="mm")
    pdf.set_auto_page_break(False)
    pdf.set_margins(15, 15, 15)
    width = 210 - 30
    gutter = 8
    col_w = (width - gutter * (columns - 1)) / columns
    line_h = 4.6
    for number, paras in enumerate(pages, start=1):
        pdf.add_page()
        y = 15
        if header:
            pdf.set_font("Helvetica", size=8)
            pdf.set_xy(15, 8)
            pdf.cell(width, 4, header)
        if title and number == 1:
            pdf.set_font("Helvetica", "B", 16)
            pdf.set_xy(15, y)
            pdf.multi_cell(width, 7, title)
            y = pdf.get_y() + 4
        pdf.set_font("Helvetica", size=10)
        if order == "flow":
            pdf.set_y(y)
            with pdf.text_columns(ncols=columns, gutter=gutter, text_align="J", line_height=1.15, balance=True) as cols:
                for para in paras:
                    cols.write(para + "\n\n")
            _footer(pdf, footer, number, len(pages), width)
            continue
        lines: list[str] = []  # the page's lines in reading order; "" between paragraphs
        for para in paras:
            lines.extend(pdf.multi_cell(col_w, line_h, para, dry_run=True, output="LINES", align="L"))
            lines.append("")
        per_col = -(-len(lines) // columns)
        cols = [lines[i * per_col:(i + 1) * per_col] for i in range(columns)]
        cells = [(c, r) for c in range(columns) for r in range(len(cols[c]))] if order == "columns" else \
            [(c, r) for r in range(per_col) for c in range(columns) if r < len(cols[c])]
        for c, r in cells:
            if cols[c][r]:
                pdf.set_xy(15 + c * (col_w + gutter), y + r * line_h)
                pdf.cell(col_w, line_h, cols[c][r])
        _footer(pdf, footer, number, len(pages), width)
    pdf.output(str(path))
    return Path(path)


def _footer(pdf, footer: bool, number: int, total: int, width: float) -> None:
    if footer:
        pdf.set_font("Helvetica", size=8)
        pdf.set_xy(15, 285)
        pdf.cell(width, 4, f"Page {number} of {total}", align="C")


def extract_pypdf(data: bytes) -> list[str]:
    from pypdf import PdfReader

    return [p.extract_text() or "" for p in PdfReader(io.BytesIO(data)).pages]


def extract_pdfplumber(data: bytes) -> list[str]:
    import pdfplumber

    with pdfplumber.open(io.BytesIO(data)) as pdf:
        return [p.extract_text() or "" for p in pdf.pages]


EXTRACTORS = {"pypdf": extract_pypdf, "pdfplumber": extract_pdfplumber}
LAYOUTS = [("1 column", 1, "columns"), ("2 columns", 2, "columns"), ("3 columns", 3, "columns"),
           ("2 columns, fpdf2 text_columns (justified)", 2, "flow"),
           ("2 columns, written across", 2, "rows"), ("3 columns, written across", 3, "rows")]


def score(written: Sequence[str], extracted: str) -> tuple[float, float]:
    """(share of written sentences found word for word, word-order similarity)."""
    flat = " ".join(extracted.split())
    sentences = [s.strip() + "." for p in written for s in p.split(".") if s.strip()]
    kept = sum(s in flat for s in sentences) / len(sentences)
    words = " ".join(written).split()
    order = difflib.SequenceMatcher(None, words, flat.split(), autojunk=False).ratio()
    return kept, order


def main() -> None:
    import tempfile

    print("| layout | extractor | sentences kept | order | ms/page |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, columns, order in LAYOUTS:
            pages = [paragraphs(6, seed=i) for i in range(3)]
            pdf = make_pdf(Path(tmp) / "a.pdf", pages, columns=columns, order=order)
            data = pdf.read_bytes()
            for name, extract in EXTRACTORS.items():
                extract(data)  # warm-up: imports
                t0 = time.perf_counter()
                got = extract(data)
                ms = (time.perf_counter() - t0) * 1e3 / len(pages)
                kept, similar = zip(*(score(w, g) for w, g in zip(pages, got)))
                print(f"| {label} | {name} | {sum(kept) / len(kept):.3f} | {sum(similar) / len(similar):.3f} | {ms:.1f} |")


if __name__ == "__main__":
    main()
