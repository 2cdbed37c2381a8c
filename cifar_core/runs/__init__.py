"""Runs: every training kept, in one SQLite store and one folder per run.

`store` is the run store (`RunStore`, `Run`), on `store_file` (schema versions, migrations,
connections), with `faults` (a damaged file moved aside and recovered, a full disk, in plain
words) and `folders` (no stored path leads outside the runs folder). `jobs` trains each run in
its own OS process; `pipeline` is one run from data to saved network, in that process. What the
pages and the CLI show of runs: `views` (tables and phrases), `curves` and `spread` (which loss
reports a chart draws), `picked` (the runs a person ticked), `names` (names kept short and
shown as text), `annotations` (a run's name, note and tags, checked) and `naming` (every run's
display name, made from what differs where it has none of its own).
"""

from cifar_core.runs.jobs import JobRunner
from cifar_core.runs.store import Run, RunStore, default_runs_dir

__all__ = ["JobRunner", "Run", "RunStore", "default_runs_dir"]
