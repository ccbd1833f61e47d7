"""trainrx: the Python SDK of the trainrx training service.

>>> from trainrx import Client
>>> client = Client()                       # TRAINRX_URL, TRAINRX_TOKEN
>>> job = client.jobs.create("model.yaml")
>>> job = client.jobs.wait(job.id, progress=True)
>>> client.jobs.diagnosis(job.id).verdict
"""

from trainrx._client import Client
from trainrx._constants import (DEFAULT_BASE_URL, DEFAULT_MAX_RETRIES, DEFAULT_POLL_INTERVAL, DEFAULT_TIMEOUT,
                                DEFAULT_WAIT_TIMEOUT)
from trainrx._specs import load_spec
from trainrx._version import __version__
from trainrx.errors import (APIConnectionError, APIError, APIStatusError, APITimeoutError, AuthenticationError,
                            BadRequestError, ConflictError, InternalServerError, NotFoundError,
                            PermissionDeniedError, RateLimitError, SpecError, TrainrxError,
                            UnprocessableEntityError, WaitTimeoutError)
from trainrx.types import (Curves, Dataset, Diagnosis, EndEvent, EpochEvent, Finding, Job, JobError, JobEvent,
                           JobRequest, Identity, Progress, StatusEvent, Suggestion, Summary, Sweep, Timings, Token)

__all__ = [
    "Client", "__version__", "load_spec",
    "DEFAULT_BASE_URL", "DEFAULT_MAX_RETRIES", "DEFAULT_POLL_INTERVAL", "DEFAULT_TIMEOUT", "DEFAULT_WAIT_TIMEOUT",
    "TrainrxError", "APIError", "APIConnectionError", "APITimeoutError", "APIStatusError", "BadRequestError",
    "AuthenticationError", "PermissionDeniedError", "NotFoundError", "ConflictError", "UnprocessableEntityError",
    "RateLimitError", "InternalServerError", "SpecError", "WaitTimeoutError",
    "Job", "Progress", "Summary", "Timings", "JobError", "Curves", "Diagnosis", "Finding", "Suggestion", "Dataset",
    "JobEvent", "StatusEvent", "EpochEvent", "EndEvent", "Token", "Identity", "JobRequest", "Sweep",
]
