"""The built-in studies (importing this package registers them) and :func:`all_studies`."""

from sgdlab.lab.studies import (  # noqa: F401  (registers the built-in studies)
    efficiency,
    noise_floor,
    oscillation,
    rates,
    schedules,
)
from sgdlab.lab.study import STUDIES, Study

#: the order of the report: the article's order of the claims
ORDER = ("noise-floor", "schedules", "rates", "efficiency", "oscillation")


def all_studies() -> dict[str, type[Study]]:
    """The registered studies, in the report's order (built-ins first)."""
    rank = {name: i for i, name in enumerate(ORDER)}
    return dict(sorted(STUDIES.items(), key=lambda kv: rank.get(kv[0], len(rank))))
