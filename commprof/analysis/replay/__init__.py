"""The one replay core shared by the DDP replay (``analysis/ddp/whatif.py``) and the FSDP2 replay
(``analysis/fsdp/replay.py``): calibration, the α-β model choice, the median step, a prediction's error and the
advice thresholds."""
