"""Nano Banana for Slack: the composition root and command line.

python app.py [serve]    HTTP on $PORT, or Socket Mode when SLACK_APP_TOKEN is set; runs workers
python app.py worker     workers only (scale them apart from the web processes)
python app.py migrate    upgrade the database and exit
python app.py sandbox    run the whole bot offline against the built-in stand-ins
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING
from urllib.error import URLError

import httpx
from dotenv import load_dotenv
from slack_bolt import App
from slack_bolt.authorization.authorize import InstallationStoreAuthorize
from slack_bolt.error import BoltError
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from bot import metrics
from bot.cards import ButtonPrices, Cards
from bot.catalog import Catalog
from bot.db import (
    Checkpoints,
    healthy,
    image_engine,
    listener_sessions,
    normalise_url,
    open_database,
    session_factory,
)
from bot.errors import ConfigError, StartupError
from bot.gemini import GeminiClient
from bot.installations import BOT_SCOPES, EncryptedInstallationStore, Workspaces, state_store
from bot.intake import Intake
from bot.jobs import JobRunner
from bot.logs import configure_logging
from bot.redaction import add_secret
from bot.reports import Reports
from bot.settings import Settings, database_url_from, load_settings, variables_for
from bot.slack import SlackGateway, web_client
from bot.worker import WorkerPool
from bot.worker_process import WorkerProcess, stop_with_parent, wait_for_start
from bot.workspace_keys import WorkspaceKeys
from handlers import Deps, register_all
from handlers.web import SERVER_SETTINGS, WsgiApp, ops_app, wsgi_app

if TYPE_CHECKING:
    from waitress.server import BaseWSGIServer

log = logging.getLogger("banana")


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    pool: WorkerPool
    intake: Intake
    reports: Reports
    cards: Cards
    http: httpx.Client
    workspaces: Workspaces
    keys: WorkspaceKeys
    installations: EncryptedInstallationStore | None  # OAuth mode


def build_runtime(
    settings: Settings, *, workers: int, on_enqueued: Callable[[], None] | None = None
) -> Runtime:
    """``workers``: the threads of this process's pool (0: none, as in a ``serve`` whose workers run in
    its worker process). ``on_enqueued``: called for each job queued here (default: wake this pool)."""
    # A connection for every thread that may want one at once (workers, request threads, the heartbeat
    # and after-ack calls): none waits for another's transaction to hand its connection back.
    engine = open_database(settings.database_url, pool_size=workers + SERVER_SETTINGS["threads"] + 4)
    Checkpoints(engine).start()  # SQLite's log, copied back beside the requests, not in their commits
    sessions = session_factory(engine)
    http = httpx.Client(
        timeout=httpx.Timeout(settings.gemini_timeout_seconds, connect=10.0),
        limits=httpx.Limits(max_connections=max(10, workers * 2)),
    )
    stopping = threading.Event()  # set by the pool's stop(): runner, pool and Gemini client all see it
    gemini = GeminiClient(
        http, base_url=settings.gemini_api_url, api_key=settings.gemini_api_key, cancel=stopping
    )

    def gateway(token: str) -> SlackGateway:
        return SlackGateway(
            web_client(token=token, base_url=settings.slack_api_url),
            http=http,
            api_url=settings.slack_api_url,
            share_timeout=settings.slack_share_timeout_seconds,
        )

    installations = None
    if settings.oauth:
        installations = EncryptedInstallationStore(
            client_id=str(settings.slack_client_id),
            engine=engine,
            encryption_key=str(settings.encryption_key),
        )
    workspaces = Workspaces(
        sessions=sessions, make=gateway, token=settings.slack_bot_token or None, store=installations
    )
    catalog = Catalog(settings.model_aliases)
    keys = WorkspaceKeys(sessions=sessions, encryption_key=settings.encryption_key, check=gemini.check_key)
    runner = JobRunner(
        sessions=sessions,
        image_sessions=session_factory(image_engine(engine)),  # PostgreSQL: a few kept open for images
        gemini=gemini,
        slack=workspaces,
        slack_retry_delays=settings.slack_retry_delays,
        stopping=stopping,
        prices=settings.prices,
        buttons=ButtonPrices(settings.prices, catalog, settings.variations),
        own_keys=keys.get,
    )
    pool = WorkerPool(
        sessions=sessions,
        runner=runner,
        threads=workers,
        lease_seconds=settings.job_lease_seconds,
        stopping=stopping,
        gemini_wait=settings.gemini_timeout_seconds + 5,
        per_user=settings.user_concurrency,
        notified_poll_seconds=settings.poll_seconds,
    )
    if engine.dialect.name == "postgresql" and settings.listen:
        pool.listen(engine)
    listeners = listener_sessions(engine)  # the ack path: on SQLite its writes go first
    intake = Intake(
        sessions=listeners,
        catalog=catalog,
        default_model=settings.default_model,
        on_enqueued=on_enqueued or pool.wake,
        limits=settings.limits,
        prices=settings.prices,
        admins=settings.admins,
        variations=settings.variations,
    )
    reports = Reports(
        sessions=listeners,
        limits=settings.limits,
        prices=settings.prices,
        admins=settings.admins,
    )
    metrics.watch_queue(sessions)
    cards = Cards(sessions=listeners, slack=workspaces, admins=settings.admins)
    return Runtime(
        settings=settings,
        engine=engine,
        pool=pool,
        intake=intake,
        reports=reports,
        cards=cards,
        http=http,
        workspaces=workspaces,
        keys=keys,
        installations=installations,
    )


def build_bolt(settings: Settings, deps: Deps, *, oauth: dict[str, object] | None = None) -> App:
    """The Bolt app with every listener. ``oauth``: ``oauth_options`` in OAuth mode."""
    app = App(
        client=bolt_client(settings),
        signing_secret=settings.slack_signing_secret or "unused-in-socket-mode",
        # Listeners run inside the request: the job is committed before Slack gets its 200, so an
        # acknowledged event is never lost. They only write a few rows, well within 3 s.
        process_before_response=True,
        raise_error_for_unhandled_request=True,
        request_verification_enabled=not settings.socket_mode,
        logger=BOLT_LOGGER,
        **(oauth or {}),  # type: ignore[arg-type]
    )
    register_all(app, deps)
    return app


# Without a base logger Bolt copies the root level onto its own loggers, so LOG_LEVEL=DEBUG would log every
# request and Socket Mode payload; this one is held at WARNING by configure_logging.
BOLT_LOGGER = logging.getLogger("slack_bolt")


def bolt_client(settings: Settings) -> WebClient:
    return WebClient(
        token=settings.slack_bot_token or None,  # OAuth mode: Bolt gives each request its workspace's
        base_url=settings.slack_api_url,
        timeout=10,
        retry_handlers=[],  # no blind resends: an ephemeral note or a modal may have gone through
    )


def deps_of(runtime: Runtime) -> Deps:
    return Deps(
        intake=runtime.intake,
        reports=runtime.reports,
        cards=runtime.cards,
        workspaces=runtime.workspaces,
        keys=runtime.keys,
        after_ack=_after_ack,
    )


def oauth_options(settings: Settings, runtime: Runtime) -> dict[str, object] | None:
    """Bolt's OAuth flow (``/slack/install``, ``/slack/oauth_redirect``) on our stores, and the
    authorization of each request by its workspace's installation. ``oauth.v2.access`` and each request's
    ``auth.test`` go through the App's client (so to ``SLACK_API_URL``); ``auth.test`` is asked once per
    token (``cache_enabled``), not on every event. The authorizer's own client would only refresh rotated
    tokens (rotation is off in the manifest); it is given one with the same base URL all the same."""
    installations = runtime.installations
    if installations is None:
        return None
    client_id, client_secret = str(settings.slack_client_id), str(settings.slack_client_secret or "")
    authorize = InstallationStoreAuthorize(
        installation_store=installations,
        client_id=client_id,
        client_secret=client_secret,
        logger=BOLT_LOGGER,
        bot_only=True,
        cache_enabled=True,
        client=bolt_client(settings),
    )
    flow = OAuthSettings(
        client_id=client_id,
        client_secret=client_secret,
        scopes=list(BOT_SCOPES),
        installation_store=installations,
        installation_store_bot_only=True,
        state_store=state_store(runtime.engine),
        logger=BOLT_LOGGER,
    )
    return {"oauth_settings": flow, "authorize": authorize, "installation_store": installations}


# Slack calls a listener makes for the person (an ephemeral note, opening a modal) run here, once the
# listener has returned, so they never delay Slack's 200. Two threads: these are rare and quick.
_AFTER_ACK = ThreadPoolExecutor(max_workers=2, thread_name_prefix="after-ack")


def _after_ack(call: Callable[[], object]) -> None:
    def run() -> None:
        try:
            call()
        except Exception:
            log.warning("a call after the acknowledgement failed", exc_info=True)

    _AFTER_ACK.submit(run)


def _stop_on_signal(*signums: signal.Signals) -> threading.Event:
    """Catch SIGTERM and SIGINT (or ``signums``) from now on; the event is set when one comes. Installed
    before the workers start, so a signal right after "workers started" stops them gracefully instead of
    killing the process (a race a test caught)."""
    stop = threading.Event()

    def handle(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    for signum in signums or (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handle)
    return stop


def serve(settings: Settings) -> None:
    """Everything that can fail at start (the database, Slack's answer to the token, the port) is tried
    before the workers start, so a process that can't serve stops at once with one line.

    The workers run in a process of their own (``bot.worker_process``), which imports meanwhile: the
    listeners that ack Slack don't take turns for the GIL with them. On SQLite the two processes' writers
    take turns on lock files beside the database, the acks' writes first (``db.ProcessTurns``)."""
    child = WorkerProcess() if settings.workers else None
    if child is None:
        _serve(settings, None)
        return
    child.spawn()
    try:
        _serve(settings, child)
    finally:
        child.stop()


def _serve(settings: Settings, child: WorkerProcess | None) -> None:
    # The worker process hears of a job queued here as any worker process does on PostgreSQL (NOTIFY); on
    # SQLite, which has no notifications, from this process (``WorkerProcess.wake``).
    on_postgresql = make_url(normalise_url(settings.database_url)).get_backend_name() == "postgresql"
    wake = child.wake if child is not None and not on_postgresql else None
    runtime = build_runtime(settings, workers=0 if child else settings.workers, on_enqueued=wake)
    if child is not None:
        metrics.include_child(child.metrics, lambda: child.pid)
    health = _health(runtime, child)
    with _quiet_libraries():  # their own lines about a refused token would come before ours
        bolt = build_bolt(settings, deps_of(runtime), oauth=oauth_options(settings, runtime))
    if settings.socket_mode:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        handler = SocketModeHandler(bolt, settings.slack_app_token)
        with _quiet_libraries():
            handler.connect()  # type: ignore[no-untyped-call]
        stop = _stop_on_signal()
        with (
            _serving_ops(settings, health),
            _serving_installs(settings, health, bolt),
            _working(settings, runtime, child),
        ):
            log.info("connected to Slack in Socket Mode")
            _until(stop, child)
        handler.close()  # type: ignore[no-untyped-call]
        return

    app = wsgi_app(bolt, healthy=health, signing_secret=settings.slack_signing_secret)
    server = _listen(app, settings.port, "PORT")
    stop = _stop_on_signal()
    with _working(settings, runtime, child):
        threading.Thread(target=server.run, name="http", daemon=True).start()
        port = server.effective_port
        routes = "POST /slack/events, GET /healthz, GET /metrics" + (
            ", GET /slack/install" if settings.oauth else ""
        )
        log.info("listening on http://0.0.0.0:%s (%s)", port, routes)
        _until(stop, child)
    server.close()


@contextmanager
def _working(settings: Settings, runtime: Runtime, child: WorkerProcess | None) -> Iterator[None]:
    """The workers, in the worker process or in this one's pool, until the block ends; then their
    graceful stop (the grace period, and the jobs inside their Gemini call) while HTTP is still served."""
    if child is not None:
        child.go()
        yield
        child.stop()
        return
    runtime.pool.start()
    yield
    runtime.pool.stop(grace_seconds=settings.shutdown_grace_seconds)


def _until(stop: threading.Event, child: WorkerProcess | None) -> None:
    """Until SIGTERM: the main thread keeps the worker process running (it must be the one starting it)."""
    if child is not None:
        child.supervise(stop)
    else:
        stop.wait()


def _health(runtime: Runtime, child: WorkerProcess | None = None) -> Callable[[], bool]:
    if child is not None:
        return lambda: healthy(runtime.engine) and child.healthy()
    return lambda: healthy(runtime.engine) and runtime.pool.claiming()


def _listen(app: WsgiApp, port: int, variable: str) -> BaseWSGIServer:
    import waitress

    try:
        return waitress.create_server(
            app,
            host="0.0.0.0",  # noqa: S104 - a server is meant to be reachable
            port=port,
            **SERVER_SETTINGS,
        )
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise StartupError(
                f"port {port} is already in use by another program; stop it, or set {variable} to a free port"
            ) from err
        raise StartupError(f"can't listen on port {port} ({err.strerror or err}); check {variable}") from err


def _listen_unix(app: WsgiApp, path: str) -> BaseWSGIServer:
    import waitress

    return waitress.create_server(app, unix_socket=path, unix_socket_perms="600", **SERVER_SETTINGS)


@contextmanager
def _serving_ops(settings: Settings, health: Callable[[], bool]) -> Iterator[None]:
    """``METRICS_PORT``, for a process that serves no HTTP (``worker``, Socket Mode): GET /metrics and
    GET /healthz on a port of its own, until the block ends."""
    if settings.metrics_port is None:
        yield
        return
    server = _listen(ops_app(healthy=health), settings.metrics_port, "METRICS_PORT")
    with _serving_aside(server, "metrics on http://0.0.0.0:%s"):
        yield


@contextmanager
def _serving_installs(settings: Settings, health: Callable[[], bool], bolt: App) -> Iterator[None]:
    """Socket Mode in OAuth mode: a person's browser still needs ``/slack/install`` and Slack's redirect
    (``/slack/oauth_redirect``), so they are served on ``PORT`` with ``/healthz`` and ``/metrics``."""
    if not settings.oauth:
        yield
        return
    app = wsgi_app(bolt, healthy=health, signing_secret=None)  # events come over the socket
    with _serving_aside(
        _listen(app, settings.port, "PORT"), "install page on http://0.0.0.0:%s/slack/install"
    ):
        yield


@contextmanager
def _serving_aside(server: BaseWSGIServer, announce: str | None) -> Iterator[None]:
    """Run ``server`` in a thread of its own until the block ends."""
    threading.Thread(target=server.run, name="http-aside", daemon=True).start()
    if announce is not None:
        log.info(announce, server.effective_port)
    try:
        yield
    finally:
        server.close()


@contextmanager
def _quiet_libraries() -> Iterator[None]:
    """Hold Bolt's and slack_sdk's own log lines back while the app starts: a refused token makes them
    log an ERROR (and Bolt warns that the SLACK_BOT_TOKEN it read from the environment "will be unused",
    since the app passes its own client); the operator gets one line of ours instead."""
    loggers = [logging.getLogger(name) for name in ("slack_bolt", "slack_sdk")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def work(settings: Settings, *, for_serve: str | None = None) -> None:
    """``for_serve``: this is a ``serve``'s worker process, and its ``/healthz`` and ``/metrics`` go on
    that unix socket, for the ``serve`` to read (``bot.worker_process``), not on ``METRICS_PORT``."""
    runtime = build_runtime(settings, workers=max(1, settings.workers))
    if for_serve is None:
        stop = _stop_on_signal()
        ops = _serving_ops(settings, _health(runtime))
    else:
        stop = _stop_on_signal(signal.SIGTERM)  # Ctrl-C reaches the serve too, which passes SIGTERM on
        stop_with_parent(stop, wake=runtime.pool.wake)
        if runtime.engine.dialect.name != "postgresql":  # it has NOTIFY for every process's jobs
            runtime.pool.told_by_serve()
        ops = _serving_aside(_listen_unix(ops_app(healthy=_health(runtime)), for_serve), None)
    with ops:
        runtime.pool.start()
        stop.wait()
        runtime.pool.stop(grace_seconds=settings.shutdown_grace_seconds)


_COMMANDS = {
    "serve": "HTTP on $PORT, or Socket Mode when SLACK_APP_TOKEN is set; runs workers too",
    "worker": "workers only (scale them apart from the web processes)",
    "migrate": "upgrade the database and exit",
    "sandbox": "run the whole bot offline against the built-in stand-ins",
}


def build_parser() -> argparse.ArgumentParser:
    # prog: "app.py" under ``python app.py``, "banana" as the installed console command
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", metavar="{serve,worker,migrate,sandbox}")
    for name, summary in _COMMANDS.items():
        if name in ("serve", "worker"):
            listed = variables_for("serve" if name == "serve" else "worker")
        elif name == "migrate":
            listed = [("DATABASE_URL", "SQLAlchemy URL (default sqlite:///banana.db in this folder)")]
        else:
            listed = []
        epilog = "Reads (from the environment, or .env in the working directory):\n" + "\n".join(
            f"  {variable:<36} {text}" for variable, text in listed
        )
        sub = commands.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=epilog
            if listed
            else "Reads no settings: it starts its own stand-ins for Slack and Gemini.",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if name == "worker":  # started by ``serve`` as its worker process (``bot.worker_process``)
            sub.add_argument("--for-serve", help=argparse.SUPPRESS)
            sub.add_argument("--parent", type=int, help=argparse.SUPPRESS)
        if name == "sandbox":
            sub.add_argument("--out", default="sandbox-output", help="where images and the transcript go")
    return parser


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def tune_malloc() -> None:
    """Give image-sized buffers back to the system when they are freed.

    glibc raises its mmap threshold to the largest block freed (up to 32 MB), after which a 6 MB image
    comes from a thread's heap, which small objects allocated later pin: 50 workers at 4K peaked at
    1.1 GB instead of about 0.4 GB. A threshold set explicitly stays where it is. Not glibc (musl,
    macOS): nothing to do.
    """
    if not sys.platform.startswith("linux"):
        return  # and before ctypes.CDLL(None), which Windows refuses
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, 128 * 1024)


def main(argv: list[str] | None = None) -> int:
    tune_malloc()  # before any thread or image
    args = build_parser().parse_args(argv)
    command = args.command or "serve"
    for_serve = getattr(args, "for_serve", None)
    if for_serve is not None and not wait_for_start(args.parent):
        return 0  # the serve that started this process could not start itself
    # .env in the working directory only, never overriding real variables; first, so LOG_LEVEL may come
    # from it too.
    dotenv = Path.cwd() / ".env"
    load_dotenv(dotenv, override=False)
    configure_logging(process="worker" if for_serve is not None else None)  # its lines share serve's stream
    where = f"in the environment or in {dotenv}" + ("" if dotenv.exists() else ", not found")

    if command == "sandbox":
        from bot.sandbox.scenario import run_sandbox

        return run_sandbox(out_dir=args.out)
    try:
        if command == "migrate":  # needs nothing but the database
            open_database(database_url_from(os.environ))
            return 0
        settings = load_settings(role="worker" if command == "worker" else "serve")
    except ConfigError as err:
        if len(err.problems) == 1:
            print(f"Nano Banana can't start: {err.problems[0]} (settings: {where})", file=sys.stderr)
        else:
            print(f"Nano Banana can't start; set these ({where}):", file=sys.stderr)
            for problem in err.problems:
                print(f"  - {problem}", file=sys.stderr)
        return 2
    except StartupError as err:
        print(f"Nano Banana can't start: {err}", file=sys.stderr)
        return 2
    add_secret(
        settings.slack_bot_token,
        settings.slack_app_token,
        settings.slack_signing_secret,
        settings.slack_client_secret,
        settings.encryption_key,
        settings.gemini_api_key,
        make_url(normalise_url(settings.database_url)).password,
    )
    log.debug("%s with %r", command, settings)
    try:
        if command == "worker":
            work(settings, for_serve=for_serve)
        else:
            serve(settings)
    except StartupError as err:
        print(f"Nano Banana can't start: {err}", file=sys.stderr)
        return 2
    except (BoltError, SlackApiError, OSError) as err:  # URLError is an OSError
        print(f"Nano Banana can't start: {_startup_problem(err, settings)}", file=sys.stderr)
        return 2
    return 0


def _startup_problem(err: Exception, settings: Settings) -> str:
    """One sentence for a failure to start talking to Slack (Bolt checks the token with auth.test)."""
    api_error = err if isinstance(err, SlackApiError) else err.__context__
    if isinstance(api_error, SlackApiError):
        code = api_error.response.get("error") or f"HTTP {api_error.response.status_code}"
        if isinstance(err, BoltError):
            return (
                f"Slack rejected SLACK_BOT_TOKEN ({code}). Copy the Bot User OAuth Token (xoxb-…) from "
                "OAuth & Permissions, and reinstall the app if its scopes changed."
            )
        return (
            f"Slack refused the connection ({code}). Check SLACK_APP_TOKEN (xapp-…, scope connections:write)."
        )
    if isinstance(err, OSError) and not isinstance(err, URLError):
        return str(err)
    return f"can't reach Slack at {settings.slack_api_url} ({getattr(err, 'reason', err)})."


if __name__ == "__main__":
    sys.exit(main())
