"""Reports: Perfetto traces (perfetto.py), trace summaries, plots (plots/), the self-contained HTML report
(html.py). Import the submodules; this package stays light so writing a trace does not load matplotlib."""
