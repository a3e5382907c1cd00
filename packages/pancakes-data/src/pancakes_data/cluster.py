"""Dask clients for cohort-scale work (``pancakes segment --dask``, ``pancakes-synth generate --dask``).

``address`` is a running scheduler (``tcp://host:8786``, ``tls://…``) or ``local:N`` — a
``LocalCluster`` of N single-threaded worker processes, closed with its client. Dask ships pickled
tasks: connect only to schedulers you trust.
"""

from __future__ import annotations

__all__ = ["close_client", "dask_client"]


def dask_client(address: str):
    """A ``distributed.Client`` for ``address`` (see module docstring).

    Raises:
        ImportError: dask's distributed scheduler is not installed (an optional dependency).
        ValueError: ``local:N`` with N not a whole number ≥ 1.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ImportError("--dask needs dask's distributed scheduler: pip install 'dask[distributed]'") from exc
    if address.startswith("local:"):
        count = address.split(":", 1)[1] or "2"
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"local:N needs a whole number of workers N >= 1, got {count!r}")
        cluster = LocalCluster(n_workers=int(count), threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        client._pancakes_cluster = cluster  # closed with the client (see close_client)
        return client
    return Client(address)


def close_client(client) -> None:
    """Close ``client`` and the local cluster :func:`dask_client` started for it, if any."""
    cluster = getattr(client, "_pancakes_cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()
