"""The notebook layer: IPython and widgets. Loading it loads the settings, which pass the services what they
need of them (the catalog's URL, the budgets), so that a view's footer prices an answer from the catalog
of the base URL in use, whatever was imported first."""

from ..session import settings as _settings  # noqa: F401
