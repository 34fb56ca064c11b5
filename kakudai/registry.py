"""The model registry's public face: ``register`` / ``create_model`` / ``list_models``.

The table itself is :mod:`kakudai.models.registry`; importing it imports the
package :mod:`kakudai.models`, which registers every family.
"""

from .models.registry import create_model, list_models, register

__all__ = ["register", "create_model", "list_models"]
