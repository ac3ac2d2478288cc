"""Stand-in for pytest-html (HTML report extras; the acceptance run reports in text)."""
