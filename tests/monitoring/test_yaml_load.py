"""One safe YAML reader for what the components report (their running configurations)."""

from __future__ import annotations

import pytest
import yaml

from hux.monitoring import yamlout


def test_reads_plain_data_with_libyaml_when_present() -> None:
    assert yamlout.load("route:\n  receiver: inbox\n  group_wait: 30s\n") == {
        "route": {"receiver": "inbox", "group_wait": "30s"}}
    assert yamlout._SafeLoader is getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@pytest.mark.parametrize("text", ["!!python/object/apply:os.system ['true']\n", "a: [1, 2\n", "{{ x }"])
def test_refuses_objects_and_broken_documents(text: str) -> None:
    with pytest.raises(yaml.YAMLError):
        yamlout.load(text)
