"""sgdlab."""
