"""Shared fixtures.

* Outbound sockets to anything but loopback are refused in every test (unit tests never reach the
  network; integration tests use real servers on 127.0.0.1).
* ``shared_dir``: the read-only ``../shared`` material, read in place. Missing under ``CI=true``
  is a failure, never a skip.
* ``pg_url``: a fresh PostgreSQL database on 127.0.0.1:5432 for the test session (dropped after).
  Missing PostgreSQL under ``CI=true`` is a failure, never a skip.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # bench/ is no installed package; its harnesses serve tests too
    sys.path.insert(0, str(ROOT))
SHARED = (ROOT.parent / "shared").resolve()  # as the registry names its sources (links resolved)
IN_CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_URL = os.environ.get(
    "AMTSBOTE_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _allowed(address: object) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX
        return True
    if isinstance(address, tuple) and address:
        host = address[0]
        if host in ("localhost",):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False
    return False


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _allowed(address):
        raise ConnectionRefusedError(f"tests may only connect to loopback, not {address!r}")
    _real_connect(self, address)  # type: ignore[arg-type]


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _allowed(address):
        raise ConnectionRefusedError(f"tests may only connect to loopback, not {address!r}")
    return _real_connect_ex(self, address)  # type: ignore[arg-type]


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


def _missing(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true but missing", pytrace=False)
    pytest.skip(f"{what} missing (would fail under CI=true)")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "xoev").is_dir():
        _missing(f"shared material at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def xgwa_samples(shared_dir: Path) -> Path:
    return shared_dir / "xoev" / "beispiele" / "xgewerbeanzeige-2.2"


@pytest.fixture(scope="session")
def schemata_dir(shared_dir: Path) -> Path:
    return shared_dir / "xoev" / "schemata"


def _pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except Exception:
        return False


def _fresh_database(prefix: str, driver: str) -> Iterator[str]:
    """Create ``<prefix><hex>`` on the local PostgreSQL; yield its SQLAlchemy URL; drop it."""
    if not _pg_available():
        _missing(f"PostgreSQL at {PG_ADMIN_URL}")
    import psycopg

    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base.replace('postgresql://', f'postgresql+{driver}://', 1)}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """SQLAlchemy URL of a fresh database ``amtsbote_t_<hex>`` on the local PostgreSQL."""
    yield from _fresh_database("amtsbote_t_", "psycopg")


@contextlib.contextmanager
def pg_schema(pg_url: str, *, prefix: str = "t_") -> Iterator[str]:
    """A fresh schema in the session's PostgreSQL database; yields its SQLAlchemy URL (the
    schema as search_path) and drops the schema after."""
    import psycopg

    schema = f"{prefix}{uuid.uuid4().hex[:12]}"
    plain = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{pg_url}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def pg_schema_url(pg_url: str) -> Iterator[str]:
    """URL of a fresh, empty schema in the session's PostgreSQL database (dropped after)."""
    with pg_schema(pg_url) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty journal database, once on each backend: a SQLite file (not created yet)
    and a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'journal.sqlite'}"
    else:
        yield request.getfixturevalue("pg_schema_url")


def _port_slice() -> range:
    """This test process's own ports: below the kernel's ephemeral range (which outgoing
    connections draw from), one disjoint slice per xdist worker."""
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    start, stop = 10000, max(low, 12000)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    count = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1), 1)
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    width = (stop - start) // count
    return range(start + index * width, start + (index + 1) * width)


_PORTS = _port_slice()
_next_port = _PORTS.start + (os.getpid() % max(len(_PORTS), 1))


def free_port() -> int:
    """A free TCP port on 127.0.0.1 that nothing else will take before the test binds it.

    A port the kernel hands out for ``bind(0)`` lies in the ephemeral range, where any outgoing
    connection (of this or another worker, of the Prefect server) may take it before the test's
    server binds it ("Address already in use", seen in CI). These ports come from a slice below
    that range, a different one per xdist worker, handed out in turn and probed free."""
    global _next_port
    for _ in range(len(_PORTS)):
        port = _next_port
        _next_port = _PORTS.start + (port + 1 - _PORTS.start) % len(_PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_PORTS}")


# --------------------------------------------------------------------------- Prefect

# Prefect reads its settings when first imported: point it at a private home and at the API of
# the test server (started on demand by the ``prefect_server`` fixture) before anything imports it.
import tempfile as _tempfile  # noqa: E402

_PREFECT_TMP = Path(_tempfile.mkdtemp(prefix="amtsbote-prefect-"))
PREFECT_TEST_PORT = free_port()
os.environ["PREFECT_HOME"] = str(_PREFECT_TMP / "home")
os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{PREFECT_TEST_PORT}/api"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ.pop("PREFECT_API_KEY", None)


@pytest.fixture(scope="session")
def prefect_pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for the Prefect server (asyncpg URL)."""
    yield from _fresh_database("amtsbote_prefect_", "asyncpg")


@pytest.fixture(scope="session")
def prefect_server(prefect_pg_url: str) -> Iterator[object]:
    """A real Prefect server on PostgreSQL, on the port PREFECT_API_URL names (session-wide)."""
    from flows.local import PrefectServer

    server = PrefectServer(
        home=_PREFECT_TMP / "server", port=PREFECT_TEST_PORT, database_url=prefect_pg_url
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def write_agencies(target: Path, *, drop_dir: Path) -> Path:
    """A copy of the shipped OWL directory with every loopback endpoint on a free port."""
    import re

    text = (ROOT / "deployments" / "owl" / "agencies.yaml").read_text(encoding="utf-8")
    used: set[int] = set()

    def unique_port(_: re.Match[str]) -> str:
        port = free_port()
        while port in used:  # the slice wrapped around
            port = free_port()
        used.add(port)
        return f"http://127.0.0.1:{port}"

    text = re.sub(r"http://127\.0\.0\.1:\d+", unique_port, text)
    text = re.sub(r"drop_dir: .*", f"drop_dir: {drop_dir}", text)
    target.write_text(text, encoding="utf-8")
    return target
