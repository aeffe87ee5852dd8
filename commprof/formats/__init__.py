"""What commprof reads and writes, by name: raw Kineto keys (``keys``), file names (``files``) and the sidecar's
schema (``sidecar``), shared by the writer (``capture``) and the readers."""
