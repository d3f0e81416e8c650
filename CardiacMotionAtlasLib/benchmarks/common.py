"""Shared benchmark plumbing: argument parsing, plain-text tables, JSON output (atomic), and the
cross-family protocol (train on one phantom family, report on an unseen one and on held-out hearts of
the training family, baselines on the same test hearts)."""

from __future__ import annotations

import argparse
import json
import platform
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..io.atomic import atomic_write_text
from ..phantom.families import FAMILY_CHOICES, check_family, family_of_subject, make_heart

try:  # randomised acquisitions (pose, CMR and CT protocols per subject)
    from ..phantom.acquisition import ACQUISITION_CHOICES, check_acquisition, randomise_subject, subject_rng
except ImportError:  # pragma: no cover - a phantom without randomised acquisitions
    ACQUISITION_CHOICES, randomise_subject, subject_rng = ("fixed",), None, None

    def check_acquisition(mode: str) -> str:
        if mode != "fixed":
            raise ValueError(f"unknown acquisition {mode!r}; expected fixed")
        return mode


def benchmark_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="minutes-long version")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def machine_description() -> str:
    import os

    return f"{platform.machine()} {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}"


def _format(value) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    if isinstance(value, (int, np.integer)):
        return str(value)
    magnitude = abs(float(value))
    return f"{value:.3g}" if magnitude < 10 else f"{value:.1f}"


def mean_std(values: Sequence[float]) -> str:
    values = np.asarray(values, float)
    return f"{values.mean():.3g} +/- {values.std():.2g}"


