"""What a chain is: its keys, its token set and its stored record. Imports nothing above _util."""
