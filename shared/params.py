"""Parameter types routers share. An id is a positive integer that fits its column; one outside that
range names nothing, and service_app answers 404 for it in a path (400 in a query), where asyncpg
would otherwise fail to encode it.

    @router.get("/task/{task_id}")
    async def get_task(task_id: Id) -> ...
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Le

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

Id = Annotated[int, Ge(1), Le(INT32_MAX)]
"""An id of an `Integer` column (users, tasks, datasets, ...)."""

BigId = Annotated[int, Ge(1), Le(INT64_MAX)]
"""An id of a `BigInteger` column (records, stored objects, face features, ...)."""
