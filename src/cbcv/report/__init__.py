"""cbcv.report: the investor report — papermill runs of the notebooks into a versioned run
folder (:mod:`~cbcv.report.runner`, :mod:`~cbcv.report.runfolder`), HTML without code
(:mod:`~cbcv.report.render`, :mod:`~cbcv.report.sanitize`, :mod:`~cbcv.report.kernel_log`), the
executive summary and diagnostics gate (:mod:`~cbcv.report.summary`), tables
(:mod:`~cbcv.report.tables`), the scale page (:mod:`~cbcv.report.scale`) and provenance
(:mod:`~cbcv.report.provenance`).

May import: pipeline, plots and every layer below them; never the CLI.
"""
