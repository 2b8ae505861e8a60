"""`GET /api/v1/ping`: the framework ceiling of the benchmarks (bench/run.py, docs/performance.md).

A DRF view that does nothing but answer, on the same server, middleware and settings as the real
operations: no authentication, no database, no Redis. The booking storm's throughput is reported as a
ratio of this endpoint's. Not part of the published contract (excluded from the OpenAPI schema), like
`/healthz`; it reveals nothing.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView


@extend_schema(exclude=True)
class PingApi(APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)

    def get(self, request: Any) -> Response:
        return Response({"status": "ok"})
