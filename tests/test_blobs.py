"""The journal's blob store (primary documents as content-addressed files), on SQLite and
PostgreSQL: round trip, dedup, encryption at rest, tamper detection, message files, size limits
and a 50 MB stream in bounded memory."""

from __future__ import annotations

import hashlib
import threading
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from connectors.exceptions import JournalKeyError, JournalNotFoundError, JournalValueError
from connectors.journal import BlobStore, Journal, generate_key
from connectors.journal.blobio import (
    HEADER_SIZE,
    MAGIC,
    BlobReader,
    encrypted_size,
)
from connectors.journal.blobs import (
    BlobConflictError,
    BlobIntegrityError,
    BlobKeyError,
    BlobNotFoundError,
    BlobTooLargeError,
)
from connectors.journal.crypto import PayloadCodec

MARKER = b"Gewerbeakte Paderborn, Bl. 17: Mustermann, Erika"
KEY = generate_key()
CHUNK = 4096  # small chunks: many chunk boundaries in small tests


def _store(db_url: str, root: Path, *, key: str | None = None, **kw: object) -> BlobStore:
    journal = Journal(db_url, key=key, create=True)
    return BlobStore(journal, root, chunk_size=kw.pop("chunk_size", CHUNK), **kw)  # type: ignore[arg-type]


def _files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "sha512").rglob("*") if p.is_file())


@pytest.fixture(params=["plain", "encrypted"])
def key(request: pytest.FixtureRequest) -> str | None:
    return KEY if request.param == "encrypted" else None


def test_round_trip_layout_and_record(db_url: str, tmp_path: Path, key: str | None) -> None:
    store = _store(db_url, tmp_path / "blobs", key=key)
    data = MARKER * 1000 + b"tail"  # ~49 kB: several chunks and a partial last one
    ref = store.put_bytes(data)
    digest = hashlib.sha512(data).hexdigest()
    assert (ref.digest, ref.size, ref.new) == (digest, len(data), True)
    assert ref.encrypted is (key is not None)
    path = tmp_path / "blobs" / "sha512" / digest[:2] / digest[2:4] / digest
    assert _files(tmp_path / "blobs") == [path]
    assert path.stat().st_size == ref.stored_size
    expected = encrypted_size(len(data), CHUNK) if key else len(data)
    assert ref.stored_size == expected
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []  # no temporary left behind
    with store.open(digest) as stream:
        assert stream.read() == data
    assert store.get(digest) == ref.__class__(**{**_fields(ref), "new": False})
    assert store.verify(digest).size == len(data)


def _fields(ref: object) -> dict[str, object]:
    return {name: getattr(ref, name) for name in ref.__slots__}  # type: ignore[attr-defined]


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK])
def test_chunk_boundaries_round_trip_encrypted(tmp_path: Path, size: int) -> None:
    store = _store(f"sqlite:///{tmp_path / 'j.sqlite'}", tmp_path / "blobs", key=KEY)
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    ref = store.put_bytes(data)
    assert ref.stored_size == encrypted_size(size, CHUNK)
    with store.open(ref.digest) as stream:
        assert stream.read() == data


def test_same_content_is_stored_once(db_url: str, tmp_path: Path, key: str | None) -> None:
    store = _store(db_url, tmp_path / "blobs", key=key)
    first = store.put_bytes(MARKER)
    second = store.put_stream(iter([MARKER[:10], b"", MARKER[10:]]))  # pieces, also empty ones
    assert second.digest == first.digest and first.new and not second.new
    assert second.created == first.created
    assert len(_files(tmp_path / "blobs")) == 1
    other = store.put_bytes(MARKER + b"!")
    assert other.new and len(_files(tmp_path / "blobs")) == 2


def test_concurrent_puts_of_one_document(db_url: str, tmp_path: Path) -> None:
    store = _store(db_url, tmp_path / "blobs", key=KEY)
    data = MARKER * 500
    barrier = threading.Barrier(4)
    refs, errors = [], []

    def put() -> None:
        try:
            barrier.wait(timeout=30)
            refs.append(store.put_bytes(data))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sum(r.new for r in refs) >= 1 and {r.digest for r in refs} == {refs[0].digest}
    assert len(_files(tmp_path / "blobs")) == 1
    with store.open(refs[0].digest) as stream:
        assert stream.read() == data


