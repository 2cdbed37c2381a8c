"""The space the Sweep page's form describes: how each setting can be given (one value, a list,
a range), what the fields hold for one setting, and the search space they make with what is
wrong with it in the settings' own words.

Kept out of the page so that what the form starts is built and checked by a tested function.
"""

from __future__ import annotations

from dataclasses import dataclass

from cifar_core.sweeps.space import Axis, SearchSpace, SweepError, parse_axis, space_problems
from cifar_core.training.config import settings

MODES = ("fixed", "list", "range")


def modes_for(name: str) -> tuple[str, ...]:
    """How a setting can be given in a sweep: numbers as a value, a list or a range; choices
    and switches as a value or a list; a setting that is not `sweepable` (where runs train, how
    often they report: nothing about what a network learns) as one value."""
    spec = settings()[name]
    if not spec.sweepable:
        return ("fixed",)
    return MODES if spec.kind in (int, float) else MODES[:2]


@dataclass(frozen=True)
class AxisForm:
    """What the Sweep page's fields hold for one setting."""

    name: str
    mode: str = "fixed"
    value: object = None  # fixed: the value (None: the setting's 'none' meaning)
    text: str = ""  # list of numbers: '0.001, 0.01, 0.1'
    chosen: tuple = ()  # list of choices (or of on/off)
    low: float | None = None  # range
    high: float | None = None
    points: int | None = None
    log: bool = False

    def axis(self) -> Axis | None:
        """The setting's axis; None for a fixed random seed (the sweep then draws one seed for
        all its runs). SweepError for list text that cannot be read."""
        if self.mode == "fixed":
            return None if self.name == "seed" and self.value is None else Axis(self.name,
                                                                                  (self.value,))
        if self.mode == "range":
            return Axis(self.name, low=self.low, high=self.high,
                        count=int(self.points) if self.points else None, log=bool(self.log))
        spec = settings()[self.name]
        if spec.kind in (int, float):
            if not self.text.strip():
                return Axis(self.name, ())
            return parse_axis(self.name, self.text.replace(";", ","))
        return Axis(self.name, tuple(self.chosen))


def build_space(forms: list[AxisForm], strategy: str = "grid", runs: int | None = None,
                minutes: float | None = None, prune: str = "none", repeats: int = 1
                ) -> tuple[SearchSpace, dict[str, str]]:
    """The space the form describes and what is wrong with it, name -> message (empty: it can
    start): the settings' own messages (search_space.space_problems), and 'space' when
    nothing varies. `repeats`: each setting drawn runs this many times, seeds seed, seed + 1,
    ...; an empty field (None) is once."""
    axes, problems = [], {}
    for form in forms:
        try:
            axis = form.axis()
        except SweepError as exc:
            problems[form.name] = str(exc)
            continue
        if axis is not None:
            axes.append(axis)
    space = SearchSpace(axes=tuple(axes), strategy=strategy, runs=runs or None,
                        minutes=minutes or None, prune=prune,
                        repeats=1 if repeats is None else repeats)
    if problems:
        return space, problems
    problems = space_problems(space)
    if not space.varied and set(problems) <= {"space"}:  # (the form's own words for it)
        problems = {"space": "Nothing varies yet: give a setting a list or a range of values."}
    return space, problems
