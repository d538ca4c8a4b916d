"""One generic registry for every kind of component (neurons, encoders, connections ...).

Components register under a short name::

    @NeuronModel.register("lif")
    class LIFNodes(NeuronModel): ...

A component ported from another library names that library, its ``source``::

    @NeuronModel.register("lif", source="bindsnet")        # also reachable as bindsnet.lif
    @NeuronModel.register("spaic.lif", source="spaic")     # only the source-qualified name

Every entry with a source is reachable by ``SOURCE.NAME``, NAME the source's own spelling (the
name in its registry, or its class name in snake case where it has none): when neither the name
nor an alias starts with ``SOURCE.``, ``SOURCE.<name>`` is added as an alias. Entries without
one are snnrun's own (source ``snnrun``). ``snnrun list KIND source=SOURCE`` filters by it.

and are built from a config node that names them by ``type`` (a registered name) or by
``_target_`` (a dotted import path, Hydra's idiom, for users' own classes)::

    NeuronModel.build({"type": "lif", "thresh": -52.0}, key="model.network.groups.Ae", n=100)

A bare name is the node ``{type: name}``: :func:`as_node` is the one reader of "a registered
name or a config node" (every builder goes through it).

Unknown names and unknown keyword arguments raise :class:`ConfigError` naming the config key,
what is allowed, and the closest match.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Mapping
from typing import Any, Callable, Generic, TypeVar

from snnrun.errors import ConfigError

T = TypeVar("T")


def as_node(node: Any, key: str | None = None, default: Any = None) -> dict:
    """A component's config value as a plain dict node, the one place that reads "a registered
    name or a config node":

    * a name ``"atan"`` -> ``{"type": "atan"}``;
    * a mapping or an OmegaConf ``DictConfig`` -> a copy (interpolations resolved);
    * None -> ``as_node(default)`` (``{}`` without a default).

    Anything else raises :class:`ConfigError` naming ``key``.
    """
    if node is None:
        return {} if default is None else as_node(default, key)
    if isinstance(node, str):
        return {"type": node}
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(node, DictConfig):
            return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover - omegaconf is a hard dependency
        pass
    if isinstance(node, Mapping):
        return dict(node)
    raise ConfigError(f"expected a registered name or a config node ({{type: ...}}), got "
                      f"{type(node).__name__} {node!r}", key=key)


def did_you_mean(name: str, options) -> str:
    close = difflib.get_close_matches(str(name), list(options), n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


def first_doc_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def accepted_kwargs(fn: Callable) -> set[str] | None:
    """Keyword names a class (following ``**kw`` up its base classes) or function accepts;
    None if it takes arbitrary keywords."""
    targets = [c.__init__ for c in inspect.getmro(fn) if "__init__" in vars(c)] if inspect.isclass(fn) else [fn]
    allowed: set[str] = set()
    for f in targets:
        params = inspect.signature(f).parameters.values()
        allowed |= {p.name for p in params if p.name != "self" and p.kind in
                    (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return allowed
    return None


def check_kwargs(fn: Callable, kwargs: Mapping[str, Any], key: str | None, what: str) -> None:
    """Raise ConfigError for keyword arguments ``fn`` does not accept (never ignore them)."""
    allowed = accepted_kwargs(fn)
    if allowed is None:
        return
    for k in kwargs:
        if k not in allowed:
            where = f"{key}.{k}" if key else k
            raise ConfigError(
                f"unknown option '{k}' for {what}.{did_you_mean(k, allowed)} "
                f"Allowed: {', '.join(sorted(allowed))}",
                key=where,
            )


OWN_SOURCE = "snnrun"  # the source of a component written for snnrun, ported from no library


class Registry(Generic[T]):
    """Name -> class table for one kind of component; each entry also records its source
    (the library whose equations it follows, :data:`OWN_SOURCE` for snnrun's own)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, type] = {}
        self._aliases: dict[str, str] = {}
        self._sources: dict[str, str] = {}

    def register(self, name: str, *aliases: str, source: str | None = None) -> Callable[[type], type]:
        """Class decorator: register under ``name`` and ``aliases``; with a ``source`` also under
        ``SOURCE.NAME`` unless a given name already is one."""
        if source is not None:
            if not source or "." in source:
                raise ValueError(f"source must be a library name without '.', got {source!r}")
            if not any(n.startswith(source + ".") for n in (name, *aliases)):
                aliases = (*aliases, f"{source}.{name}")

        def deco(cls: type) -> type:
            for n in (name, *aliases):
                if n in self._entries or n in self._aliases:
                    raise ValueError(f"{self.kind} '{n}' is already registered")
            self._entries[name] = cls
            for a in aliases:
                self._aliases[a] = name
            self._sources[name] = source or OWN_SOURCE
            cls.registered_name = name  # type: ignore[attr-defined]
            cls.registered_source = source or OWN_SOURCE  # type: ignore[attr-defined]
            return cls

        return deco

    def names(self, source: str | None = None) -> list[str]:
        """Registered names (not aliases), those of one ``source`` if given."""
        return sorted(n for n in self._entries if source is None or self._sources[n] == source)

    def items(self, source: str | None = None) -> list[tuple[str, type]]:
        return [(n, self._entries[n]) for n in self.names(source)]

    def source_of(self, name: str) -> str:
        """The source of a registered name or alias (:data:`OWN_SOURCE` for snnrun's own)."""
        return self._sources[self._aliases.get(name, name)]

    def sources(self) -> list[str]:
        return sorted(set(self._sources.values()))

    def aliases_of(self, name: str) -> list[str]:
        return sorted(a for a, n in self._aliases.items() if n == name)

    def __contains__(self, name: str) -> bool:
        return name in self._entries or name in self._aliases

    def get(self, name: str, key: str | None = None) -> type:
        if name in self._aliases:
            name = self._aliases[name]
        if name not in self._entries:
            # suggest a registered name first; an alias only when no name is close (a dotted
            # name is compared with the source-qualified names first)
            qualified = sorted(n for n in [*self._entries, *self._aliases] if "." in n)
            hint = ((did_you_mean(name, qualified) if "." in str(name) else "")
                    or did_you_mean(name, self.names()) or did_you_mean(name, sorted(self._aliases)))
            raise ConfigError(
                f"unknown {self.kind} '{name}'.{hint} "
                f"Registered {self.kind}s: {', '.join(self.names())}",
                key=key,
            )
        return self._entries[name]

    def resolve(self, node: Any, key: str | None = None) -> tuple[type | Callable, dict]:
        """Return (class, keyword arguments) for a registered name or a config node with
        ``type`` or ``_target_`` (see :func:`as_node`)."""
        kwargs = as_node(node, key)
        if "_target_" in kwargs:
            target = kwargs.pop("_target_")
            kwargs.pop("type", None)
            cls = import_target(target, key=f"{key}._target_" if key else "_target_")
        elif "type" in kwargs:
            cls = self.get(kwargs.pop("type"), key=f"{key}.type" if key else "type")
        else:
            raise ConfigError(
                f"missing 'type' (a registered {self.kind}: {', '.join(self.names())}) "
                "or '_target_' (an import path)",
                key=key,
            )
        return cls, kwargs

    def build(self, node: Any, key: str | None = None, **runtime: Any) -> T:
        """Build a component from its name or config node; ``runtime`` holds arguments not in YAML
        (sizes, source/target objects)."""
        cls, kwargs = self.resolve(node, key)
        clash = set(kwargs) & set(runtime)
        if clash:
            k = sorted(clash)[0]
            raise ConfigError(f"'{k}' is set by snnrun for a {self.kind}; remove it from the config",
                              key=f"{key}.{k}" if key else k)
        what = f"{self.kind} '{getattr(cls, 'registered_name', getattr(cls, '__name__', cls))}'"
        check_kwargs(cls, {**kwargs, **runtime}, key, what)
        try:
            return cls(**kwargs, **runtime)
        except ConfigError as e:
            # components raise with a key relative to their own node; make it absolute
            if key is not None and not (e.key or "").startswith(key):
                e.key = f"{key}.{e.key}" if e.key else key
                e.args = (f"{e.key}: {e.message}",)
            raise
        except (TypeError, ValueError) as e:
            raise ConfigError(f"cannot build {what}: {e}", key=key) from e


def import_target(path: str, key: str | None = None) -> Any:
    module, _, attr = str(path).rpartition(".")
    if not module:
        raise ConfigError(f"'{path}' is not a dotted import path like 'mypkg.module.Class'", key=key)
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"cannot import '{path}': {e}", key=key) from e


class Registered:
    """Mixin for a component base class that owns a ``registry``: ``Base.register(name, *aliases,
    source=None)`` as a class decorator and ``Base.build(node, key=..., **runtime)`` from a config node."""

    registry: Registry

    @classmethod
    def register(cls, name: str, *aliases: str, source: str | None = None):
        return cls.registry.register(name, *aliases, source=source)

    @classmethod
    def build(cls, node, key: str | None = None, **runtime):
        return cls.registry.build(node, key=key, **runtime)
