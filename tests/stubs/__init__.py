"""Local HTTP servers that speak third-party wire formats, for tests of the real client libraries."""
