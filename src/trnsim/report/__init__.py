"""Reports: Perfetto traces (and later plots, HTML)."""
