"""YAML in and out: output that reads well in a diff (key order kept, multi-line strings as blocks), and one
safe reader of what the components report (libyaml's parser when PyYAML has it, about ten times faster
than the pure-Python one: ``hux health`` reads Alertmanager's running configuration on every run)."""

from __future__ import annotations

from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(text: str) -> Any:
    """A YAML document read safely (plain data only); ``yaml.YAMLError`` when it is not YAML."""
    return yaml.load(text, Loader=_SafeLoader)


def dump(document: Any, header: str = "") -> str:
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=4096,
                     allow_unicode=True)
    return (header + body) if header else body


GENERATED = (
    "# Rendered by `hux render` from the settings (src/hux/defaults/monitoring.toml, hux.toml, HUX__*).\n"
    "# Do not edit: change the settings and render again.\n"
)
