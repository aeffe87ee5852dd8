"""PNG plots (matplotlib, Agg): the palette, the report's plots and the what-if curves."""
