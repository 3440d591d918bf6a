"""Name -> spec tables for every choice a user names: tasks, priors, activations,
samplers, moves, methods.

Each choice lives in one module, which owns its :class:`Registry` and registers its
entries beside their code, so adding one touches that module (and its test) only.
A registry that allows it also resolves ``MODULE:ATTR``, an attribute of an importable
module: how a command line names a user's own prior, activation or problem.
"""

import importlib
from collections.abc import Mapping


class Registry(Mapping):
    """An ordered, read-only mapping from names to specs, with one-line errors.

    ``kind`` names the choice in messages ("--prior"); ``importable`` lets
    :meth:`resolve` also take ``MODULE:ATTR``.
    """

    def __init__(self, kind, entries=(), *, importable=False):
        self.kind = kind
        self.importable = importable
        self._entries = dict(entries)

    def register(self, name, spec):
        """Add ``spec`` under ``name`` (a name may be registered once); returns ``spec``."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        if ":" in name:
            raise ValueError(f"{self.kind} names cannot contain ':' (it marks MODULE:ATTR)")
        self._entries[name] = spec
        return spec

    def __getitem__(self, name):
        return self._entries[name]

    def __iter__(self):
        return iter(self._entries)

    def __len__(self):
        return len(self._entries)

    @property
    def names(self):
        return tuple(self._entries)

    def allowed(self):
        """What a value may be, for messages: 'a, b or MODULE:ATTR'."""
        names = ", ".join(self._entries)
        return f"{names} or MODULE:ATTR" if self.importable else names

    def check(self, name):
        """Raise ValueError unless ``name`` is registered (or looks like MODULE:ATTR where
        allowed); nothing is imported."""
        if name in self._entries:
            return name
        if self.importable and is_reference(name):
            return name
        raise ValueError(f"{self.kind} must be one of {self.allowed()}, got {name!r}")

    def resolve(self, name):
        """The spec registered as ``name``, or the attribute ``MODULE:ATTR`` names."""
        self.check(name)
        if name in self._entries:
            return self._entries[name]
        return import_reference(name, self.kind)


def is_reference(text):
    """Whether ``text`` has the shape ``MODULE:ATTR`` (both parts dotted identifiers)."""
    if not isinstance(text, str):
        return False
    module, colon, attr = text.partition(":")
    parts = module.split(".") + attr.split(".")
    return bool(colon) and all(part.isidentifier() for part in parts)


def import_reference(reference, kind="value"):
    """The object ``MODULE:ATTR`` names; ValueError (one line) if it cannot be imported."""
    module_name, _, attr = reference.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"{kind} {reference}: cannot import {module_name} ({err})") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"{kind} {reference}: {module_name} has no attribute "
                             f"{attr}") from None
    return obj
