"""flows.prefect_patches and the process pool template: what every flow-run process relies on."""

from __future__ import annotations

import shlex
import ssl
import sys


def _context(client: object) -> ssl.SSLContext:
    """The SSL context of a Prefect client's httpx transport."""
    transport = client._client._transport  # type: ignore[attr-defined]
    return transport._pool._ssl_context  # type: ignore[no-any-return]


def test_api_clients_share_one_verified_tls_context() -> None:
    from prefect.client.orchestration import get_client

    import flows.runtime  # noqa: F401  (applies the patch, as in every flow-run process)
    from flows.prefect_patches import share_api_tls_context

    assert share_api_tls_context()  # idempotent, and Prefect's module is the expected one
    contexts = [
        _context(get_client()),
        _context(get_client()),
        _context(get_client(sync_client=True)),
    ]
    assert contexts[0] is contexts[1] is contexts[2]
    # verification is unchanged: certificates required, host names checked
    assert contexts[0].verify_mode is ssl.CERT_REQUIRED and contexts[0].check_hostname
    assert contexts[0].cert_store_stats()["x509_ca"] > 0  # the CA bundle is loaded


def test_the_insecure_path_still_gets_its_own_context() -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_TLS_INSECURE_SKIP_VERIFY, temporary_settings

    import flows.runtime  # noqa: F401

    verified = _context(get_client())
    with temporary_settings({PREFECT_API_TLS_INSECURE_SKIP_VERIFY: True}):
        first, second = _context(get_client()), _context(get_client())
    assert first is not second and first is not verified
    assert first.verify_mode is ssl.CERT_NONE
    assert verified.verify_mode is ssl.CERT_REQUIRED  # the shared one was not touched


def test_process_pool_template_starts_the_engine_directly() -> None:
    from flows.operations import engine_command, process_pool_template

    template = process_pool_template()
    command = template["variables"]["properties"]["command"]["default"]
    assert command == engine_command()
    assert shlex.split(command) == [sys.executable, "-m", "prefect.engine"]
    assert template["job_configuration"]["command"] == "{{ command }}"
