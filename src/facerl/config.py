"""Hydra config composition for the `facerl` command (configs live in ``facerl/conf``)."""

from __future__ import annotations

import re

from hydra import compose, initialize_config_module
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from facerl.errors import FacerlError


def load_config(overrides: list[str] | None = None) -> DictConfig:
    """Compose ``config.yaml`` with Hydra overrides such as ``data=synthetic_tiny data.seed=3``."""
    try:
        with initialize_config_module(config_module="facerl.conf", version_base=None):
            cfg = compose(config_name="config", overrides=list(overrides or []))
        OmegaConf.resolve(cfg)
    except (HydraException, OmegaConfBaseException) as exc:
        raise FacerlError(f"bad config override: {str(exc).splitlines()[0]}") from None
    check_run_name(cfg.get("run_name"))
    return cfg


RUN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_run_name(name, key: str = "run_name") -> None:
    """A run writes into runs/<run_name>/ (a stage into runs/<run_name>/<stage>/): the name must be one plain
    folder name, so no run can write outside runs/ (``../x``, ``/abs``) or into runs/ itself (empty)."""
    if isinstance(name, int) and not isinstance(name, bool):
        name = str(name)
    if not isinstance(name, str) or not RUN_NAME_RE.match(name):
        raise FacerlError(f"{key} must be a plain folder name (letters, digits, '.', '_', '-'; starting with "
                          f"a letter or digit), got {name!r}")


def to_dataclass(cls, node, where: str = ""):
    """A typed dataclass from a config node (nested dataclass fields too); unknown keys are a user error."""
    import dataclasses
    import typing

    data = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise FacerlError(f"unknown config key(s) {', '.join(where + k for k in unknown)} "
                          f"(known: {', '.join(sorted(names))})")
    for key, value in list(data.items()):
        hint = hints.get(key)
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            data[key] = to_dataclass(hint, value, f"{where}{key}.")
        elif hint in (int, float, bool, str):
            data[key] = _check_type(hint, value, where + key)
    return cls(**data)


def _check_type(hint: type, value, name: str):
    """A config value of the declared scalar type (ints are accepted as floats), else a one-line error."""
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    article = "an" if hint.__name__[0] in "aeiou" else "a"
    raise FacerlError(f"config {name} must be {article} {hint.__name__}, got {value!r}")
