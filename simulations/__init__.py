"""The engine: virtual patients, the vectorised trial loop, the parallel runner,
exact enumeration and trial-level results."""

__all__: list[str] = []
