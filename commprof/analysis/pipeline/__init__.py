"""Pipeline family: stages and the partition advisor."""
