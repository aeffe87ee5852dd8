"""Memory family: peak memory per rank and what communication costs in it."""
