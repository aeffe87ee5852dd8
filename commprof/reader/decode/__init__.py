"""Reading a trace file: gzip, the typed decode and the streamed read of large files."""
