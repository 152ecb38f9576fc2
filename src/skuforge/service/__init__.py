"""The web service: a REST API, a server-rendered console and a background worker (`skuforge serve`).

Needs the `service` extra (fastapi, uvicorn, python-multipart, itsdangerous, croniter; psycopg for a
PostgreSQL store). Public API: `create_app`, `ServiceOptions`, `Worker`.
"""

from skuforge.service.app import create_app
from skuforge.service.context import ServiceOptions
from skuforge.service.worker import Worker

__all__ = ["ServiceOptions", "Worker", "create_app"]
