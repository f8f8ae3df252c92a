"""Which providers serve a request and in what order, read from an immutable snapshot. Pure."""
