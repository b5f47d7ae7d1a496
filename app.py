"""Relais: builds the web application, and the ``python app.py COMMAND`` entry point.

Only wiring lives here: no SQL, no handlers. The core is the ``relais`` package; the HTTP
handlers are in ``views/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, pass_context
from litestar import Litestar
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import State
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from relais import capacity, i18n, retention, setup
from relais.config import Config, from_env
from views import (admin, admin_open, admin_ops, admin_terms, audit, auth, errors, files, institutions, links, middleware,
                   pages, partners, request_links, request_uploads, requests, shares, spaces, two_factor, uploads)

ROOT = Path(__file__).resolve().parent


def _template_engine() -> JinjaTemplateEngine:
    env = Environment(
        loader=FileSystemLoader(ROOT / "templates"),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )

    @pass_context
    def gettext(ctx, message):
        return i18n.translations(pages.context_lang(ctx)).gettext(message)

    @pass_context
    def ngettext(ctx, singular, plural, n):
        return i18n.translations(pages.context_lang(ctx)).ngettext(singular, plural, n)

    env.install_gettext_callables(gettext, ngettext, newstyle=True)
    env.globals.update(pages.template_globals())
    return JinjaTemplateEngine(engine_instance=env)


def create_app(config: Config | None = None) -> Litestar:
    """Wire the application for ``config`` (from the environment when None)."""
    config = config or from_env()
    state = State(setup.prepare(config))
    janitor = retention.Janitor(state)
    capacity_watch = capacity.Watch(state)
    return Litestar(
        route_handlers=[
            *pages.routes,
            *auth.routes,
            *two_factor.routes,
            *admin.routes,
            *audit.routes,
            *admin_terms.routes,
            *admin_ops.routes,
            *admin_open.routes,
            *files.routes,
            *uploads.routes,
            *shares.routes,
            *requests.routes,
            *links.routes,
            *request_links.routes,
            *request_uploads.routes,
            *partners.routes,
            *institutions.routes,
            *spaces.routes,
            create_static_files_router(path="/static", directories=[ROOT / "static"], name="static"),
        ],
        state=state,
        template_config=TemplateConfig(instance=_template_engine()),
        csrf_config=CSRFConfig(
            secret=state.secret_key,
            cookie_name="__Host-csrf",
            cookie_secure=config.cookie_secure,
            cookie_httponly=True,
            cookie_samesite="strict",
            header_name="x-csrftoken",
        ),
        middleware=[middleware.strict_utf8_middleware, middleware.session_middleware],
        before_send=[middleware.security_headers],
        before_request=middleware.no_oversized_ids,
        exception_handlers=errors.handlers,
        # Background work (the mail outbox, retention, the free-space warning) runs in the server;
        # tests drive it themselves.
        on_startup=[state.mail_sender.start, janitor.start, capacity_watch.start] if config.background_jobs else [],
        on_shutdown=[state.mail_sender.stop, janitor.stop, capacity_watch.stop, state.uploads.close, state.db.close],
        # Forms are small; upload routes raise this limit for themselves.
        request_max_body_size=2 * 1024 * 1024,
        openapi_config=None,  # no schema endpoints: nothing to learn about the app from outside
        debug=False,
    )


if __name__ == "__main__":
    from relais import cli

    sys.exit(cli.main(sys.argv[1:], create_app))
