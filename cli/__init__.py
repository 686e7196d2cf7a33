"""`autodm`, the operator's command line: an entry point, so it may import services."""
