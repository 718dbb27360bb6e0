"""Many-run work: the one scheduler (scheduler.py; isolate.py runs a task in a killable child process on a
Dask worker), sweep specs and planning (spec.py), run records (records.py), the sweep step that executes
them (execute.py) and the summaries (summary.py). spu_sim.sweep chains them; nothing here draws a plot."""
