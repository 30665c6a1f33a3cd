"""Helpers with no domain knowledge: URLs, untrusted-input readers, redaction, HTTP sessions, fork safety."""
