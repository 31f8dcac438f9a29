"""`Store`: the one entry point of the persistence layer (database rows plus image blobs).

Services talk to one object; behind it each aggregate keeps its own repository (requests, images, Responses
turns, the ledger, API keys, files, batches, rate events, holds and leases, cluster members), all sharing one
`Database`. Every method is synchronous, opens its own short `Session` and returns plain views, so a `Store`
can be shared by any number of worker threads.
"""

from __future__ import annotations

from gouache.store.batches import BatchRepository
from gouache.store.files import FileRepository
from gouache.store.holds import HoldRepository
from gouache.store.images import ImageRepository
from gouache.store.keys import ApiKeyRepository
from gouache.store.ledger import LedgerRepository
from gouache.store.members import MemberRepository
from gouache.store.rates import RateRepository
from gouache.store.requests import RequestRepository
from gouache.store.responses import ResponseRepository


class Store(
    RequestRepository,
    ImageRepository,
    ResponseRepository,
    LedgerRepository,
    ApiKeyRepository,
    FileRepository,
    BatchRepository,
    RateRepository,
    HoldRepository,
    MemberRepository,
):
    """Requests and images in a SQL database (SQLite or PostgreSQL), image bytes in a `BlobStore`.

    Call `migrate()` once before use. `database_url` is a SQLAlchemy URL; a bare ``postgresql://`` URL is
    taken to mean the psycopg 3 driver.
    """
