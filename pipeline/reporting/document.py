"""A tiny document model rendered to GitHub Markdown and to self-contained HTML.

Volatile content (timings, dates, run ids) lives in marked blocks, so two reports of the same
params can be compared with those blocks removed (``strip_volatile``).
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

VOLATILE_START, VOLATILE_END = "<!-- volatile:start -->", "<!-- volatile:end -->"
_VOLATILE = re.compile(re.escape(VOLATILE_START) + ".*?" + re.escape(VOLATILE_END), re.S)


@dataclass
class Block:
    """One piece of the document."""

    kind: str  # heading | paragraph | list | table | figure
    text: str = ""
    level: int = 2
    items: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    path: Path | None = None
    volatile: bool = False


class Document:
    """Blocks in order; the same content renders to Markdown and HTML."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.blocks: list[Block] = []

    def heading(self, text: str, level: int = 2) -> None:
        """A section heading."""
        self.blocks.append(Block("heading", text, level))

    def paragraph(self, text: str, volatile: bool = False) -> None:
        """A paragraph (inline `code` and **bold** are kept)."""
        self.blocks.append(Block("paragraph", text, volatile=volatile))

    def bullets(self, items: list[str], volatile: bool = False) -> None:
        """A bulleted list."""
        self.blocks.append(Block("list", items=list(items), volatile=volatile))

    def table(self, header: list[str], rows: list[list[str]], volatile: bool = False) -> None:
        """A table that renders on GitHub."""
        self.blocks.append(Block("table", header=header, rows=rows, volatile=volatile))

    def figure(self, path: Path, caption: str, volatile: bool = False) -> None:
        """A PNG figure: linked from Markdown, embedded in HTML (``volatile``: drawn from timings)."""
        self.blocks.append(Block("figure", caption, path=path, volatile=volatile))

    def markdown(self, base: Path) -> str:
        """GitHub-flavoured Markdown; figure paths relative to ``base``."""
        out = [f"# {self.title}", ""]
        for block in self.blocks:
            out.extend(_mark(block, _md(block, base)))
        return "\n".join(out).rstrip() + "\n"

    def html(self) -> str:
        """One self-contained HTML page (figures embedded as data URIs)."""
        body = [f"<h1>{_inline(self.title)}</h1>"]
        for block in self.blocks:
            body.extend(_mark(block, [_html(block)]))
        return _PAGE.format(title=html.escape(self.title), body="\n".join(body))


def strip_volatile(text: str) -> str:
    """The document without its marked volatile blocks."""
    return _VOLATILE.sub(VOLATILE_START + VOLATILE_END, text)


def _mark(block: Block, lines: list[str]) -> list[str]:
    return [VOLATILE_START, *lines, VOLATILE_END, ""] if block.volatile else [*lines, ""]


def _md(block: Block, base: Path) -> list[str]:
    if block.kind == "heading":
        return ["#" * block.level + " " + block.text]
    if block.kind == "paragraph":
        return [block.text]
    if block.kind == "list":
        return [f"- {item}" for item in block.items]
    if block.kind == "table":
        lines = ["| " + " | ".join(block.header) + " |", "|" + "|".join(["---"] * len(block.header)) + "|"]
        return lines + ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in block.rows]
    assert block.path is not None
    return [f"![{block.text}]({block.path.relative_to(base).as_posix()})", "", f"*{block.text}*"]


def _inline(text: str) -> str:
    escaped = html.escape(text)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)


def _html(block: Block) -> str:
    if block.kind == "heading":
        return f"<h{block.level}>{_inline(block.text)}</h{block.level}>"
    if block.kind == "paragraph":
        return f"<p>{_inline(block.text)}</p>"
    if block.kind == "list":
        return "<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in block.items) + "</ul>"
    if block.kind == "table":
        head = "".join(f"<th>{_inline(cell)}</th>" for cell in block.header)
        rows = "".join("<tr>" + "".join(f"<td>{_inline(cell)}</td>" for cell in row) + "</tr>" for row in block.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    assert block.path is not None
    data = base64.b64encode(block.path.read_bytes()).decode()
    return (
        f'<figure><img alt="{html.escape(block.text)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_inline(block.text)}</figcaption></figure>"
    )


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 62rem; margin: 2rem auto;
       padding: 0 1rem; line-height: 1.5; color: #1f2328; }}
table {{ border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; max-width: 100%; }}
th, td {{ border: 1px solid #d0d7de; padding: 0.3rem 0.6rem; text-align: right; overflow-wrap: break-word; }}
th:first-child, td:first-child {{ text-align: left; }}
/* cells break at spaces (numbers and verdict words stay whole); only code breaks anywhere */
thead {{ background: #f6f8fa; }}
code {{ background: #f6f8fa; padding: 0.1rem 0.3rem; border-radius: 4px; overflow-wrap: anywhere; }}
li, p {{ overflow-wrap: anywhere; }}
figure {{ margin: 1rem 0; }} img {{ max-width: 100%; }} figcaption {{ color: #57606a; font-size: 0.9rem; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""
