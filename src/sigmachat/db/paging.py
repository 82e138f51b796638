"""Keyset paging on (created_at, id): the one implementation every list uses.

Rows are ordered by ``created_at`` then ``id`` (ids break ties); a page continues strictly
after (or, with ``inclusive``, at) the cursor row's key, in either direction.
"""

from __future__ import annotations

import datetime as dt
from typing import TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute

T = TypeVar("T")


def keyset_page(
    stmt: Select[T],
    created: InstrumentedAttribute[dt.datetime],
    ident: InstrumentedAttribute[str],
    cursor: tuple[dt.datetime, str] | None,
    *,
    desc: bool,
    inclusive: bool = False,
) -> Select[T]:
    """``stmt`` ordered on (created, id) and continued from ``cursor`` (None: from the start)."""
    if cursor is not None:
        at, row_id = cursor
        if desc:
            same = ident <= row_id if inclusive else ident < row_id
            stmt = stmt.where(or_(created < at, and_(created == at, same)))
        else:
            same = ident >= row_id if inclusive else ident > row_id
            stmt = stmt.where(or_(created > at, and_(created == at, same)))
    if desc:
        return stmt.order_by(created.desc(), ident.desc())
    return stmt.order_by(created.asc(), ident.asc())
