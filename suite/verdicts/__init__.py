"""Verdicts: published numbers and relations judged against the current results."""
