"""One module per flow; each runs locally with `python -m <package>.flows.<name>`."""
