"""Self-contained HTML reports rendered from RunRecords (``isoinspect report``).

load.py (records -> pandas DataFrames, with clear errors for bad input; several machines become
a dimension), tables.py, charts.py (matplotlib, PNG data URIs), palette.py (one colour and order
per runtime for both), findings.py (the summary's sentences, each only when its CI supports it),
compare.py (what changed between runs, beyond noise or not), render.py (the section list,
Jinja2 template in templates/, atomic write). pandas, matplotlib and Jinja2 are
imported by these modules only, never by the CLI at start-up.
"""
