"""The shop's FastAPI application."""

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from shop.ops import MONITOR
from shop.routes import router

app = FastAPI(title="shop")
app.include_router(router)


@app.middleware("http")
async def measure(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Record each request's latency and outcome for the health gate; a bug answers 500 JSON."""
    started = time.perf_counter()
    try:
        response = await call_next(request)
    except Exception as error:  # any bug of a handler: a 500 saying what failed
        response = JSONResponse({"error": str(error)}, status_code=500)
    MONITOR.record("shop", "latency", time.perf_counter() - started)
    MONITOR.record("shop", "error_rate", 1.0 if response.status_code >= 500 else 0.0)
    return response
