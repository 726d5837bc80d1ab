"""The built-in studies (importing this package registers them)."""

from sgdlab.lab.studies import (  # noqa: F401
    efficiency,
    noise_floor,
    oscillation,
    rates,
    schedules,
)

#: the order of the report: the article's order of the claims
ORDER = ("noise-floor", "schedules", "rates", "efficiency", "oscillation")
