"""``streamduck verify``: proof that a deployment works end to end (see :mod:`shared.verify.core`)."""

from shared.verify.core import DEFAULT_TIMEOUT, Source, VerifyReport, run_verify

__all__ = ["DEFAULT_TIMEOUT", "Source", "VerifyReport", "run_verify"]