def test_encrypted_at_rest(db_url: str, tmp_path: Path) -> None:
    store = _store(db_url, tmp_path / "blobs", key=KEY)
    data = MARKER * 200
    ref = store.put_bytes(data)
    raw = store.path_of(ref.digest).read_bytes()
    assert raw.startswith(MAGIC) and len(raw) == ref.stored_size
    assert MARKER not in raw and b"Mustermann" not in raw
    assert ref.encrypted and store.encrypts
    # another store of the same database: without a key, with a different one, with rotation
    journal = Journal(db_url, key=KEY)
    with pytest.raises(BlobKeyError, match="no journal key is configured") as no_key:
        BlobStore(journal, tmp_path / "blobs", keys=()).open(ref.digest)
    assert isinstance(no_key.value, JournalKeyError)
    wrong = PayloadCodec(generate_key()).raw_keys
    with pytest.raises(BlobKeyError, match="not configured"):
        BlobStore(journal, tmp_path / "blobs", keys=wrong).open(ref.digest)
    rotated = PayloadCodec(f"{generate_key()},{KEY}").raw_keys
    with BlobStore(journal, tmp_path / "blobs", keys=rotated).open(ref.digest) as stream:
        assert stream.read() == data


def test_plain_without_a_key(tmp_path: Path) -> None:
    store = _store(f"sqlite:///{tmp_path / 'j.sqlite'}", tmp_path / "blobs")
    ref = store.put_bytes(MARKER)
    assert not ref.encrypted and store.path_of(ref.digest).read_bytes() == MARKER


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _read_all(store: BlobStore, digest: str) -> bytes:
    with store.open(digest) as stream:
        return stream.read()


@pytest.mark.parametrize("where", ["header", "first chunk", "last chunk", "tag"])
def test_tampered_encrypted_blob_is_detected(db_url: str, tmp_path: Path, where: str) -> None:
    store = _store(db_url, tmp_path / "blobs", key=KEY)
    ref = store.put_bytes(MARKER * 300)
    path = store.path_of(ref.digest)
    offset = {
        "header": 20,
        "first chunk": HEADER_SIZE + 5,
        "last chunk": ref.stored_size - 30,
        "tag": ref.stored_size - 1,
    }[where]
    _flip(path, offset)
    with pytest.raises(BlobIntegrityError, match=r"authentication|integrity"):
        _read_all(store, ref.digest)


def test_tampered_plain_blob_is_detected_at_the_end(db_url: str, tmp_path: Path) -> None:
    store = _store(db_url, tmp_path / "blobs")
    ref = store.put_bytes(MARKER * 300)
    _flip(store.path_of(ref.digest), 100)
    with pytest.raises(BlobIntegrityError, match="SHA-512"):
        _read_all(store, ref.digest)


def test_truncated_missing_and_extended_files(db_url: str, tmp_path: Path) -> None:
    store = _store(db_url, tmp_path / "blobs", key=KEY)
    data = MARKER * 300
    ref = store.put_bytes(data)
    path = store.path_of(ref.digest)
    whole = path.read_bytes()
    path.write_bytes(whole[:-1])
    with pytest.raises(BlobIntegrityError, match="recorded"):
        store.open(ref.digest)
    # cut at a chunk boundary, past the size check: the missing final flag gives it away
    full_chunks = HEADER_SIZE + 2 * (CHUNK + 16)
    path.write_bytes(whole[:full_chunks])
    reader = BlobReader(path, digest=ref.digest, size=ref.size, keys=store._keys)
    with pytest.raises(BlobIntegrityError, match="authentication"), reader:
        reader.read()
    path.unlink()
    with pytest.raises(BlobIntegrityError, match="missing"):
        store.open(ref.digest)
    again = store.put_bytes(data)  # recorded but lost: stored anew
    assert again.new and _read_all(store, ref.digest) == data


def test_unknown_and_malformed_digests(db_url: str, tmp_path: Path) -> None:
    store = _store(db_url, tmp_path / "blobs")
    with pytest.raises(BlobNotFoundError) as missing:
        store.open("ab" * 64)
    assert isinstance(missing.value, JournalNotFoundError) and not store.exists("ab" * 64)
    with pytest.raises(JournalValueError, match="digest"):
        store.get("../../etc/passwd")


