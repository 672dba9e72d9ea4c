"""Hydra config composition for the `facerl` command (configs live in ``facerl/conf``)."""

from __future__ import annotations

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
        return cfg
    except (HydraException, OmegaConfBaseException) as exc:
        raise FacerlError(f"bad config override: {str(exc).splitlines()[0]}") from None
