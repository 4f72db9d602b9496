"""Alembic environment for Flask-Migrate.

Runtime-created partitions of `messages` (`messages_p*`, `messages_default`) are managed by the
partition manager, not by migrations: `include_object` hides them from autogenerate so
`flask db migrate` never proposes to drop them.
"""

import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app

import models  # noqa: F401 - registers every table on the metadata
from models.messages import DEFAULT_PARTITION, PARTITION_PREFIX

config = context.config
fileConfig(config.config_file_name)
logger = logging.getLogger("alembic.env")


def get_engine():
    return current_app.extensions["migrate"].db.engine


def get_metadata():
    return current_app.extensions["migrate"].db.metadata


def is_runtime_partition(name: str | None) -> bool:
    return bool(name) and (name == DEFAULT_PARTITION or name.startswith(PARTITION_PREFIX))


def include_object(obj, name, type_, reflected, compare_to):
    if type_ == "table" and is_runtime_partition(name):
        return False
    if type_ in {"index", "unique_constraint", "foreign_key_constraint"}:
        table = getattr(obj, "table", None)
        if table is not None and is_runtime_partition(table.name):
            return False
    return True


def include_name(name, type_, parent_names):
    if type_ == "table":
        return not is_runtime_partition(name)
    return True


def run_migrations_offline():
    context.configure(
        url=str(get_engine().url).replace("%", "%%"),
        target_metadata=get_metadata(),
        literal_binds=True,
        include_object=include_object,
        include_name=include_name,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    def process_revision_directives(context, revision, directives):
        if getattr(config.cmd_opts, "autogenerate", False):
            script = directives[0]
            if script.upgrade_ops.is_empty():
                directives[:] = []
                logger.info("No changes in schema detected.")

    conf_args = dict(current_app.extensions["migrate"].configure_args)
    conf_args.setdefault("process_revision_directives", process_revision_directives)
    conf_args["include_object"] = include_object
    conf_args["include_name"] = include_name
    conf_args["compare_type"] = True

    with get_engine().connect() as connection:
        context.configure(connection=connection, target_metadata=get_metadata(), **conf_args)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
