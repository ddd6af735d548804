"""The database shared by the API and the dialer (an SQLite file or a PostgreSQL database), and
the only code that reads or writes it.

| module | job |
|---|---|
| `states.py` | the words written in the state columns, as constants |
| `schema.py` | models (the tables), migrations, `open_database` / `open_readonly`, the SQL helpers |
| `url.py` | where the store lives: an SQLite path or a PostgreSQL URL, and its password |
| `dialect.py` | what the backends say differently (`Dialect`), the store's errors |
| `sqlite.py`, `postgres.py` | each backend's Dialect and how its database is opened |
| `records.py` | the plain values that cross the boundary: import requests, claims, call reports |
| `queue_state.py` | a queue's own row: settings, running / stopped / deleted, the dialer's stop |
| `customers.py` | every change of a customer's state, one function per transition: the dialer's |
| `commands.py` | the API's commands on customers: import, block (DNC), delete |
| `reports.py` | every read: API reports, the dialer's lists, `autocall status`, the demo |
| `operators.py` | the web console's accounts, sessions and audit log |
| `console.py` | the web console's reads beside `reports.py`: outcomes, calls per minute, customer search |

Nothing here binds a model to a database: every function takes the database it works on.
"""
