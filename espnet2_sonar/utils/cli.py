"""Small command-line helpers shared by the entry points under ``espnet2_sonar.bin``."""

import argparse
import ast
import dataclasses
import inspect
import logging
import sys
import textwrap
import typing
from typing import Dict, Literal


class TqdmLoggingHandler(logging.StreamHandler):
    """Log lines written through ``tqdm.write``, so they do not break the progress bars."""

    def emit(self, record):
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # pragma: no cover - logging must not raise
            self.handleError(record)


def log_through_tqdm(fmt: str = "%(levelname)s %(message)s", level: int = logging.INFO) -> None:
    """Route the root logger through :class:`TqdmLoggingHandler` (replacing its handlers)."""
    handler = TqdmLoggingHandler()
    handler.setFormatter(logging.Formatter(fmt))
    logging.basicConfig(level=level, handlers=[handler], force=True)


def name_path_pairs(text: str, what: str) -> Dict[str, str]:
    """``"a=x b=y"`` -> ``{"a": "x", "b": "y"}`` (order kept); ``ValueError`` naming ``what``
    for an entry without ``=``, an empty side, a repeated name or an empty list."""
    pairs: Dict[str, str] = {}
    for item in text.split():
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"{what} entries are NAME=PATH, got {item!r}")
        if name in pairs:
            raise ValueError(f"{what}: name {name!r} given twice")
        pairs[name] = path
    if not pairs:
        raise ValueError(f"{what}: nothing given")
    return pairs


def str2bool(v: str) -> bool:
    """``true/1/yes`` -> True, ``false/0/no`` -> False (any case); else ``ArgumentTypeError``."""
    if v.lower() in ("true", "1", "yes"):
        return True
    if v.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {v!r}")


def field_docs(cls: type) -> Dict[str, str]:
    """The docstring under each field of dataclass ``cls`` (and its dataclass bases), by name,
    whitespace collapsed; fields without one are absent."""
    docs: Dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass is object:
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        for stmt, nxt in zip(body, body[1:]):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[stmt.target.id] = " ".join(nxt.value.value.split())
    return docs


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One ``--NAME`` option per field of dataclass ``cls``: the field's type (``bool`` read by
    :func:`str2bool`, a ``Literal`` as ``choices``), its default and its docstring as help;
    :func:`config_from_args` rebuilds the config from the parsed options."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if f.default is dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name} has no plain default; cannot make it an option")
        kind = hints[f.name]
        doc = docs.get(f.name)
        kwargs = {"default": f.default, "help": doc.replace("%", "%%") if doc else None}
        if typing.get_origin(kind) is Literal:
            kwargs["choices"] = typing.get_args(kind)
        elif kind is bool:
            kwargs["type"] = str2bool
        elif kind in (int, float, str):
            kwargs["type"] = kind
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: no command-line type for {kind!r}")
        parser.add_argument(f"--{f.name}", **kwargs)


def config_from_args(cls: type, args: argparse.Namespace):
    """``cls`` built from the ``args`` attributes named like its fields (see :func:`add_config_arguments`)."""
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})
