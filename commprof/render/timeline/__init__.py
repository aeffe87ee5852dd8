"""report.html's interactive timeline: its embedded data (``data``), the HTML section and inlined assets (``page``)."""
