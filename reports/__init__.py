"""Self-contained HTML reports rendered from RunRecords (``isoinspect report``).

load.py (records -> pandas DataFrames, with clear errors for bad input), tables.py, charts.py
(matplotlib, PNG data URIs), compare.py (what changed between runs, beyond noise or not),
render.py (Jinja2 template in templates/, atomic write). pandas, matplotlib and Jinja2 are
imported by these modules only, never by the CLI at start-up.
"""
