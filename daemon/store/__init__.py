"""The SQLite file shared by the API and the dialer, and the only code that reads or writes it.

| module | job |
|---|---|
| `states.py` | the words written in the state columns, as constants |
| `schema.py` | models (the tables), migrations, `open_database` / `open_readonly`, the SQL helpers |
| `records.py` | the plain values that cross the boundary: import requests, claims, call reports |
| `queue_state.py` | a queue's own row: settings, running / stopped / deleted, the dialer's stop |
| `customers.py` | every change of a customer's state, one function per transition: the dialer's |
| `commands.py` | the API's commands on customers: import, block (DNC), delete |
| `reports.py` | every read: API reports, the dialer's lists, `autocall status`, the demo |

Nothing here binds a model to a database: every function takes the database it works on.
"""
