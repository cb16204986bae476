"""isoinspect: a container runtime, eBPF isolation inspector and benchmark suite.

The subpackages live in the repository's top-level folders (runtime/, inspector/, benches/,
reports/, cli/) and are mapped to ``isoinspect.<name>`` by pyproject.toml.
"""

__version__ = "0.1.0"
