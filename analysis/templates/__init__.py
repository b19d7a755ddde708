"""Jinja2 templates of the analysis reports (package data, read by analysis.templating)."""
