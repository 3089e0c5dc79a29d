"""The database failures the layers above storage handle, by storage's names.

They are the database driver's own exception classes under names that say what the
caller does with them, so ``api`` and ``cli`` catch them without importing the SQL
toolkit:

- ``DatabaseError``: any failure of the database or its driver (the base of the others);
- ``DatabaseUnavailable``: the database cannot be reached or failed transiently (a
  connection the server closed, a lock wait that ran out): retry later (HTTP 503 with
  ``Retry-After``, https://hl7.org/fhir/R4/http.html#ops);
- ``DatabaseBusy``: every pooled connection stayed busy for the pool timeout (also 503);
- ``DataRejected``: the database refused a value of the request as invalid (HTTP 400).
"""

from __future__ import annotations

from sqlalchemy.exc import DataError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

DatabaseError = SQLAlchemyError
DatabaseUnavailable = OperationalError
DatabaseBusy = PoolTimeout
DataRejected = DataError

__all__ = ["DataRejected", "DatabaseBusy", "DatabaseError", "DatabaseUnavailable"]
