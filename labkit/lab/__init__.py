"""The notebook machinery: the session a notebook opens (scale, seed, device, run directory),
records and verdicts, live figures, running and sweeping notebooks, the command line, the
paper registry. It uses labkit.core; labkit.core never uses it."""
