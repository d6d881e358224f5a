"""The one logging setup of every long-running command (worker, console, `up`)."""

from __future__ import annotations

import logging

from config.settings import Settings

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "crit": logging.CRITICAL,
}
#: The Kafka clients and faust print whole records at DEBUG (tests/streams/test_logs.py).
_CLIENTS = ("kafka", "aiokafka", "faust")


def setup_logging(settings: Settings, client_floor: int = logging.INFO) -> None:
    """Plain lines on stderr at `BANWATCH_LOG_LEVEL`. Our own messages never carry
    coordinates, free text or tokens; the clients' loggers never go below `client_floor`,
    whatever the level says."""
    logging.basicConfig(
        level=_LEVELS[settings.log_level],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for client in _CLIENTS:
        logging.getLogger(client).setLevel(max(client_floor, logging.getLogger().level))
