"""The method registry, including a third-party plugin installed through an entry point."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from rtrbench.cli import app
from rtrbench.errors import ConfigError
from rtrbench.methods import FullSupervision, PCEGD
from rtrbench.registry import discover, get_method


def test_builtins_are_registered():
    found = discover()
    assert found.methods["pce-gd"] is PCEGD and found.methods["full"] is FullSupervision


def test_unknown_method_names_the_registered_ones():
    with pytest.raises(ConfigError, match="unknown method 'nope'; registered: .*pce-gd"):
        get_method("nope")


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """Install a distribution 'rtrbench-plugin' (module + dist-info with entry points) on sys.path."""
    (tmp_path / "my_plugin.py").write_text(
        textwrap.dedent(
            """
            from rtrbench.methods import Method

            class Doubled(Method):
                name = "doubled-ce"
                description = "twice the partial cross-entropy (test plugin)"

                def loss(self, logits, batch):
                    from rtrbench.methods import partial_cross_entropy
                    return {"ce": 2 * partial_cross_entropy(logits, batch.scribbles, batch.roi)}
            """
        )
    )
    dist = tmp_path / "rtrbench_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rtrbench-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[rtrbench.methods]\ndoubled-ce = my_plugin:Doubled\nbroken = my_plugin:DoesNotExist\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    discover.cache_clear()  # discovery runs once per process; this test installs a plugin mid-process
    yield
    sys.modules.pop("my_plugin", None)
    discover.cache_clear()


def test_entry_point_plugin_is_discovered(plugin):
    found = discover()
    assert found.methods["doubled-ce"].description.startswith("twice")
    assert "broken" in found.broken and "DoesNotExist" in found.broken["broken"]
    assert "pce-gd" in found.methods  # a broken plugin does not hide the others
    with pytest.raises(ConfigError, match="method 'broken' failed to load"):
        get_method("broken")


def test_methods_command_lists_plugins(plugin):
    result = CliRunner().invoke(app, ["methods"])
    assert result.exit_code == 0
    assert "doubled-ce" in result.output and "pce-gd" in result.output and "full" in result.output
    assert "broken" in result.output
