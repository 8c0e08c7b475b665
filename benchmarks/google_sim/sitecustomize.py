"""Started by every Airflow process of the Google deployment (benchmarks/deployment_scale.py puts this
directory on PYTHONPATH): the Google provider's gRPC channels go to the simulator, in plaintext.

The same two-line change as benchmarks/anchor.py's ``patch_channels``, done lazily where
``SIM_GRPC_TARGET`` is set; nothing else in the provider changes.
"""

from __future__ import annotations

import os


def _patch(target: str) -> None:
    import grpc
    from google.api_core import grpc_helpers, grpc_helpers_async

    grpc_helpers_async.create_channel = lambda *args, **kwargs: grpc.aio.insecure_channel(target)
    grpc_helpers.create_channel = lambda *args, **kwargs: grpc.insecure_channel(target)


if os.environ.get("SIM_GRPC_TARGET"):
    _patch(os.environ["SIM_GRPC_TARGET"])
