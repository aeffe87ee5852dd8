"""Production monitor family: hang diagnosis, slow ranks over a whole job, and the diagnosis that joins them."""
