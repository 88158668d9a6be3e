"""The journal's key when none is configured: a key file in the data directory.

Encryption at rest is the default. :func:`journal_key_for` turns settings into the key every
entry point (``amtsbote serve``, ``amtsbote inbox serve``, ``amtsbote demo``, the flow runtime,
the CLI commands that open the journal, :meth:`Journal.from_env`) passes to the journal:

1. ``AMTSBOTE_JOURNAL_KEY`` when set;
2. else, with ``AMTSBOTE_JOURNAL_PLAINTEXT=1``, ``None`` (payloads not encrypted), logged as a
   warning;
3. else the key in ``<data dir>/journal.key`` (:data:`KEY_FILE_NAME`), created on first use
   with a new random Fernet key, mode 0600, in a data directory made 0700 — so a journal
   encrypted by one command is readable by the next one run with the same data dir.

The library itself keeps its meaning: ``Journal(url)`` without ``key`` stores plaintext.
A key file readable by group or others is refused (``chmod 600`` it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from pathlib import Path

from ..config import Settings
from ..exceptions import ConfigError
from .crypto import generate_key

__all__ = ["KEY_FILE_NAME", "journal_key_for", "key_file"]

log = logging.getLogger("connectors.journal")
KEY_FILE_NAME = "journal.key"
_KEY_ENV = "AMTSBOTE_JOURNAL_KEY"
_PLAINTEXT_ENV = "AMTSBOTE_JOURNAL_PLAINTEXT"


def key_file(settings: Settings) -> Path:
    """Where the generated key is kept: ``<data dir>/journal.key``."""
    return settings.data_dir / KEY_FILE_NAME


def journal_key_for(settings: Settings) -> str | None:
    """The key to open the journal of ``settings`` with (rules in the module docstring)."""
    if settings.journal_key:
        return settings.journal_key
    if settings.journal_plaintext:
        log.warning(
            "journal %s: %s is on — new payloads are stored NOT encrypted",
            _shown(settings),
            _PLAINTEXT_ENV,
        )
        return None
    path = key_file(settings)
    if not path.exists():
        settings.ensure_data_dir()
        if _create(path):
            log.warning(
                "journal: created a new key in %s (mode 0600); back it up with the journal — "
                "without it the encrypted payloads cannot be read",
                path,
            )
    return _read(path)


def _shown(settings: Settings) -> str:
    from ..config import mask_url

    return mask_url(settings.database_url)


def _create(path: Path) -> bool:
    """Write a new key to ``path`` atomically (0600); ``False`` when another process won."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (generate_key() + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # atomic, fails when the file exists: never overwrite a key
        except FileExistsError:
            return False
        return True
    except OSError as exc:
        raise ConfigError(_KEY_ENV, f"cannot create the key file {path}: {exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _read(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                _KEY_ENV,
                f"key file {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}`",
            )
        key = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(_KEY_ENV, f"cannot read the key file {path}: {exc}") from exc
    if not key:
        raise ConfigError(_KEY_ENV, f"key file {path} is empty")
    return key
