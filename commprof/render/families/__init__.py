"""Each analysis family's part of the report (summary.json keys, terminal and HTML tables, plots), registered as a
``View`` in ``render/views.py``."""
