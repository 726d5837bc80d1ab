"""The built-in studies (importing this package registers them) and :func:`all_studies`."""

from sgdlab.lab.studies import (  # noqa: F401  (registers the built-in studies)
    batch_variance,
    critical_batch,
    debugging,
    efficiency,
    escape,
    flat_minima,
    implicit_reg,
    langevin_gibbs,
    lr_scaling,
    noise_floor,
    oscillation,
    rates,
    schedules,
    sources,
    throughput,
)
from sgdlab.lab.study import STUDIES, Study

#: the order of the report: the article's order — §2 the sources of randomness, §3.1 the
#: benefits of noise, §3.2 its price, §4 the minibatch-size dial, §5 debugging
ORDER = (
    "sources", "efficiency", "escape", "langevin", "flat-minima", "implicit-regularization",
    "oscillation", "noise-floor", "schedules", "rates",
    "batch-variance", "critical-batch", "lr-scaling", "throughput", "debugging",
)  # fmt: skip

#: the article's sections, for grouping reports: (title, studies)
SECTIONS = (
    ("§2 Sources of randomness", ("sources",)),
    ("§3.1 The benefits of noise", ("efficiency", "escape", "langevin", "flat-minima",
                                    "implicit-regularization")),
    ("§3.2 The price of noise", ("oscillation", "noise-floor", "schedules", "rates")),
    ("§4 The minibatch size b", ("batch-variance", "critical-batch", "lr-scaling",
                                 "throughput")),
    ("§5 Debugging", ("debugging",)),
)  # fmt: skip


def all_studies() -> dict[str, type[Study]]:
    """The registered studies, in the report's order (built-ins first)."""
    rank = {name: i for i, name in enumerate(ORDER)}
    return dict(sorted(STUDIES.items(), key=lambda kv: rank.get(kv[0], len(rank))))


def article_section(study: str) -> str:
    """The title of the article section a study belongs to ("other" for a study of one's own)."""
    return next((title for title, names in SECTIONS if study in names), "Other studies")
