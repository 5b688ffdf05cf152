"""Hot web applications: ASGI and WSGI apps rebuilt by every release of their package.

``HotASGI("pkg.main:app")`` (FastAPI, Starlette ...) and
``HotWSGI("pkg.main:app")`` (Flask, Django ...) are given to the server in
place of the app; see the "Hot web apps" guide.
"""

from illunare.web._asgi import HotASGI
from illunare.web._wsgi import HotWSGI

__all__ = ["HotASGI", "HotWSGI"]