def format_table(rows: List[Dict], columns: Optional[List[str]] = None, title: str = "") -> str:
    """A fixed-width text table of ``rows`` (dicts), columns in order."""
    columns = columns or list(rows[0].keys())
    cells = [[_format(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [title] if title else []
    lines.append("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells)
    return "\n".join(lines)


def write_json(path: str, rows: List[Dict], config: Dict, **sections) -> None:
    """``{"rows": rows, "config": config, ...}`` written atomically."""

    def plain(value):
        if isinstance(value, (np.floating, np.integer)):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
        raise TypeError(type(value))

    payload = {"rows": rows, "config": config, **sections}
    atomic_write_text(path, json.dumps(payload, indent=2, default=plain))


# --- the cross-family protocol ----------------------------------------------------------------------

DEFAULT_ACQUISITION = "randomised" if "randomised" in ACQUISITION_CHOICES else "fixed"
CROSS_FAMILY, IN_FAMILY = "cross-family", "in-family"


def add_family_arguments(parser: argparse.ArgumentParser, train_family: str = "ellipsoidal",
                         test_family: str = "lofted") -> argparse.ArgumentParser:
    """``--train-family``, ``--test-family`` (:data:`~..phantom.families.FAMILY_CHOICES`; ``mixed``
    alternates the families subject by subject) and ``--acquisition`` (``fixed``: every subject with the
    benchmark's protocol and the family's pose; ``randomised``: pose and protocol drawn per subject)."""
    parser.add_argument("--train-family", choices=FAMILY_CHOICES, default=train_family,
                        help=f"phantom family of the training hearts (default {train_family})")
    parser.add_argument("--test-family", choices=FAMILY_CHOICES, default=test_family,
                        help=f"phantom family of the cross-family test hearts (default {test_family}); the "
                             "in-family test set (held-out hearts of the training family) is always reported too")
    parser.add_argument("--acquisition", choices=ACQUISITION_CHOICES, default=DEFAULT_ACQUISITION,
                        help=f"per-subject heart pose and protocol (default {DEFAULT_ACQUISITION})")
    return parser


def families_of(family: str, indices: Sequence[int]) -> Tuple[str, ...]:
    """The concrete families that draw ``indices`` of a cohort of ``family`` (``mixed`` resolved)."""
    return tuple(sorted({family_of_subject(family, int(i)) for i in indices}))


def cross_family_label(train_family: str, test_family: str, train_indices: Sequence[int],
                       test_indices: Sequence[int]) -> str:
    """``"lofted (unseen family)"`` and the like: whether the test hearts' families were trained on."""
    seen, tested = set(families_of(train_family, train_indices)), set(families_of(test_family, test_indices))
    if not tested & seen:
        tag = "unseen family"
    elif tested - seen:
        tag = "partly unseen families"
    else:
        tag = "families seen in training"
    return f"{test_family} ({tag})"


@dataclass
class TestSet:
    """One test set of the protocol: ``name`` (``cross-family`` or ``in-family``), ``label`` (the
    ``test_set`` column of every table), the family, cohort indices and hearts (posed when the
    acquisition is randomised)."""

    __test__ = False  # not a pytest class

    name: str
    label: str
    family: str
    indices: List[int]
    hearts: List = field(default_factory=list)

    def to_dict(self) -> Dict:
        return {"name": self.name, "label": self.label, "family": self.family, "indices": list(self.indices),
                "subjects": [h.subject_id for h in self.hearts], "kinds": [h.params.kind for h in self.hearts]}


@dataclass
class FamilyProtocol:
    """Training hearts and the test sets (cross-family first, then in-family; only in-family when the
    train and test families are equal). Subject indices: training ``0..n_train-1``, in-family
    ``n_train..n_train+n_in-1``, cross-family after those, so the three sets never share an index
    (nor, in a mixed cohort, a heart)."""

    train_family: str
    test_family: str
    acquisition: str
    seed: int
    train_indices: List[int]
    train_hearts: List
    test_sets: List[TestSet]

    def acquire(self, heart, index: int, cmr=None, ct=None, ranges=None):
        """(CMR config, CT config, acquisition record) of subject ``index``: the given configs with
        ``fixed``; with ``randomised`` the heart is posed (idempotent) and the protocol drawn from
        ``ranges`` on top of ``cmr``/``ct`` (see :func:`~..phantom.acquisition.randomise_subject`)."""
        if self.acquisition != "randomised":
            return cmr, ct, {"mode": "fixed"}
        from ..phantom.cmr import CMRConfig

        cmr_out, ct_out, record = randomise_subject(heart, subject_rng(self.seed, index),
                                                    cmr if cmr is not None else CMRConfig(), ct, ranges)
        return (cmr_out if cmr is not None else None), ct_out, record

    def all_subjects(self) -> List[Tuple[object, int]]:
        """(heart, cohort index) of every heart: training first, then each test set."""
        out = list(zip(self.train_hearts, self.train_indices))
        for test_set in self.test_sets:
            out += list(zip(test_set.hearts, test_set.indices))
        return out

    @property
    def labels(self) -> List[str]:
        """The test sets' labels in table order (cross-family first)."""
        return [t.label for t in self.test_sets]

    def header(self) -> str:
        sets = "; ".join(f"{t.name}: {t.label}, {len(t.hearts)} hearts "
                         f"({', '.join(h.subject_id + ' ' + h.params.kind for h in t.hearts)})" for t in self.test_sets)
        return (f"protocol: train family {self.train_family} ({len(self.train_hearts)} hearts, indices "
                f"{_span(self.train_indices)}), test family {self.test_family}, acquisition {self.acquisition}; "
                f"test sets: {sets}")

    def config(self) -> Dict:
        return {"train_family": self.train_family, "test_family": self.test_family, "acquisition": self.acquisition,
                "seed": self.seed, "train_indices": list(self.train_indices),
                "train_subjects": [h.subject_id for h in self.train_hearts],
                "test_sets": [t.to_dict() for t in self.test_sets]}


def _span(indices: Sequence[int]) -> str:
    indices = list(indices)
    if not indices:
        return "none"
    return f"{indices[0]}-{indices[-1]}" if indices == list(range(indices[0], indices[-1] + 1)) else str(indices)


def build_protocol(train_family: str, test_family: str, seed: int, n_train: int, n_test: int,
                   n_in_family: Optional[int] = None, acquisition: str = "fixed",
                   train_kinds: Optional[Sequence[Optional[str]]] = None,
                   test_kinds: Optional[Sequence[Optional[str]]] = None, pose: bool = True) -> FamilyProtocol:
    """The training hearts and test sets of a benchmark (see :class:`FamilyProtocol`). ``n_test``
    hearts in the cross-family set, ``n_in_family`` (default ``n_test``) held-out hearts of the training
    family. ``*_kinds`` force phenotypes per position (None: drawn). ``pose``: pose the hearts now
    when the acquisition is randomised (the same pose :meth:`FamilyProtocol.acquire` gives)."""
    check_family(train_family)
    check_family(test_family)
    check_acquisition(acquisition)
    n_in = n_test if n_in_family is None else n_in_family

    def kind(kinds, position):
        return kinds[position] if kinds is not None and position < len(kinds) else None

    train_indices = list(range(n_train))
    in_indices = list(range(n_train, n_train + n_in))
    cross_indices = list(range(n_train + n_in, n_train + n_in + n_test))
    train_hearts = [make_heart(train_family, seed, i, kind(train_kinds, p)) for p, i in enumerate(train_indices)]
    sets = []
    if test_family != train_family:
        sets.append(TestSet(CROSS_FAMILY, cross_family_label(train_family, test_family, train_indices, cross_indices),
                            test_family, cross_indices,
                            [make_heart(test_family, seed, i, kind(test_kinds, p)) for p, i in enumerate(cross_indices)]))
    sets.append(TestSet(IN_FAMILY, f"{train_family} (in-family)", train_family, in_indices,
                        [make_heart(train_family, seed, i, kind(test_kinds, p)) for p, i in enumerate(in_indices)]))
    protocol = FamilyProtocol(train_family, test_family, acquisition, seed, train_indices, train_hearts, sets)
    if pose and acquisition == "randomised":
        for heart, index in protocol.all_subjects():
            protocol.acquire(heart, index)
    return protocol


def protocol_from_args(args, n_train: int, n_test: int, n_in_family: Optional[int] = None, **options) -> FamilyProtocol:
    """:func:`build_protocol` from :func:`add_family_arguments`' options and ``--seed``."""
    return build_protocol(args.train_family, args.test_family, args.seed, n_train, n_test, n_in_family,
                          getattr(args, "acquisition", "fixed"), **options)


def cross_family_first(rows: List[Dict], order: Sequence[str], key: str = "test_set") -> List[Dict]:
    """``rows`` stably sorted by their ``key`` in ``order`` (the protocol's labels: cross-family first);
    rows whose label is not in ``order`` (e.g. training subjects) come last."""
    rank = {label: i for i, label in enumerate(order)}
    return sorted(rows, key=lambda row: rank.get(row.get(key), len(rank)))


__all__ = ["ACQUISITION_CHOICES", "CROSS_FAMILY", "DEFAULT_ACQUISITION", "FamilyProtocol", "IN_FAMILY", "TestSet",
           "add_family_arguments", "build_protocol", "cross_family_label", "families_of", "protocol_from_args",
           "cross_family_first", "benchmark_parser", "format_table", "machine_description", "mean_std", "write_json"]
