"""The Django project's ASGI entry points, as `django-admin startproject`
makes them, plus Channels for WebSockets.

``django_application``: Django's own ``get_asgi_application()`` (HTTP only);
``application``: a Channels ``ProtocolTypeRouter`` that sends HTTP there
and the WebSocket ``/ws/chat`` to :class:`~djangoproj.consumers.ChatConsumer`.
Neither speaks lifespan: dumbwaiter (``--lifespan auto``) serves them
without.  The WSGI entry point (``wsgi.py``) is unchanged."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djangoproj.asgi_settings")
# Django is set up before anything imports models or consumers.
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from djangoproj.consumers import ChatConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": URLRouter([path("ws/chat", ChatConsumer.as_asgi())]),
    }
)
