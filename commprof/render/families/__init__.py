"""Family renderers that draw something of their own: FSDP2 and the production monitor."""
