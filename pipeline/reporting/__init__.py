"""Rendering only: the document model (Markdown and HTML), the report's sections and first screen, every figure,
the suite's pages. No statistics here: the numbers come from ``analysis``."""
