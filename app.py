"""Nano Banana for Slack: the composition root and command line.

python app.py            serve: HTTP on $PORT, or Socket Mode when SLACK_APP_TOKEN is set; runs workers
python app.py worker     workers only (scale them apart from the web processes)
python app.py migrate    upgrade the database and exit
python app.py sandbox    run the whole bot offline against the built-in stand-ins
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from types import FrameType

import httpx
from dotenv import load_dotenv
from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler
from sqlalchemy import Engine

from bot.db import create_db_engine, healthy, migrate, session_factory
from bot.errors import ConfigError
from bot.gemini import GeminiClient
from bot.intake import Intake
from bot.jobs import JobRunner
from bot.models import Catalog
from bot.settings import Settings, load_settings
from bot.slack import SlackGateway, web_client
from bot.worker import WorkerPool
from handlers import register_all
from handlers.web import wsgi_app

log = logging.getLogger("banana")


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    pool: WorkerPool
    intake: Intake
    http: httpx.Client


def build_runtime(settings: Settings, *, workers: int) -> Runtime:
    engine = create_db_engine(settings.database_url, pool_size=max(5, workers + 4))
    migrate(engine)
    sessions = session_factory(engine)
    http = httpx.Client(
        timeout=httpx.Timeout(settings.gemini_timeout_seconds, connect=10.0),
        limits=httpx.Limits(max_connections=max(10, workers * 2)),
    )
    stop_waits = threading.Event()
    gemini = GeminiClient(
        http, base_url=settings.gemini_api_url, api_key=settings.gemini_api_key, cancel=stop_waits
    )
    gateway = SlackGateway(
        web_client(token=settings.slack_bot_token, base_url=settings.slack_api_url),
        http=http,
        api_url=settings.slack_api_url,
    )
    runner = JobRunner(sessions=sessions, gemini=gemini, slack=lambda _team_id: gateway)
    pool = WorkerPool(
        sessions=sessions, runner=runner, threads=workers, lease_seconds=settings.job_lease_seconds
    )
    intake = Intake(
        sessions=sessions,
        catalog=Catalog(settings.model_aliases),
        default_model=settings.default_model,
        on_enqueued=pool.wake,
    )
    return Runtime(settings=settings, engine=engine, pool=pool, intake=intake, http=http)


def build_bolt(settings: Settings, intake: Intake) -> App:
    # Listeners run inside the request (process_before_response): the job is committed before Slack gets
    # its 200, so an acknowledged event is never lost. They only write a few rows, well within 3 s.
    client = WebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        timeout=10,
        retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=1)],
    )
    app = App(
        client=client,
        signing_secret=settings.slack_signing_secret or "unused-in-socket-mode",
        process_before_response=True,
        raise_error_for_unhandled_request=True,
        request_verification_enabled=not settings.socket_mode,
    )
    register_all(app, intake)
    return app


def _wait_for_signal() -> None:
    stop = threading.Event()

    def handle(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    stop.wait()


def serve(settings: Settings) -> None:
    runtime = build_runtime(settings, workers=settings.workers)
    bolt = build_bolt(settings, runtime.intake)
    runtime.pool.start()
    if settings.socket_mode:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        handler = SocketModeHandler(bolt, settings.slack_app_token)
        handler.connect()  # type: ignore[no-untyped-call]
        log.info("connected to Slack in Socket Mode")
        _wait_for_signal()
        runtime.pool.stop(grace_seconds=settings.shutdown_grace_seconds)
        handler.close()  # type: ignore[no-untyped-call]
        return

    import waitress

    server = waitress.create_server(
        wsgi_app(bolt, healthy=lambda: healthy(runtime.engine)),
        host="0.0.0.0",  # noqa: S104 - a server is meant to be reachable
        port=settings.port,
        threads=16,
        ident="nano-banana",
    )
    threading.Thread(target=server.run, name="http", daemon=True).start()
    log.info("listening on http://0.0.0.0:%s (POST /slack/events, GET /healthz)", settings.port)
    _wait_for_signal()
    runtime.pool.stop(grace_seconds=settings.shutdown_grace_seconds)
    server.close()


def work(settings: Settings) -> None:
    runtime = build_runtime(settings, workers=max(1, settings.workers))
    runtime.pool.start()
    _wait_for_signal()
    runtime.pool.stop(grace_seconds=settings.shutdown_grace_seconds)


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("slack_sdk", "slack_bolt", "httpx", "httpcore", "waitress", "alembic", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="app.py", description="Nano Banana for Slack")
    parser.add_argument(
        "command", nargs="?", default="serve", choices=["serve", "worker", "migrate", "sandbox"]
    )
    parser.add_argument("--out", default="sandbox-output", help="sandbox: where images and the transcript go")
    args = parser.parse_args(argv)
    configure_logging()
    load_dotenv(override=False)

    if args.command == "sandbox":
        from bot.sandbox.scenario import run_sandbox

        return run_sandbox(out_dir=args.out)
    try:
        settings = load_settings()
    except ConfigError as err:
        print("Nano Banana can't start; set these (in the environment or in .env):", file=sys.stderr)
        for problem in err.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        migrate(create_db_engine(settings.database_url))
        return 0
    if args.command == "worker":
        work(settings)
    else:
        serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
