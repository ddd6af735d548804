"""What every request of the API works with, built once by `create_app`."""
from __future__ import annotations

import dataclasses

import peewee as pw
from flask import Flask, current_app

from daemon.config import Config
from daemon.ivr import TemplateLoader

EXTENSION = "autocall"


@dataclasses.dataclass(frozen=True)
class Services:
    config: Config
    db: pw.Database         # the store's database (daemon.store.schema.open_database)
    templates: TemplateLoader

    def install(self, app: Flask):
        app.extensions[EXTENSION] = self


def services(app: Flask | None = None) -> Services:
    """The Services of `app`, or of the app handling the current request."""
    return (app or current_app).extensions[EXTENSION]


def template_loader(config: Config) -> TemplateLoader:
    """The templates as the dialer will see them (same variant, same transfer names)."""
    return TemplateLoader(config.templates.dir, config.templates.sounds, variant=config.templates.variant,
                          destinations=[name for name, _ in config.dialer.transfer_destinations])
