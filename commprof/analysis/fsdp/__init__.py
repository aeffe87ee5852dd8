"""FSDP2 family: units and phases, the schedule replay and the advice."""
