"""Hot web applications: ASGI and WSGI apps rebuilt by every release of their package.

``HotASGI("pkg.main:app")`` (FastAPI, Starlette ...) and
``HotWSGI("pkg.main:app")`` (Flask, Django ...) are given to the server in
place of the app; see the "Hot web apps" guide. ``header_key``,
``cookie_key`` and ``client_key`` make the sticky keys of canary releases.
"""

from illunare.web._asgi import HotASGI
from illunare.web._keys import client_key, cookie_key, header_key
from illunare.web._wsgi import HotWSGI

__all__ = ["HotASGI", "HotWSGI", "client_key", "cookie_key", "header_key"]
