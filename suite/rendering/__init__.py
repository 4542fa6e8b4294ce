"""Rendering: the report as markdown, LaTeX or csv, and its figures."""
