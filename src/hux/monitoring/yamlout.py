"""YAML output that reads well in a diff: key order kept, multi-line strings as blocks."""

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


def dump(document: Any, header: str = "") -> str:
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=4096,
                     allow_unicode=True)
    return (header + body) if header else body


GENERATED = (
    "# Rendered by `hux render` from the settings (src/hux/defaults/monitoring.toml, hux.toml, HUX__*).\n"
    "# Do not edit: change the settings and render again.\n"
)
