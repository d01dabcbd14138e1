"""Alembic environment: the URL comes from the caller (ca-service db upgrade) or Settings."""

from alembic import context
from sqlalchemy import create_engine

from ca_service.store.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from ca_service.config import load_settings

    return load_settings().sqlalchemy_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = _url()
    # a database that silently drops packets must not hang 'db upgrade' (design decision 10)
    bounded = {"connect_timeout": 5} if url.startswith("postgresql") else {}
    engine = create_engine(url, connect_args=bounded)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
