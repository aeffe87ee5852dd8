"""Pure analyses of a ``Run``: functions that return records; nothing here prints, plots, reads files or mutates
its input.  ``analyze.analyze`` orchestrates them; ``findings`` holds every sentence."""
