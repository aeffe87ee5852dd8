"""DDP family: gradient buckets, the view of one rank the replay needs, the what-if replay, the advisor and the
measured operation rates."""
