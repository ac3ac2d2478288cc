"""Stand-in for botocore (only its exception classes are imported by nki-library's test utilities)."""
