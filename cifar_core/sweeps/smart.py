"""What Optuna does for a sweep: the smart strategy (TPE sampler), early stopping of hopeless
runs (its median and successive-halving pruners) and parameter importance.

A sweep that uses Optuna keeps a study in a journal file beside the run store (Optuna's own
multi-process storage), one trial per run: the process that makes a run asks the study for its
settings, the process that trains it reports each epoch's test accuracy there and asks whether
to stop, and whoever advances the sweep tells the study how each run ended.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import statistics
from collections.abc import Iterator
from pathlib import Path

from cifar_core.errors import RunError
from cifar_core.runs.store import Run
from cifar_core.sweeps.space import Axis, SearchSpace

# Optuna locks a journal with a link beside it for each write (milliseconds); a process killed
# while writing leaves the link, which Optuna breaks after 30 s by default, inside a sweep's
# step. After this many seconds it is taken as left behind.
STUDY_LOCK_GRACE_S = 3


# What a run that diverged is told to be worth: a network whose outputs are NaN picks one class
# for everything, which is right for one image in ten (chance, on CIFAR-10's balanced test set).
DIVERGED_VALUE = 10.0


def _optuna():
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    return optuna


def uses_optuna(space: SearchSpace) -> bool:
    """Whether the sweep needs a study: the smart strategy, or early stopping."""
    return space.strategy == "smart" or space.prune != "none"


def distributions(space: SearchSpace) -> dict:
    """Optuna's distribution for each varied setting: a range as a float or integer range (on
    a log scale if it is one), a list (or a grid's points) as a choice."""
    optuna = _optuna()
    dists = {}
    for axis in space.varied:
        if axis.kind == "range" and space.strategy != "grid":
            cls = (optuna.distributions.IntDistribution if axis.is_int
                   else optuna.distributions.FloatDistribution)
            dists[axis.name] = cls(axis.low, axis.high, log=axis.log)
        else:
            dists[axis.name] = optuna.distributions.CategoricalDistribution(list(axis.points()))
    return dists


def _storage(journal: Path):
    _optuna()
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    journal.parent.mkdir(parents=True, exist_ok=True)
    mend_journal(journal)
    return JournalStorage(JournalFileBackend(str(journal), lock_obj=_file_lock(journal)))


def _file_lock(journal: Path):
    from optuna.storages.journal import JournalFileSymlinkLock

    return JournalFileSymlinkLock(str(journal), grace_period=STUDY_LOCK_GRACE_S)


def mend_journal(journal: Path) -> bool:
    """Drop a last line cut short (a crash or a full disk in the middle of a write): Optuna
    never read it, but the next write would land on its end and make a line no reader gets
    past. Taken under Optuna's own lock of the file, so a write in progress is never cut.
    Returns whether anything was dropped."""
    try:
        with open(journal, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return False
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":  # the common case: one byte read
                return False
    except FileNotFoundError:
        return False
    lock = _file_lock(journal)
    lock.acquire()
    try:
        data = journal.read_bytes()
        if not data or data.endswith(b"\n"):  # a write was in progress, and is done now
            return False
        with open(journal, "rb+") as f:
            f.truncate(data.rfind(b"\n") + 1)
        return True
    finally:
        lock.release()


@contextlib.contextmanager
def _readable(journal: Path) -> Iterator[None]:
    """A journal damaged past mending (a line in the middle unreadable) as a RunError in
    words, not Optuna's JSONDecodeError."""
    try:
        yield
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RunError(_damaged(journal, "a line in it cannot be read")) from None
    except ValueError as exc:
        if "log format" not in str(exc):  # (Optuna's words for a line without its end)
            raise
        raise RunError(_damaged(journal, "a line in it is cut short")) from None


def _damaged(journal: Path, detail: str) -> str:
    return (f"Its Optuna journal {journal} is damaged ({detail}), so the sweep's study cannot "
            "be read any more. Its runs so far are kept; start a new sweep to go on.")


def _pruner(space: SearchSpace):
    optuna = _optuna()
    if space.prune == "median":
        # Judge from the second finished run on, at every epoch.
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    if space.prune == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def create_study(journal: Path, study_name: str) -> None:
    """The sweep's study, maximising test accuracy (its sampler and pruner come with each
    load: _load)."""
    optuna = _optuna()
    with _readable(journal):
        optuna.create_study(storage=_storage(journal), study_name=study_name,
                            direction="maximize", load_if_exists=True)


def _load(storage, study_name: str, space: SearchSpace):
    optuna = _optuna()
    study = optuna.load_study(storage=storage, study_name=study_name,
                              pruner=_pruner(space))
    # TPE draws at random for its first few trials, then from what worked; with runs side by
    # side, the constant liar counts running trials as bad, so they are not all asked alike.
    # Each ask comes from a freshly loaded study (whichever process asks): its seed moves on
    # with the trials made, else every fresh sampler would draw the same first values. A
    # setting's repeats are trials of it too (engine._make_run): the random start counts them.
    study.sampler = optuna.samplers.TPESampler(
        seed=space.seed + len(study.get_trials(deepcopy=False)),
        n_startup_trials=min(4, max(1, (space.runs or 4) // 3)) * max(1, space.repeats),
        constant_liar=True)
    return study


def ask(journal: Path, study_name: str, space: SearchSpace,
        fixed_params: dict | None = None) -> tuple[int, dict]:
    """A new trial: (its number, the varied settings' values). With fixed_params (a grid's or
    random draw's values), the trial takes those; otherwise the smart strategy's sampler
    chooses."""
    with _readable(journal):
        study = _load(_storage(journal), study_name, space)
        if fixed_params is not None:
            study.enqueue_trial(fixed_params, skip_if_exists=False)
        trial = study.ask(distributions(space))
    return trial.number, dict(trial.params)


def tell(journal: Path, study_name: str, space: SearchSpace, runs: list[Run]) -> None:
    """Tell the study how each finished run ended (once): its accuracy, pruned, or failed (a
    run stopped by hand or that failed says nothing about its settings)."""
    with _readable(journal):
        _tell(journal, study_name, space, runs)


def _tell(journal: Path, study_name: str, space: SearchSpace, runs: list[Run]) -> None:
    optuna = _optuna()
    state = optuna.trial.TrialState
    study = _load(_storage(journal), study_name, space)
    open_trials = {t.number for t in study.get_trials(deepcopy=False,
                                                      states=(state.RUNNING, state.WAITING))}
    for run in runs:
        if run.trial not in open_trials or run.is_active:
            continue
        try:
            if run.status == "completed" and run.accuracy is not None:
                study.tell(run.trial, run.accuracy)
            elif run.status == "diverged":
                study.tell(run.trial, DIVERGED_VALUE)
            elif run.status == "pruned":
                study.tell(run.trial, state=state.PRUNED)
            else:
                study.tell(run.trial, state=state.FAIL)
        except (ValueError, RuntimeError):
            continue  # told meanwhile by another process


def stop_early_message(journal: Path, study_name: str, space: SearchSpace, trial_number: int,
                       epoch: int, accuracy: float) -> str | None:
    """Report a run's test accuracy after an epoch to the study and ask its pruner whether the
    run is hopeless: then a message saying why it stops early, else None."""
    with _readable(journal):
        return _judge(journal, study_name, space, trial_number, epoch, accuracy)


def _judge(journal: Path, study_name: str, space: SearchSpace, trial_number: int, epoch: int,
           accuracy: float) -> str | None:
    optuna = _optuna()
    storage = _storage(journal)
    study = _load(storage, study_name, space)
    # The trial to report to, by its number: the storage's own lookups (the study object keeps
    # its storage and id to itself).
    trial_id = storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(study_name), trial_number)
    trial = optuna.Trial(study, trial_id)
    trial.report(accuracy, epoch)
    if not trial.should_prune():
        return None
    others = [t.intermediate_values[epoch] for t in study.get_trials(deepcopy=False)
              if t.number != trial_number and epoch in t.intermediate_values]
    if others:
        median = statistics.median(others)
        return (f"Stopped early: behind the others after epoch {epoch} ({accuracy:.1f} % of the "
                f"test images right, against a median of {median:.1f} % for {len(others)} "
                f"other run{'s' * (len(others) != 1)} of the sweep at that epoch).")
    return f"Stopped early: behind the others after epoch {epoch} ({accuracy:.1f} %)."


def parameter_importance(space: SearchSpace, runs: list[Run]) -> dict[str, float] | None:
    """How much each varied setting mattered to the accuracy of the finished runs (Optuna's
    importance evaluator; fractions that add up to 1), most important first; None while fewer
    than 3 runs have finished or nothing varied."""
    found = _finished_and_distributions(space, runs)
    if found is None:
        return None
    finished, dists = found
    return _importance(finished, dists)


# How many times importance_ranges draws the finished runs again (with replacement), and the
# share of the draws' importances each end of a range leaves out: the middle 80 %.
RESAMPLES = 30
RANGE_TAIL = 0.1


def importance_ranges(space: SearchSpace, runs: list[Run], resamples: int = RESAMPLES,
                      seed: int = 0) -> dict[str, tuple[float, float]] | None:
    """How sure parameter_importance is: for each setting, the range (low, high fractions) of
    its importance over `resamples` draws of as many finished runs, with replacement (the
    middle 80 % of the draws). The same runs give the same ranges (`seed`). None where
    parameter_importance is None."""
    found = _finished_and_distributions(space, runs)
    if found is None:
        return None
    finished, dists = found
    rng = random.Random(seed)
    draws: dict[str, list[float]] = {name: [] for name in dists}
    for _ in range(resamples):
        drawn = [rng.choice(finished) for _ in finished]
        importance = _importance(drawn, dists) or {}
        for name in dists:  # a setting that did not vary in the draw explained nothing
            draws[name].append(importance.get(name, 0.0))
    ranges = {}
    for name, values in draws.items():
        values.sort()
        cut = int(RANGE_TAIL * len(values))
        ranges[name] = (values[cut], values[len(values) - 1 - cut])
    return ranges


def _finished_and_distributions(space: SearchSpace, runs: list[Run]
                                ) -> tuple[list[Run], dict] | None:
    """The finished runs that have a value for every varied setting, and the Optuna
    distribution of each setting that differs between the runs; None while fewer than 3
    runs have finished or nothing varied."""
    varied = [a for a in space.varied if _values_differ(a, runs)]
    finished = [r for r in runs if r.status == "completed" and r.accuracy is not None]
    if len(finished) < 3 or not varied:
        return None
    dists = {a.name: _observed_distribution(a, finished) for a in varied}
    finished = [r for r in finished if all(r.settings.get(n) is not None for n in dists)]
    if len(finished) < 3:
        return None
    return finished, dists


def _importance(finished: list[Run], dists: dict) -> dict[str, float] | None:
    optuna = _optuna()
    if len(dists) == 1:
        return {next(iter(dists)): 1.0}
    study = optuna.create_study(direction="maximize")
    for run in finished:
        study.add_trial(optuna.trial.create_trial(
            params={name: run.settings.get(name) for name in dists}, distributions=dists,
            value=run.accuracy))
    if len({repr(t.params) for t in study.trials}) < 2:
        return None  # (a draw of one run over and over)
    # PED-ANOVA (Optuna's default evaluator) asks which values the best runs have in common:
    # the best 10 % by default. In a sweep of a few runs that is one run, and then every
    # setting looks alike (a 4-run grid read as a tie where the learning rate made clearly
    # more difference than momentum: tests/test_sweeps.py keeps such a grid; bench/RESULTS.md,
    # "Figures once quoted in code comments"): the best share holds at least two runs, at most
    # half.
    target = max(0.1, min(0.5, 2 / len(study.trials)))
    evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=target)
    return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))


def _values_differ(axis: Axis, runs: list[Run]) -> bool:
    return len({repr(r.settings.get(axis.name)) for r in runs}) > 1


def _observed_distribution(axis: Axis, runs: list[Run]):
    optuna = _optuna()
    values = sorted({r.settings.get(axis.name) for r in runs if r.settings.get(axis.name)
                     is not None}, key=repr)
    if axis.kind == "range" and all(isinstance(v, (int, float)) for v in values):
        low, high = min(axis.low, *values), max(axis.high, *values)
        cls = (optuna.distributions.IntDistribution if axis.is_int
               else optuna.distributions.FloatDistribution)
        return cls(low, high, log=axis.log)
    return optuna.distributions.CategoricalDistribution(values)
