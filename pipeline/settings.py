"""The base of every settings model (the YAML config's sections, each input adapter's
``Options``): an unknown key is an error, not a silent default, and settings never change
once read."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
