"""The profiler's ``[memory]`` events: peaks, timelines and live bytes."""
