"""Verification: jaccli's analytic derivatives against finite differences (``check``)
and the difference schemes themselves (``numdiff``: central and Richardson steps, error
estimates, the rounding-noise floor)."""
