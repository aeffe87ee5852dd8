"""Uncertainty of a run's figures and predictions: ``spread`` (a per-step figure's mean, median and range),
``maths`` (noise, bands; pure numbers), ``runnoise`` (a run's noise from its records, less its stalls and slow
``episodes``), ``bands`` (every prediction's band; advice only below the current step)."""
