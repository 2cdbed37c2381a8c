"""How often a training reports its mean loss (Log every): sized to the run unless the user set
it, and a value set that would give the run a single report lowered, so that every run's loss
chart has points (issue 26: runs of 125-500 minibatches kept a preset's 2,000 or 250 and drew
one dot).

A config's `log_every` None means automatic. The training loop, the pipeline that tells the
command line, the pages and the run views all ask `log_every_for` what a run reports.
"""

from __future__ import annotations

import math

# Automatic Log every gives a run at least this many loss reports: enough for a curve to
# show its shape, few enough for the run store (a report is a stored event).
MIN_REPORTS = 20
# A value set by hand that gives fewer reports than this is lowered to the automatic one.
FEWEST_REPORTS = 2
# Readable numbers of minibatches: these times a power of ten (1, 2, 5, 10, 20, 25, 50, ...).
READABLE = (1, 2, 2.5, 5)


def minibatches_per_epoch(images_per_epoch: int, batch_size: int) -> int:
    """How many minibatches an epoch of `images_per_epoch` images takes (the last one may be
    smaller)."""
    return max(1, math.ceil(images_per_epoch / batch_size))


def report_count(log_every: int, per_epoch: int, epochs: int) -> int:
    """How many loss reports a run makes: one every `log_every` minibatches, and one at each
    epoch's end for the minibatches since the last (the loop starts each epoch afresh)."""
    return epochs * math.ceil(per_epoch / log_every)


def automatic_log_every(per_epoch: int, epochs: int) -> int:
    """The largest readable number of minibatches (1, 2, 2.5 or 5 times a power of ten) that
    gives the run at least MIN_REPORTS reports; 1 for a run of fewer minibatches than that."""
    target = per_epoch * epochs / MIN_REPORTS
    best = 1
    for power in range(int(math.log10(max(target, 1))) + 1):
        for mantissa in READABLE:
            value = mantissa * 10 ** power
            if value == int(value) and value <= target:
                best = max(best, int(value))
    return best


def log_every_for(log_every: int | None, per_epoch: int, epochs: int) -> tuple[int, str | None]:
    """What a run of `epochs` epochs of `per_epoch` minibatches reports every, and why where it
    is not the value set: (minibatches, None) for the automatic value (`log_every` None) or a
    value set that gives at least FEWEST_REPORTS reports; (the automatic value, a sentence
    saying so) for a value set that would give fewer."""
    automatic = automatic_log_every(per_epoch, epochs)
    if log_every is None:
        return automatic, None
    if (report_count(log_every, per_epoch, epochs) >= FEWEST_REPORTS
            or report_count(automatic, per_epoch, epochs) < FEWEST_REPORTS):
        return log_every, None
    total = per_epoch * epochs
    reports = report_count(automatic, per_epoch, epochs)
    return automatic, (f"Log every {log_every:,} would give this run a single loss report (it "
                       f"has {total:,} minibatch{'es' * (total != 1)}), a chart of one dot: it "
                       f"reports every {automatic:,} instead ({reports:,} points).")


def log_every_text(log_every: int | None) -> str:
    """How often a run's settings ask for a report, in words: 'every 2,000 batches', 'every
    batch', 'about 20 times a run' (automatic)."""
    if log_every is None:
        return f"about {MIN_REPORTS} times a run"
    return "every batch" if log_every == 1 else f"every {log_every:,} batches"


def planned_log_every(values: dict, images_per_epoch: int) -> tuple[int | None, str | None]:
    """log_every_for a form's settings (a dict of TrainConfig's fields) training on
    `images_per_epoch` images; (None, None) while its epochs or batch size are not yet a
    whole number above 0 (the form's checks say so)."""
    epochs, batch_size = values.get("epochs"), values.get("batch_size")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
               for v in (epochs, batch_size, images_per_epoch)):
        return None, None
    log_every = values.get("log_every")
    if log_every is not None and (isinstance(log_every, bool) or not isinstance(log_every, int)
                                  or log_every < 1):
        return None, None
    return log_every_for(log_every, minibatches_per_epoch(images_per_epoch, batch_size), epochs)
