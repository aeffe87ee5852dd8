"""Uncertainty of a run's figures and predictions: ``maths`` (spreads, noise, bands; pure numbers), ``runnoise`` (a
run's noise from its records), ``bands`` (every prediction's band; advice only below the current step)."""