def test_size_limit_stores_nothing(db_url: str, tmp_path: Path) -> None:
    store = _store(db_url, tmp_path / "blobs", max_size=10_000)
    with pytest.raises(BlobTooLargeError, match="10000"):
        store.put_bytes(b"x" * 10_001)
    assert store.put_bytes(b"x" * 10_000).size == 10_000
    with pytest.raises(BlobTooLargeError):
        store.put_stream(_Stream(50_000), max_size=20_000)
    assert len(_files(tmp_path / "blobs")) == 1
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM blobs")).scalar_one() == 1
    finally:
        engine.dispose()


def test_message_files(db_url: str, tmp_path: Path) -> None:
    store = _store(db_url, tmp_path / "blobs", key=KEY)
    message = str(uuid.uuid4())
    pdf, xml = store.put_bytes(b"%PDF-1.7 " + MARKER), store.put_bytes(b"<akte/>")
    store.attach(message, "primaer/bescheid.pdf", pdf.digest)
    store.attach(message, "akte.xml", xml.digest)
    again = store.attach(message.upper(), "akte.xml", xml.digest)  # idempotent, key normalised
    assert (again.message_key, again.size) == (message, xml.size)
    files = store.files_of(message)
    assert [(f.name, f.digest) for f in files] == [
        ("akte.xml", xml.digest),
        ("primaer/bescheid.pdf", pdf.digest),
    ]
    assert store.files_of(str(uuid.uuid4())) == ()
    with pytest.raises(BlobConflictError, match=r"akte\.xml"):
        store.attach(message, "akte.xml", pdf.digest)
    with pytest.raises(BlobNotFoundError, match="attach"):
        store.attach(message, "other.pdf", "cd" * 64)
    for bad in ("../etc/passwd", "/abs.pdf", "a//b", "a\\b", "", "x\n.pdf"):
        with pytest.raises(JournalValueError):
            store.attach(message, bad, pdf.digest)
    with pytest.raises(JournalValueError, match="message_key"):
        store.attach("not-a-uuid", "x.pdf", pdf.digest)
    other = str(uuid.uuid4())  # the same document in another message: one file on disk
    store.attach(other, "bescheid.pdf", pdf.digest)
    assert len(_files(tmp_path / "blobs")) == 2


def test_journal_blobs_lives_beside_the_sqlite_file(tmp_path: Path) -> None:
    with Journal(f"sqlite:///{tmp_path / 'data' / 'journal.sqlite'}", key=KEY, create=True) as j:
        assert j.blobs is j.blobs and j.blobs.root == tmp_path / "data" / "blobs"
        ref = j.blobs.put_bytes(MARKER)
        assert ref.encrypted and j.blobs.path_of(ref.digest).is_file()


class _Stream:
    """A file object yielding ``size`` bytes, never holding more than one read's worth."""

    BLOCK = b"".join(hashlib.sha512(i.to_bytes(4, "big")).digest() for i in range(1024))

    def __init__(self, size: int) -> None:
        self.left = size
        self.pos = 0
        self.sha = hashlib.sha512()

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        out = bytearray(n)
        filled = 0
        while filled < n:  # bounded: each round copies at least one byte
            start = self.pos % len(self.BLOCK)
            piece = self.BLOCK[start : start + n - filled]
            out[filled : filled + len(piece)] = piece
            filled += len(piece)
            self.pos += len(piece)
        self.left -= n
        data = bytes(out)
        self.sha.update(data)
        return data


def _chunked(reader: BlobReader, size: int) -> Iterator[bytes]:
    while chunk := reader.read(size):
        yield chunk


@pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "plain"])
def test_fifty_megabytes_in_bounded_memory(db_url: str, tmp_path: Path, encrypted: bool) -> None:
    store = _store(db_url, tmp_path / "blobs", key=KEY if encrypted else None, chunk_size=1 << 20)
    store.put_bytes(b"warm-up")  # first statements compiled outside the measurement
    size = 50 * 1024 * 1024
    source = _Stream(size)
    tracemalloc.start()
    try:
        ref = store.put_stream(source)
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        sha = hashlib.sha512()
        with store.open(ref.digest) as reader:
            for chunk in _chunked(reader, 256 * 1024):
                sha.update(chunk)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ref.size == size and ref.digest == source.sha.hexdigest() == sha.hexdigest()
    assert put_peak < 16 * 1024 * 1024, put_peak
    assert read_peak < 16 * 1024 * 1024, read_peak
