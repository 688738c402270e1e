"""cbcv.core: what every layer stands on, importing nothing else of cbcv.

* :mod:`~cbcv.core.units`: time units (days per unit, periods per year) — the one table of them;
* :mod:`~cbcv.core.discount`: rates and discount factors (period, continuous, horizons);
* :mod:`~cbcv.core.draws`: per-draw shapes, statistics and intervals of posterior draws;
* :mod:`~cbcv.core.chunks`: splitting (draws × rows) work into bounded-memory chunks;
* :mod:`~cbcv.core.errors`, :mod:`~cbcv.core.paths`: the error classes and the project folders;
* files written safely: :mod:`~cbcv.core.jsonio` (strict JSON), :mod:`~cbcv.core.safe_csv`
  (spreadsheet-safe CSV), :mod:`~cbcv.core.cache` (atomic writes, locks, content keys),
  :mod:`~cbcv.core.outputs` (what a command owns in its folder), :mod:`~cbcv.core.interrupt`;
* text in and out: :mod:`~cbcv.core.yaml_loader` (bounded, safe YAML),
  :mod:`~cbcv.core.config_checks` (range and distribution checks of config values),
  :mod:`~cbcv.core.escape` (escaping of data-derived text for HTML, Markdown and figures).

May import: the standard library and third-party packages only (checked by import-linter,
``[tool.importlinter]`` in ``pyproject.toml``).
"""
