"""Token stores: the store protocol and its backends (memory, file)."""
