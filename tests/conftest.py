"""Test-wide setup. gevent patches the standard library here, before anything imports it,
as every process entry point of autocall does."""
from gevent import monkey

monkey.patch_all()
