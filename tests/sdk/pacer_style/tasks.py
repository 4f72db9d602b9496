# ruff: noqa: UP010, G004 - kept exactly in PACER's documented style
"""Business logic of the PACER-style test consumers, in PACER's `tasks` module style.

`JOURNAL` records every call (step, what it was given) so tests can check what the SDK handed over.
"""

from __future__ import absolute_import, unicode_literals

import logging

JOURNAL: list[tuple[str, dict]] = []


class InvestigationNotFound(LookupError):
    pass


class ICATSessionError(Exception):
    """Stand-in for `icat.exception.ICATSessionError` (the ICAT session expired or was lost)."""


class DatasetsTasks:
    def __init__(self, logger: logging.Logger = None):
        self.logger = logger

    def _note(self, step: str, dataset, *args, **kwargs) -> None:
        JOURNAL.append(
            (
                step,
                {
                    "dataset": dataset,
                    "args": args,
                    "kwargs": dict(kwargs),
                    "logger": self.logger.name if self.logger else None,
                },
            )
        )

    def check_files(self, dataset: dict, *_args, **_kwargs) -> None:
        self._note("check_files", dataset, *_args, **_kwargs)
        self.logger.info(f"Checking the files of dataset {dataset['dataset']}")
        missing = dataset.get("missing_file")
        if missing:
            raise FileNotFoundError(2, "No such file or directory", missing)

    def create_base_dataset_icat(self, dataset: dict, retries: int, *_args, **_kwargs) -> int:
        self._note("create_base_dataset_icat", dataset, *_args, **_kwargs)
        self.logger.info(
            f"Creating dataset {dataset['dataset']}, inv={dataset['investigation']}, "
            f"instr={dataset['instrument']}"
        )
        if retries < dataset.get("icat_session_lost_times", 0):
            raise ICATSessionError(f"Session {1000 + retries} has expired")
        if dataset["investigation"].startswith("0"):
            raise InvestigationNotFound(
                f"Investigation {dataset['investigation']} not found in ICAT"
            )
        new_dataset_id = 4711
        _kwargs["shared_obj_identifiers"]["dataset_id"] = new_dataset_id
        return new_dataset_id

    def create_dataset_gallery(self, dataset: dict, *args, **kwargs) -> None:
        self._note("create_dataset_gallery", dataset, *args, **kwargs)
        self.logger.info(f"Gallery of dataset {dataset['dataset']}")


class InternalStatisticsTasks:
    def __init__(self, logger: logging.Logger = None):
        self.logger = logger

    def count_files(self, dataset_id: int, *args, **kwargs) -> None:
        JOURNAL.append(("count_files", {"dataset_id": dataset_id, "kwargs": dict(kwargs)}))
        self.logger.info(f"Counting the files of dataset {dataset_id}")
        kwargs["shared_obj_identifiers"]["file_count"] = 2

    def volume(self, dataset_id: int, *args, **kwargs) -> None:
        JOURNAL.append(("volume", {"dataset_id": dataset_id, "kwargs": dict(kwargs)}))
        raise ValueError(f"no volume for dataset {dataset_id}")
