"""What every request of the API works with, built once by `create_app`."""

from __future__ import annotations

import dataclasses

import peewee as pw
from flask import Flask, current_app

from api.db import Workers
from daemon.config import Config
from daemon.ivr import TemplateLoader

EXTENSION = "autocall"


@dataclasses.dataclass(frozen=True)
class Services:
    config: Config
    db: pw.Database  # the store's database (daemon.store.schema.open_database)
    templates: TemplateLoader
    workers: Workers  # where every statement on `db` runs (api/db.py), never on the hub

    def install(self, app: Flask):
        app.extensions[EXTENSION] = self


def services(app: Flask | None = None) -> Services:
    """The Services of `app`, or of the app handling the current request."""
    return (app or current_app).extensions[EXTENSION]
