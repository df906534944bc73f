"""Where the model is and how it is loaded: ``--model``, the config's ``classifier.model_dir``,
``$TRAPCOUNT_MODEL``, else the shipped ``models/default``; built completely (manifest, hash,
tensors) or refused in one line."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import edge_agent
from edge_agent.config import CIFAR_NOT_AT_SITE, ClassifierSettings, Settings
from edge_agent.manifest import ModelContractError, model_files
from edge_agent.vision.classifier import Classifier

log = logging.getLogger(__name__)

MODEL_ENV = "TRAPCOUNT_MODEL"


def default_model_dir() -> Path:
    """The shipped model: ``$TRAPCOUNT_MODEL``, else ``models/default`` next to the
    ``edge_agent`` package (a source checkout or an editable install), else under the
    working directory."""
    env = os.environ.get(MODEL_ENV)
    if env:
        return Path(env).expanduser()
    beside_package = Path(edge_agent.__file__).resolve().parent.parent / "models" / "default"
    if beside_package.exists():
        return beside_package
    return Path.cwd() / "models" / "default"


def resolve_model_dir(
    settings: Settings, *, config_given: bool, override: str | Path | None = None
) -> Path:
    """``--model`` wins, then the config's ``classifier.model_dir`` (relative to the config
    file); else (no config, or no model_dir in it) the shipped default model."""
    if override is not None:
        return Path(override).expanduser().resolve()
    if config_given and settings.classifier.model_dir:
        return settings.resolve(settings.classifier.model_dir).resolve()
    return default_model_dir().resolve()


def load_classifier(model_dir: Path, settings: ClassifierSettings) -> Classifier:
    """Build a classifier completely (manifest, hash, tensors) or raise ModelContractError."""
    try:
        classifier = Classifier(
            model_dir,
            num_threads=settings.num_threads,
            confidence_threshold=settings.confidence_threshold,
            max_batch=settings.max_batch,
            not_at_site=settings.not_at_site,
        )
    except OSError as exc:
        raise ModelContractError(f"cannot read model {model_dir}: {exc.strerror or exc}") from None
    # A name the model lacks changes nothing; one other than the default's is said (a typo,
    # or a list written for another model). The default names CIFAR-10 labels that a model
    # retrained on a site's own frames need not have: no warning at every start for them.
    missing = sorted(set(settings.not_at_site) - set(classifier.labels) - set(CIFAR_NOT_AT_SITE))
    if missing:
        log.warning(
            "classifier.not_at_site names %s, not labels of model %s: ignored",
            ", ".join(repr(name) for name in missing),
            classifier.manifest.version,
        )
    return classifier


def model_signature(model_dir: Path) -> tuple[Any, ...] | None:
    """What changes when any file of the model is replaced (inode, size, mtime): the
    .tflite, the manifest, and the grey companion the manifest names."""
    signature: list[Any] = []
    for path in model_files(model_dir):
        try:
            info = path.stat()
        except OSError:
            return None
        signature.append((info.st_ino, info.st_size, info.st_mtime_ns))
    return tuple(signature)
