"""The report's document model: one content, Markdown and self-contained HTML, volatile blocks marked."""

from __future__ import annotations

from pathlib import Path

from pipeline.reporting.document import VOLATILE_END, VOLATILE_START, Document, strip_volatile


def test_the_same_blocks_render_to_markdown_and_html(tmp_path: Path) -> None:
    figure = tmp_path / "f.png"
    figure.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    doc = Document("T")
    doc.heading("1. Answer")
    doc.paragraph("**yes** with `code`")
    doc.table(["a", "b"], [["1", "x|y"]])
    doc.paragraph("run 123", volatile=True)
    doc.figure(figure, "caption")
    md, html = doc.markdown(tmp_path), doc.html()
    assert md.startswith("# T\n\n## 1. Answer\n\n**yes** with `code`\n\n| a | b |\n|---|---|\n| 1 | x\\|y |")
    assert "![caption](f.png)" in md and f"{VOLATILE_START}\nrun 123\n{VOLATILE_END}" in md
    assert "<strong>yes</strong> with <code>code</code>" in html and "data:image/png;base64," in html
    assert strip_volatile(md) == md.replace("\nrun 123\n", "")
