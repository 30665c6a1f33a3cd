"""The refresh core: the in-process singleflight and the token manager that keeps the invariant."""
