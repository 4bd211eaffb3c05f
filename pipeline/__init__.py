"""The predict pipeline, free of HTTP: decode -> letterbox -> model call -> task decoder -> `Result`.

The frontend, the exporter's parity gate and the benchmarks all run it; it never imports the web
layer (`frontend/`), a rule `tests/test_layers.py` checks. Renderings (`render_seed`,
`render_platform`) are pure functions of a `Result`: none of them re-runs any postprocessing.
"""
