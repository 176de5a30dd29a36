"""The report: its evidence, claims, sections, diagnostics, document model and figures."""
